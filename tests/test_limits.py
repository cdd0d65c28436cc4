"""The capped readers of :mod:`backtest.limits`: the copy (``read_capped``), the stream
(``open_capped``) and the memory map (``map_capped``) give the same bytes and the same one-line
refusals, and none reads past its cap when the file grows after it was checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backtest.errors import DataError
from backtest.limits import map_capped, open_capped, read_capped


def streamed(path: Path, limit: int) -> bytes:
    with open_capped(path, limit, DataError, "a data file") as handle:
        return handle.read()


READERS = {"copy": lambda p, n: read_capped(p, n, DataError, "a data file"),
           "stream": streamed,
           "map": lambda p, n: bytes(map_capped(p, n, DataError, "a data file"))}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize("size", [0, 1, 4096, 100_003])
def test_every_reader_gives_the_file_bytes(read, size: int, tmp_path: Path) -> None:
    blob = os.urandom(size)
    (tmp_path / "f").write_bytes(blob)
    assert read(tmp_path / "f", 100_003) == blob


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_every_reader_refuses_the_same_way(read, tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(DataError, match=r"big: expected a data file of at most 100 bytes, "
                                        r"found 101 bytes$"):
        read(tmp_path / "big", 100)
    os.mkfifo(tmp_path / "pipe")  # never opened for a blocking read
    with pytest.raises(DataError, match=r"pipe: expected a data file \(a regular file\), found "
                                        r"a FIFO \(named pipe\)$"):
        read(tmp_path / "pipe", 100)
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing", 100)
    with pytest.raises(IsADirectoryError):
        read(tmp_path, 100)


def test_a_stream_stops_at_the_cap_when_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 100)
    with open_capped(path, 100, DataError, "a data file") as handle:
        with path.open("ab") as writer:
            writer.write(b"y" * 50)  # after the size check at opening
        assert handle.read(60) == b"x" * 60
        with pytest.raises(DataError, match=r"expected a data file of at most 100 bytes, found a "
                                            r"larger file$"):
            handle.read()


def test_a_map_covers_the_size_checked(tmp_path: Path) -> None:
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 100)
    mapped = map_capped(path, 100, DataError, "a data file")
    with path.open("ab") as writer:
        writer.write(b"y" * 50)
    assert bytes(mapped) == b"x" * 100
