"""The fast readers of plain data agree with the general readers, and step aside otherwise.

:func:`backtest.data.files._read_plain_csv` (Arrow's CSV reader) and
:func:`backtest.data.files._plain_utc` (``YYYY-MM-DDTHH:MM:SSZ`` from the bytes) must return
exactly what pandas returns for the same text, or None so that pandas reads it (and names any
problem); :func:`backtest.data.files._gunzip` inflates one gzip member in one zlib call and
leaves everything else to :class:`gzip.GzipFile`. Each test compares against the general reader
called directly.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.data.files import (
    NA_CELLS,
    _gunzip,
    _plain_utc,
    _read_plain_csv,
    parse_timestamps,
)
from backtest.errors import DataError

HEADER = ["timestamp", "open", "volume", "note"]
STREAM = gzip.compress(b"timestamp,open\n2024-01-01T00:00:00Z,1\n" * 50, mtime=0)


def by_pandas(raw: bytes, wanted: list[str], numeric: list[str]) -> pd.DataFrame:
    """What read_csv_table's pandas path returns for ``raw`` (header in its first line)."""
    dtypes = {c: ("float64" if c in numeric else str) for c in wanted}
    return pd.read_csv(io.BytesIO(raw), dtype=dtypes, usecols=wanted, engine="c",
                       skipinitialspace=True)


def by_arrow(raw: bytes, wanted: list[str], numeric: list[str]) -> pd.DataFrame | None:
    end = len(raw.rstrip(b"\r\n"))
    header = raw.partition(b"\n")[0].decode().rstrip("\r").split(",")
    return _read_plain_csv(raw, 0, end, header, wanted, numeric, 1)


numbers = st.one_of(
    st.floats(min_value=1e-8, max_value=1e12, allow_nan=False).map(lambda x: f"{x:.15g}"),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(repr),
    st.integers(min_value=0, max_value=10**12).map(str),
    st.sampled_from(["", "NaN", "nan", "NA", "null", "None", "1e5", "inf", "-inf", ".5"]),
)
notes = st.one_of(st.sampled_from(["", "NA", "None", "Fear", "Extreme_Greed"]),
                  st.text(alphabet="abcXYZ_-.:", min_size=1, max_size=8))
times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 12, 31)).map(
    lambda t: t.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(times, numbers, numbers, notes), min_size=1, max_size=40),
       crlf=st.booleans(), keep_note=st.booleans())
def test_plain_text_reads_as_pandas_reads_it(rows: list[tuple[str, str, str, str]], crlf: bool,
                                             keep_note: bool) -> None:
    end = "\r\n" if crlf else "\n"
    raw = end.join([",".join(HEADER), *(",".join(row) for row in rows)]).encode() + b"\n"
    wanted = HEADER if keep_note else HEADER[:3]
    numeric = ["open", "volume"]
    fast = by_arrow(raw, wanted, numeric)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, by_pandas(raw, wanted, numeric))


@pytest.mark.parametrize("text", [
    'timestamp,open\n"2024-01-01T00:00:00Z",1\n',  # quotes: pandas unquotes
    "timestamp,open\n2024-01-01T00:00:00Z, 1\n",  # a space opening a field: pandas skips it
    "timestamp,open\n 2024-01-01T00:00:00Z,1\n",
    "timestamp,open\r2024-01-01T00:00:00Z,1\r",  # old Mac line ends
    "timestamp,open\n2024-01-01T00:00:00Z,1\n\n2024-01-01T01:00:00Z,2\n",  # a blank line
    "timestamp,open\n2024-01-01T00:00:00Z,1,7\n",  # a field too many
    "timestamp,open\n2024-01-01T00:00:00Z,abc\n",  # not a number
])
def test_text_that_is_not_plain_is_left_to_pandas(text: str) -> None:
    assert by_arrow(text.encode(), ["timestamp", "open"], ["open"]) is None


def test_missing_cells_are_pandas_defaults() -> None:
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(NA_CELLS) == set(STR_NA_VALUES)


@settings(max_examples=150, deadline=None)
@given(st.lists(times, min_size=1, max_size=50))
def test_plain_utc_times_equal_pandas_iso_parser(cells: list[str]) -> None:
    column = pd.Series(cells, dtype=str)
    expected = pd.DatetimeIndex(pd.to_datetime(column, format="ISO8601", utc=True))
    got = _plain_utc(column)
    assert got is not None
    pd.testing.assert_index_equal(got, expected.as_unit("ns"), check_names=False)


def test_plain_utc_of_every_hour_across_leap_days() -> None:
    first = datetime(1999, 12, 31, tzinfo=UTC)
    cells = [(first + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
             for h in range(0, 24 * 366 * 5, 7)]
    got = _plain_utc(pd.Series(cells, dtype=str))
    assert got is not None
    assert got.asi8.tolist() == [int(datetime.fromisoformat(c).timestamp()) * 10**9
                                 for c in cells]


@pytest.mark.parametrize("cell", [
    "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z",
    "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z",
    "2024-04-31T00:00:00Z", "1677-09-21T00:12:44Z", "2262-04-11T23:47:16Z",
    "2024-01-01 00:00:00Z", "2024-01-01T00:00:00+", "2024-1-01T00:00:00ZZ", "２０24-01-01T0:00:00Z",
])
def test_plain_utc_declines_anything_else(cell: str) -> None:
    assert _plain_utc(pd.Series(["2024-01-01T00:00:00Z", cell], dtype=str)) is None


def test_declined_times_keep_their_error() -> None:
    with pytest.raises(Exception, match=r"row 2: column 'timestamp': expected an ISO-8601"):
        parse_timestamps("t.csv", pd.Series(["2024-01-01T00:00:00Z", "2023-02-29T00:00:00Z"]))


def test_object_text_parses_like_arrow_text() -> None:
    cells = ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"]
    arrow = parse_timestamps("t", pd.Series(cells, dtype=str))
    plain = parse_timestamps("t", pd.Series(np.array(cells, dtype=object), dtype=object))
    pd.testing.assert_index_equal(arrow, plain, exact=True)


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=3), st.integers(0, 3))
def test_gunzip_equals_gzip_for_members_and_padding(parts: list[bytes], padding: int) -> None:
    blob = b"".join(gzip.compress(p, mtime=0) for p in parts) + b"\0" * padding
    assert _gunzip(Path("x.gz"), blob) == b"".join(parts)


@pytest.mark.parametrize("blob", [
    STREAM[:-3],  # truncated
    STREAM[:-8] + bytes([STREAM[-8] ^ 1]) + STREAM[-7:],  # CRC
    b"not gzip",
    STREAM + b"trailing",
    STREAM[:12] + b"\xff" * 8 + STREAM[20:],  # corrupt deflate data
], ids=["truncated", "crc", "not-gzip", "trailing", "corrupt"])
def test_gunzip_names_a_broken_stream_as_gzipfile_does(blob: bytes) -> None:
    with pytest.raises((OSError, EOFError)) as general, \
            gzip.GzipFile(fileobj=io.BytesIO(blob)) as stream:
        stream.read()
    with pytest.raises(DataError) as ours:
        _gunzip(Path("x.gz"), blob)
    assert str(ours.value) == f"x.gz: expected gzip data, found a corrupt stream ({general.value})"
