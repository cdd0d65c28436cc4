"""Data files: where bundled datasets live (``datasets/manifest.toml``, sha256-pinned), reading
a bundled or user file within its size cap, and the CSV / Parquet table readers and timestamp
parsing that bars and external series share.

Timestamps: ISO-8601 with an offset (or a bare UTC date), or epoch seconds / ms / us, always
within pandas' range; every problem is one :class:`~backtest.errors.DataError` line naming the
file and the row or column. Imports from crashbt only :mod:`backtest.errors`,
:mod:`backtest.limits`, :mod:`backtest.redact` and :mod:`backtest.config`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import mmap
import os
import re
import tomllib
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.common import iso
from backtest.errors import DataError, did_you_mean
from backtest.limits import CONFIG_BYTES, DATA_BYTES, map_capped, read_capped
from backtest.redact import mask_secrets

_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$")


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # a UTC calendar day (yfinance daily files)


_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")


# Epoch magnitude bands: below 1e11 is seconds (until year 5138), below 1e14 milliseconds, below
# 1e17 microseconds (Binance spot klines since 2025).
_EPOCH_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17))


# what a nanosecond pandas index can hold, to the whole second
_FIRST_TIME = pd.Timestamp(pd.Timestamp.min.ceil("s"), tz="UTC")


_LAST_TIME = pd.Timestamp(pd.Timestamp.max.floor("s"), tz="UTC")


_TIME_RANGE = f"{iso(_FIRST_TIME)} and {iso(_LAST_TIME)}"


#: pandas' default ``na_values`` (``read_csv``): the cells both CSV readers take as missing
NA_CELLS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
            "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


# ``YYYY-MM-DDTHH:MM:SSZ``: where its separators and digits sit, and the years whose every
# second a nanosecond index holds (pandas' reader checks the edge years)
_PLAIN_UTC_WIDTH = 20


_PLAIN_UTC_SEPARATORS = (np.array([4, 7, 10, 13, 16, 19]), np.frombuffer(b"--T::Z", np.uint8))


_PLAIN_UTC_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])


_PLAIN_UTC_YEARS = (1678, 2261)


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def datasets_dir() -> Path:
    """``datasets/`` beside the ``backtest`` package, or ``$CRASHBT_DATASETS``."""
    override = os.environ.get("CRASHBT_DATASETS")
    if override:
        path = Path(override)
        return path.parent if path.is_file() else path
    return Path(__file__).resolve().parents[2] / "datasets"


def manifest() -> dict[str, dict[str, Any]]:
    """The ``[datasets.*]`` tables of ``datasets/manifest.toml``, keyed by dataset name."""
    path = datasets_dir() / "manifest.toml"
    try:
        text = read_capped(path, CONFIG_BYTES, DataError, "the dataset manifest")
        entries = dict(tomllib.loads(text.decode("utf-8"))["datasets"])
    except FileNotFoundError:
        raise DataError(f"{path}: expected the dataset manifest, found no file (set "
                        f"CRASHBT_DATASETS to the datasets/ folder)") from None
    except OSError as exc:
        raise DataError(f"{path}: expected a readable dataset manifest, found "
                        f"{(exc.strerror or str(exc)).lower()}") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # bad TOML or UTF-8
        raise DataError(f"{path}: expected a [datasets] table in valid TOML, found "
                        f"{type(exc).__name__}: {str(exc)[:120]}") from None
    odd = next((name for name, entry in entries.items() if not isinstance(entry, dict)), None)
    if odd is not None:
        raise DataError(f"{path}: datasets.{odd}: expected a table, found "
                        f"{type(entries[odd]).__name__}")
    return entries


def list_datasets() -> list[dict[str, Any]]:
    """One summary dict per bundled dataset (for ``crashbt data list``)."""
    keys = ("kind", "symbol", "timeframe", "rows", "first", "last", "file", "attribution")
    return [{"name": name, **{k: entry.get(k) for k in keys}}
            for name, entry in manifest().items()]


def dataset_entry(name: str, where: str, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The manifest entry of ``name``; unknown names and wrong kinds raise with a hint."""
    entries = manifest()
    choices = [n for n, e in entries.items() if kinds is None or e.get("kind") in kinds]
    if name not in choices:
        raise DataError(f"{where}: expected one of {', '.join(choices)}, found {name!r}"
                        f"{did_you_mean(name, choices)}")
    return entries[name]


