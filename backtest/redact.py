"""Mask credentials in text before it reaches a terminal, a log or a report.

``postgresql://u:secret@host/db`` becomes ``postgresql://u:***@host/db``; ``password=...``,
``token=...``, ``secret=...`` and ``api_key=...`` values (query strings, DSNs, key=value text)
become ``***``. Layer 0: imports nothing from crashbt (any module may use it).
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@host -> the password; the user name is kept (it helps debugging)
# (one slash too: pathlib turns "scheme://" into "scheme:/" when a URL is used as a path)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*:/{1,3}[^:/@\s'\"]*:)[^@\s'\"/]+(?=@)")
# password=..., pwd=..., token=..., secret=..., api_key=... up to a separator
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*)"
    r"[^\s&;,'\"]+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with URL passwords and ``password=``-style values replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)
