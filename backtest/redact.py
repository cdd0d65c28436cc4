"""Make text safe to show: credentials masked before it reaches a terminal, a log, a JSON or an
HTML report, and control characters escaped before it reaches a terminal.

The one masker of crashbt. ``postgresql://u:secret@host/db`` becomes ``postgresql://u:***@host/db``
(an ``@`` inside the password included); a value whose key names a secret (``password=``,
``?sslpassword=``, ``&client_secret=``, ``"token": ...``, ``api_key:``) becomes ``***``; and the
secrets of a URL the caller knows (``mask_secrets(text, url)``) are masked wherever they appear,
percent-encoded or not (database drivers echo them in their own words).
Layer 0: imports nothing from crashbt (any module may use it).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MASK = "***"
MAX_SHOWN = 4000  # characters of one message line; the rest is summarised
_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|credential)"
# scheme://user:password@host: the password runs to the '@' after which only the host follows
# (one slash too: pathlib turns "scheme://" into "scheme:/" when a URL is used as a path).
# Bounded repeats and the lookbehinds keep both patterns linear on long hostile text.
_URL_PASSWORD = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}:/{1,3}[^:/@\s'\"]{0,256}:)"
    r"[^\s'\"]{1,512}?"
    r"(?=@[^@/?#\s'\"]*(?:[/?#\s'\"]|$))")
# key=value, key: value, "key": "value" where the key contains a secret word
_KEY_VALUE = re.compile(
    rf"(?P<head>(?<![\w.-])[\w.-]{{0,40}}?{_SECRET_WORDS}[\w.-]{{0,40}}['\"]?\s*[=:]\s*['\"]?)"
    r"(?:[^\s&;,'\":]|:(?![\s'\"]|$))+", re.IGNORECASE)  # a ':' ending the value is text
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
_MIN_LITERAL = 4  # shorter known secrets are only masked in their URL and key=value places


def url_secrets(url: str | None) -> list[str]:
    """The password and secret-named query values of ``url``, raw, percent-decoded and in
    pieces split at ``@`` and ``:``."""
    if not url or "://" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' in the host
        return []
    netloc = parts.netloc
    found = [netloc[netloc.index(":") + 1:netloc.rindex("@")]] \
        if "@" in netloc and ":" in netloc[:netloc.rindex("@")] else []
    found += [value for key, value in parse_qsl(parts.query, keep_blank_values=True)
              if _SECRET_KEY.search(key)]
    # drivers split a password with '@' at the wrong place and print the pieces
    pieces = [piece for secret in found for piece in re.split(r"[@:]", unquote(secret))]
    forms = {form for secret in found for form in (secret, unquote(secret), quote(secret))}
    forms.update(pieces)
    return sorted((f for f in forms if len(f) >= _MIN_LITERAL), key=len, reverse=True)


def mask_secrets(text: str, url: str | None = None) -> str:
    """``text`` with URL passwords, secret-named values and the secrets of ``url`` masked."""
    for secret in url_secrets(url):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)


def terminal_safe(text: str, limit: int = MAX_SHOWN) -> str:
    """One printable line: control and bidi characters escaped, at most ``limit`` characters."""
    out = "".join(_escape(ch) for ch in text[:limit])
    more = len(text) - limit
    return out if more <= 0 else f"{out}... ({more} more characters)"


def _escape(ch: str) -> str:
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if unicodedata.category(ch) == "Cc" or unicodedata.bidirectional(ch) in (
            "LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"):
        return ch.encode("unicode_escape").decode("ascii")
    return ch