def read_dataset_bytes(name: str, entry: dict[str, Any]) -> tuple[Path, bytes, str]:
    """Path, decompressed bytes and sha256 of a bundled file, checked against the manifest."""
    path = datasets_dir() / entry["file"]
    blob = _read_file(path)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry["sha256"]:
        raise DataError(f"{path}: sha256: expected {entry['sha256']} (manifest entry {name}), "
                        f"found {digest}; the bundled file was modified or replaced")
    return path, _gunzip(path, blob), digest


def read_user_bytes(path: Path, mapped: bool = False) -> tuple[bytes | mmap.mmap, str]:
    """Bytes (gunzipped if ``.gz``) and the sha256 of the file as stored; ``mapped``: a
    read-only memory map instead of a copy (for a Parquet file, parsed in place)."""
    data, digest = read_user_bytes_hashing(path, mapped)
    return data, digest.result()


def read_user_bytes_hashing(path: Path, mapped: bool = False
                            ) -> tuple[bytes | mmap.mmap, Future[str]]:
    """:func:`read_user_bytes` with the sha256 still being computed on a background thread
    (hashlib releases the GIL), so the caller parses meanwhile (10M Parquet bars: ~0.35 s)."""
    blob = _read_file(path, mapped and path.suffix != ".gz")
    hashing = ThreadPoolExecutor(1, thread_name_prefix="sha256")
    digest = hashing.submit(lambda: hashlib.sha256(blob).hexdigest())
    hashing.shutdown(wait=False)  # its one thread ends with the hash
    return _gunzip(path, blob) if path.suffix == ".gz" else blob, digest


def _read_file(path: Path, mapped: bool = False) -> Any:
    """A regular file of at most :data:`~backtest.limits.DATA_BYTES` (never a FIFO or device),
    as bytes or, ``mapped``, a memory map (:func:`~backtest.limits.map_capped`)."""
    try:
        return (map_capped if mapped else read_capped)(path, DATA_BYTES, DataError,
                                                       "a data file")
    except FileNotFoundError:
        raise DataError(mask_secrets(f"{path}: expected an existing data file, found no such "
                                     f"file")) from None
    except IsADirectoryError:
        raise DataError(mask_secrets(f"{path}: expected a data file, found a directory")) \
            from None
    except OSError as exc:
        raise DataError(mask_secrets(f"{path}: expected a readable data file, found "
                                     f"{exc.strerror or exc}")) from None


