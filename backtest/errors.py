"""The exception tree of crashbt.

    CrashbtError                 base of every error crashbt raises on purpose
    └── UserError                bad input a user can fix; CLI exit code 2, one line, no traceback
        ├── ConfigError          a TOML config or a --set override is wrong
        ├── DataError            a data file is missing, corrupt or fails validation
        ├── StrategyError        unknown strategy, bad parameter, parameter outside its space
        └── OutputError          the output location cannot be written

Anything else that escapes is a bug (exit code 1).
Messages follow one shape:
``<file>: <key or row>: expected <what>, found <what>[; did you mean X?]``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CrashbtError(Exception):
    """Base class of every error crashbt raises on purpose."""


class UserError(CrashbtError):
    """Input a user can fix; reported as one line with exit code 2."""


class ConfigError(UserError):
    """A TOML config or an override is wrong."""


class DataError(UserError):
    """A data file is missing, corrupt or fails validation."""


class StrategyError(UserError):
    """An unknown strategy or a bad strategy parameter."""


class OutputError(UserError):
    """The output location cannot be written."""


MAX_HINT_LENGTH = 64  # longer words are no typo of a short name, and difflib is quadratic


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string.

    Words and choices longer than :data:`MAX_HINT_LENGTH` are not compared (a 10 MB name would
    take difflib minutes)."""
    if len(word) > MAX_HINT_LENGTH:
        return ""
    short = [c for c in choices if len(c) <= MAX_HINT_LENGTH]
    close = difflib.get_close_matches(word, short, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
