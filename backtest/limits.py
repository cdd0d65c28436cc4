"""Caps on everything crashbt reads: regular files only, a size limit per kind of file, a
nesting limit for parsed documents.

A FIFO, a device such as ``/dev/zero`` or a socket named as a config, data, tier or report file
would block or never end; a huge file would exhaust memory; a deeply nested document would
exhaust the stack of every recursive consumer. Each is refused with one line naming the file.
Layer 0: imports nothing from crashbt but :mod:`backtest.errors`.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import stat
from pathlib import Path
from typing import Any

from backtest.errors import UserError

CONFIG_BYTES = 1 << 20        # a TOML config, a tier table, a regimes file
REPORT_BYTES = 256 << 20      # report.json, optimization.json
DATA_BYTES = 4 << 30          # bars, external series, a run's CSVs
MAX_DEPTH = 32                # nesting of tables and arrays in a config or a report
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_capped(path: Path, limit: int, error: type[UserError], what: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A missing file or a directory raises the usual ``FileNotFoundError`` / ``IsADirectoryError``
    (callers word those); any other kind of file, or one over ``limit`` bytes, raises ``error``.
    The file is opened non-blocking and checked again after opening, so a FIFO swapped in
    between never blocks.
    """
    with open_capped(path, limit, error, what) as raw, io.BufferedReader(raw) as handle:
        return handle.read(limit + 1)


def open_capped(path: Path, limit: int, error: type[UserError], what: str) -> io.FileIO:
    """The regular file ``path`` opened for reading, with :func:`read_capped`'s checks and
    errors, for readers that stream it (Arrow's CSV and Parquet readers) instead of holding
    all of its bytes: reading past ``limit`` bytes (a file grown since it was checked) raises
    ``error`` as a larger file does."""
    info = os.stat(path)
    _check_kind(path, info, limit, error, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_kind(path, os.fstat(fd), limit, error, what)
    except BaseException:
        os.close(fd)
        raise
    return _CappedFile(fd, error(f"{path}: expected {what} of at most {_size(limit)}, found a "
                                 f"larger file"), limit)


def map_capped(path: Path, limit: int, error: type[UserError], what: str) -> mmap.mmap | bytes:
    """:func:`read_capped`'s bytes as a read-only memory map (an empty file: ``b""``), with its
    checks and errors: a parser reads the page cache in place, with no copy into fresh memory
    (10M Parquet bars: 360 MB and ~0.15 s). The map covers the size checked at opening, so the
    cap holds; a file cut shorter while mapped would fault its reader (SIGBUS), so only inputs
    that are parsed at once, not long-lived ones, are mapped."""
    with open_capped(path, limit, error, what) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return b""
        return mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ)


class _CappedFile(io.FileIO):
    """A file read through ``read``/``readinto`` that raises ``over`` once past ``limit``."""

    def __init__(self, fd: int, over: UserError, limit: int) -> None:
        super().__init__(fd, "rb")
        self._over, self._limit = over, limit

    def read(self, size: int | None = -1) -> bytes:
        blob = super().read(size)
        self._check()
        return blob

    def readinto(self, buffer: Any) -> int | None:
        count = super().readinto(buffer)
        self._check()
        return count

    def _check(self) -> None:
        if self.tell() > self._limit:
            raise self._over


def _check_kind(path: Path, info: os.stat_result, limit: int, error: type[UserError],
                what: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "a special file")
        raise error(f"{path}: expected {what} (a regular file), found {kind}")
    if info.st_size > limit:
        raise error(f"{path}: expected {what} of at most {_size(limit)}, found "
                    f"{_size(info.st_size)}")


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def depth(value: Any) -> int:
    """Nesting depth of plain data (dicts and lists), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else ()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, (dict, list)))
    return deepest