def _gunzip(path: Path, blob: bytes) -> bytes:
    """Decompressed bytes, at most :data:`~backtest.limits.DATA_BYTES` (no gzip bomb).

    One whole gzip member (every bundled file) is inflated in one zlib call, its CRC checked by
    zlib (~15% faster than :class:`gzip.GzipFile`'s chunked reads and separate CRC pass);
    anything else (several members, padding, a corrupt or oversized stream) is read by
    ``GzipFile``, which names the problem.
    """
    stream = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip framing
    with contextlib.suppress(zlib.error):
        data = stream.decompress(blob, DATA_BYTES + 1)
        if stream.eof and not stream.unused_data:
            return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as stream:
            data = stream.read(DATA_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: expected gzip data, found a corrupt stream ({exc})") from None
    if len(data) > DATA_BYTES:
        raise DataError(f"{path}: expected at most {DATA_BYTES >> 30} GiB of data once "
                        f"decompressed, found more")
    return data


def read_csv_table(label: str, raw: bytes, required: tuple[str, ...],
                   optional: tuple[str, ...] | None = (), text_columns: tuple[str, ...] = (),
                   names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Parse CSV bytes into a frame of ``timestamp`` (raw text) + float64 columns.

    ``names`` is given for headerless files. Columns outside ``required + optional`` are ignored
    (``optional=None`` keeps every column).
    Structural problems (encoding, delimiter, field counts, non-numbers) raise naming the row.
    Plain text is read by Arrow's reader (:func:`_read_plain_csv`); anything else, and every
    problem, by pandas' reader.
    """
    first_data_line = 0 if names else 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = raw.count(b"\n", 0, exc.start) + 1 - first_data_line
        where = "header" if row < 1 else f"row {row}"
        raise DataError(f"{label}: {where}: expected UTF-8 text, found byte "
                        f"0x{raw[exc.start]:02x} at byte offset {exc.start}") from None
    body = text.removeprefix("\ufeff").rstrip("\r\n")  # a BOM (Excel's UTF-8 export) is fine
    # where the same body sits in the bytes (readers take bytes ~2x faster than a StringIO)
    start, end = (3 if raw.startswith(b"\xef\xbb\xbf") else 0), len(raw)
    while end > start and raw[end - 1] in b"\r\n":
        end -= 1
    if not body or body.isspace():
        raise DataError(f"{label}: expected a header and data rows, found an empty file")
    header_line = body[:body.find("\n") % (len(body) + 1)].rstrip("\r")
    header = list(names) if names else [h.strip() for h in header_line.split(",")]
    if not names:
        _check_header(label, header_line, header, required)
        if "\n" not in body:
            raise DataError(f"{label}: expected at least one data row, found only the header")
        _check_repeated_header(label, body, header_line)
    wanted = [c for c in header if optional is None or c in (*required, *optional)]
    numeric = [c for c in wanted if c != "timestamp" and c not in text_columns]
    dtypes: dict[str, Any] = {c: "float64" for c in numeric}
    dtypes.update({c: str for c in (*text_columns, "timestamp") if c in wanted})
    frame = _read_plain_csv(raw, start, end, header, wanted, numeric, first_data_line)
    if frame is not None:
        return frame
    data = raw[start:end]
    _check_field_counts(label, data, len(header), first_data_line)
    kwargs: dict[str, Any] = {"usecols": wanted, "engine": "c", "skipinitialspace": True}
    if names:
        kwargs.update(header=None, names=list(names))
    try:
        return pd.read_csv(io.BytesIO(data), dtype=dtypes, **kwargs)
    except pd.errors.ParserError as exc:  # quoting the field counts could not check
        raise DataError(f"{label}: expected CSV rows, found {str(exc).splitlines()[0][:160]}") \
            from None
    except ValueError:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, **kwargs)
    raise _non_number(label, frame, numeric)


def _read_plain_csv(raw: bytes, start: int, end: int, header: list[str], wanted: list[str],
                    numeric: list[str], skip_rows: int) -> pd.DataFrame | None:
    """The frame pandas' reader returns for ``raw[start:end]``, read in place by Arrow's
    (70k rows: ~2x faster), or None when the text is not plain (:func:`_is_plain`), Arrow
    refuses it (a field count, a non-number) or its first column has an empty cell (a blank
    line reads as a row of them): pandas' reader then reads it or names the problem.

    Both readers take the same cells as missing (:data:`NA_CELLS`) and read the same floats on
    every bundled file and on generated ones of up to 17 significant digits
    (tests/test_fast_readers.py); text columns stay text (``str``), as pandas reads them.
    """
    if not _is_plain(raw, start, end):
        return None
    import pyarrow as pa
    import pyarrow.csv as arrow_csv

    types = {c: pa.float64() if c in numeric else pa.string() for c in wanted}
    try:
        table = arrow_csv.read_csv(
            pa.py_buffer(raw).slice(start, end - start),
            read_options=arrow_csv.ReadOptions(column_names=header, skip_rows=skip_rows,
                                               use_threads=False),
            parse_options=arrow_csv.ParseOptions(ignore_empty_lines=False),
            convert_options=arrow_csv.ConvertOptions(
                column_types=types, include_columns=wanted, null_values=list(NA_CELLS),
                strings_can_be_null=True))
    except pa.ArrowException:
        return None
    return None if table.column(0).null_count else table.to_pandas()


def _is_plain(raw: bytes, start: int, end: int) -> bool:
    """No quotes, no space or tab opening a field (pandas skips it, Arrow keeps it) and no
    carriage return outside CRLF line ends, in ``raw[start:end]``."""
    def has(text: bytes) -> bool:
        return raw.find(text, start, end) >= 0

    if has(b'"') or (has(b"\r") and raw.count(b"\r", start, end)
                      != raw.count(b"\r\n", start, end)):
        return False
    if not (has(b" ") or has(b"\t")):  # one-byte searches are fast, pairs are not
        return True
    return raw[start:start + 1] not in (b" ", b"\t") and not any(
        has(pair) for pair in (b", ", b",\t", b"\n ", b"\n\t"))


def _check_header(label: str, line: str, header: list[str], required: tuple[str, ...]) -> None:
    if len(header) == 1 and len(required) > 1:
        delim = next((d for d in (";", "\t", "|") if d in line), None)
        hint = f"; the delimiter looks like {delim!r}, use ','" if delim else ""
        raise DataError(f"{label}: header: expected comma-separated columns "
                        f"({', '.join(required)}), found one column {line[:60]!r}{hint}")
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise DataError(f"{label}: header: expected unique column names, found "
                        f"{repeated[0]!r} {header.count(repeated[0])} times")
    for column in required:
        if column not in header:
            raise DataError(f"{label}: column {column!r}: expected a column named {column!r}, "
                            f"found columns {', '.join(header)}{did_you_mean(column, header)}")


def _check_repeated_header(label: str, body: str, header_line: str) -> None:
    """A header line repeated inside the data (concatenated exports) names its row."""
    if body.find(header_line, len(header_line)) < 0:  # a plain search first: 10x faster
        return
    repeat = re.search(r"\n" + re.escape(header_line) + r"\r?(?:\n|$)", body)
    if repeat:
        row = body.count("\n", 0, repeat.start() + 1)
        raise DataError(f"{label}: row {row}: expected a data row, found a repeated header "
                        f"{header_line[:60]!r} (files concatenated with their headers?)")


def _check_field_counts(label: str, body: bytes, expected: int, first_data_line: int) -> None:
    """Every line must have the header's field count (skipped when quotes are present)."""
    if b'"' in body:
        return
    buf = np.frombuffer(body, dtype=np.uint8)
    commas = np.flatnonzero(buf == ord(","))  # positions, not a running count: 10x faster
    line_ends = np.flatnonzero(buf == ord("\n"))
    bounds = np.concatenate(([0], np.searchsorted(commas, line_ends), [commas.size]))
    counts = np.diff(bounds) + 1
    bad = np.flatnonzero(counts != expected)
    if bad.size:
        line = int(bad[0])
        truncated = " (truncated last row)" if line == len(counts) - 1 else ""
        raise DataError(f"{label}: row {line + 1 - first_data_line}: expected {expected} "
                        f"comma-separated fields, found {counts[line]}{truncated}")


def _non_number(label: str, frame: pd.DataFrame, numeric: list[str]) -> DataError:
    for column in numeric:
        cells = frame[column]
        bad = np.flatnonzero(pd.to_numeric(cells, errors="coerce").isna() & cells.notna())
        if bad.size:
            return DataError(f"{label}: row {bad[0] + 1}: column {column!r}: expected a number, "
                             f"found {cells.iloc[bad[0]]!r}")
    return DataError(f"{label}: expected numeric columns {', '.join(numeric)}, found text")


def parse_timestamps(label: str, column: pd.Series) -> pd.DatetimeIndex:
    """ISO-8601 with an explicit offset, or epoch s/ms/us (by magnitude), to a UTC index."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        index = pd.DatetimeIndex(column).tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(column.dtype):
        raise DataError(f"{label}: column 'timestamp': expected tz-aware UTC timestamps, "
                        f"found naive datetimes")
    elif pd.api.types.is_numeric_dtype(column.dtype):
        index = _from_epoch(label, column.to_numpy(dtype="float64"))
    elif (plain := _plain_utc(column)) is not None:
        index = plain
    elif _NUMBER.fullmatch(str(column.iloc[0]).strip()):
        numbers = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy())
        if bad.size:
            raise DataError(f"{label}: row {bad[0] + 1}: column 'timestamp': expected an epoch "
                            f"number like row 1, found {column.iloc[bad[0]]!r}")
        index = _from_epoch(label, numbers.to_numpy(dtype="float64"))
    else:
        index = _from_iso(label, column)
    missing = np.flatnonzero(index.isna())
    if missing.size:
        raise DataError(f"{label}: row {missing[0] + 1}: column 'timestamp': expected a "
                        f"timestamp, found a missing value (NaT)")
    _check_pandas_range(label, index)
    return index.as_unit("ns").rename("timestamp")


def _check_pandas_range(label: str, index: pd.DatetimeIndex) -> None:
    """Pandas holds nanosecond timestamps from 1677-09-21 to 2262-04-11 only."""
    outside = np.flatnonzero(np.asarray((index < _FIRST_TIME) | (index > _LAST_TIME)))
    if outside.size:
        raise DataError(f"{label}: row {outside[0] + 1}: column 'timestamp': expected a time "
                        f"between {_TIME_RANGE}, found {iso(index[outside[0]])}")


def _from_epoch(label: str, values: np.ndarray) -> pd.DatetimeIndex:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"{label}: row {bad[0] + 1}: expected an epoch timestamp, found "
                        f"{values[bad[0]]}")
    magnitude = np.abs(values)
    codes = np.searchsorted([limit for _, limit in _EPOCH_UNITS], magnitude, side="right")
    if codes.max() >= len(_EPOCH_UNITS):
        row = int(np.argmax(codes >= len(_EPOCH_UNITS)))
        raise DataError(f"{label}: row {row + 1}: expected epoch seconds, milliseconds or "
                        f"microseconds, found {values[row]:.0f}")
    mixed = np.flatnonzero(codes != codes[0])
    if mixed.size:
        row = int(mixed[0])
        first_unit, unit = _EPOCH_UNITS[codes[0]][0], _EPOCH_UNITS[codes[row]][0]
        raise DataError(f"{label}: row {row + 1}: expected epoch {first_unit} like row 1, "
                        f"found {values[row]:.0f} (epoch {unit}); mixed units in one column")
    unit = _EPOCH_UNITS[codes[0]][0]
    seconds = values / {"s": 1, "ms": 1e3, "us": 1e6}[unit]
    outside = np.flatnonzero((seconds < _FIRST_TIME.timestamp())
                             | (seconds > _LAST_TIME.timestamp()))
    if outside.size:
        row = int(outside[0])
        raise DataError(f"{label}: row {row + 1}: column 'timestamp': expected a time between "
                        f"{_TIME_RANGE}, found epoch {unit} {values[row]:.0f}")
    return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))


def _plain_utc(column: pd.Series) -> pd.DatetimeIndex | None:
    """A text column whose every cell is ``YYYY-MM-DDTHH:MM:SSZ`` (bundled files, crashbt's own
    exports) read from its bytes (70k rows: ~5 ms against pandas' ~12 ms), or None for any
    other column, which :func:`_from_iso` parses and checks: the same values either way."""
    import pyarrow as pa

    if not pd.api.types.is_string_dtype(column.dtype) or column.empty:
        return None
    try:
        cells = pa.array(column)  # zero-copy for Arrow-backed text
    except (pa.ArrowException, TypeError):
        return None
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.combine_chunks()
    if cells.null_count or not (pa.types.is_string(cells.type)
                                or pa.types.is_large_string(cells.type)):
        return None
    offset_type = np.int64 if pa.types.is_large_string(cells.type) else np.int32
    offsets = np.frombuffer(cells.buffers()[1], offset_type)[cells.offset:
                                                              cells.offset + len(cells) + 1]
    if np.any(np.diff(offsets) != _PLAIN_UTC_WIDTH):
        return None
    chars = np.frombuffer(cells.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    chars = chars.reshape(-1, _PLAIN_UTC_WIDTH)
    at, separators = _PLAIN_UTC_SEPARATORS
    digits = chars[:, _PLAIN_UTC_DIGITS] - np.uint8(ord("0"))  # below '0' wraps above 9
    if np.any(chars[:, at] != separators) or np.any(digits > 9):
        return None
    digits = digits.astype(np.int64)
    year = digits[:, :4] @ np.array([1000, 100, 10, 1])
    month, day, hour, minute, second = (digits[:, i] * 10 + digits[:, i + 1]
                                        for i in (4, 6, 8, 10, 12))
    if (year.min() < _PLAIN_UTC_YEARS[0] or year.max() > _PLAIN_UTC_YEARS[1]
            or np.any((month < 1) | (month > 12) | (hour > 23) | (minute > 59)
                      | (second > 59))):
        return None
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if np.any((day < 1) | (day > _MONTH_DAYS[month - 1] + (leap & (month == 2)))):
        return None
    seconds = _epoch_days(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
    return pd.to_datetime(seconds * 1_000_000_000, unit="ns", utc=True)


def _epoch_days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _from_iso(label: str, column: pd.Series) -> pd.DatetimeIndex:
    text = column.astype(str).str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy() | column.isna().to_numpy())
    if bad.size:
        raise DataError(f"{label}: row {bad[0] + 1}: column 'timestamp': expected an ISO-8601 "
                        f"timestamp or epoch number, found {column.iloc[bad[0]]!r}")
    if not text.str.endswith("Z").all():
        naive = np.flatnonzero(~(text.str.contains(_TZ_SUFFIX) | text.str.match(_DATE_ONLY))
                               .to_numpy())
        if naive.size:
            raise DataError(f"{label}: row {naive[0] + 1}: column 'timestamp': expected an "
                            f"explicit UTC offset or 'Z' (e.g. 2024-01-01T00:00:00Z), found "
                            f"naive {text.iloc[naive[0]]!r}")
    return pd.DatetimeIndex(parsed)


def read_parquet_table(label: str, raw: bytes | mmap.mmap, required: tuple[str, ...],
                       optional: tuple[str, ...] | None = (), text_columns: tuple[str, ...] = (),
                       rename: Callable[[list[str]], list[str]] | None = None) -> pd.DataFrame:
    """Parquet bytes (or a memory map of the file) -> a frame like :func:`read_csv_table`'s:
    ``timestamp`` (as stored) and float64 columns (``text_columns`` kept as they are);
    ``rename`` maps the stored names.

    A plain file (numeric columns, a timestamp or epoch ``timestamp``) is read row group by row
    group into one float64 block with no pandas copy (10M bars: ~0.5 GB less, seconds faster);
    every other file, and every error, goes through pandas' reader (:func:`_parquet_by_pandas`).
    """
    import pyarrow as pa

    try:
        frame = _plain_parquet(raw, required, optional, text_columns, rename)
    except (OSError, ValueError, TypeError, NotImplementedError, pa.ArrowException):
        frame = None  # unreadable: pandas' reader names the problem
    if frame is not None:
        return frame
    return _parquet_by_pandas(label, raw, required, optional, text_columns, rename)


def _plain_parquet(raw: bytes | mmap.mmap, required: tuple[str, ...],
                   optional: tuple[str, ...] | None, text_columns: tuple[str, ...],
                   rename: Callable[[list[str]], list[str]] | None) -> pd.DataFrame | None:
    """The frame :func:`_parquet_by_pandas` would return, or None when the file is not plain:
    an index other than one ``timestamp``/``date`` column, repeated names, a missing required
    column, a kept column that is not an integer or float, text timestamps, or no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(raw))
    schema = parquet.schema_arrow
    stored = list(schema.names)
    index = [c for c in (schema.pandas_metadata or {}).get("index_columns", [])
             if not isinstance(c, dict)]  # a dict is a RangeIndex: not stored
    if index and (len(index) > 1 or str(index[0]).lower() not in ("timestamp", "date")):
        return None
    stored = index + [c for c in stored if c not in index]  # reset_index puts it first
    names = rename(stored) if rename else stored
    if (parquet.metadata.num_rows == 0 or len(set(names)) != len(names)
            or any(c not in names for c in required)):
        return None
    keep = [(s, n) for s, n in zip(stored, names, strict=True)
            if optional is None or n in (*required, *optional)]
    numeric = [(s, n) for s, n in keep if n != "timestamp"]
    types = {n: schema.field(s).type for s, n in keep}
    if any(n in text_columns or not (pa.types.is_integer(t) or pa.types.is_floating(t))
           for n, t in types.items() if n != "timestamp"):
        return None
    if "timestamp" in types and not (pa.types.is_timestamp(types["timestamp"])
                                     or pa.types.is_integer(types["timestamp"])
                                     or pa.types.is_floating(types["timestamp"])):
        return None
    block = np.empty((len(numeric), parquet.metadata.num_rows), dtype=np.float64)
    start = 0
    for group in range(parquet.num_row_groups):  # one row group in Arrow memory at a time,
        part = parquet.read_row_group(group, columns=[s for s, _ in numeric], use_threads=True)
        for row, column in enumerate(part.columns):  # its columns decoded in parallel
            at = start
            for chunk in column.chunks:
                block[row, at:at + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
                at += len(chunk)
        start += part.num_rows
    frame = pd.DataFrame(block.T, columns=[n for _, n in numeric], copy=False)
    for position, (name, new) in enumerate(keep):
        if new == "timestamp":
            frame.insert(position, new, parquet.read(columns=[name]).column(0).to_pandas())
    pa.default_memory_pool().release_unused()  # Arrow's pool keeps freed pages otherwise
    return frame


def _parquet_by_pandas(label: str, raw: bytes | mmap.mmap, required: tuple[str, ...],
                       optional: tuple[str, ...] | None, text_columns: tuple[str, ...],
                       rename: Callable[[list[str]], list[str]] | None) -> pd.DataFrame:
    """:func:`read_parquet_table` through ``pd.read_parquet``: any file, every error."""
    import pyarrow as pa

    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except (OSError, ValueError, TypeError, NotImplementedError, pa.ArrowException) as exc:
        raise DataError(f"{label}: expected a Parquet file, found unreadable bytes ({exc})") \
            from None
    if frame.index.name is not None and str(frame.index.name).lower() in ("timestamp", "date"):
        frame = frame.reset_index()
    if frame.empty:
        raise DataError(f"{label}: expected at least one data row, found none")
    names = [str(c) for c in frame.columns]
    frame.columns = rename(names) if rename else names
    names = list(frame.columns)
    for column in required:
        if column not in names:
            raise DataError(f"{label}: column {column!r}: expected a column named {column!r}, "
                            f"found columns {', '.join(names)}{did_you_mean(column, names)}")
    keep = [c for c in names if optional is None or c in (*required, *optional)]
    out = frame[keep].copy()
    numeric = [c for c in keep if c != "timestamp" and c not in text_columns]
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(out[column].dtype):
            raise _non_number(label, out.astype({column: str}), [column])
    return out.astype(dict.fromkeys(numeric, "float64"))
