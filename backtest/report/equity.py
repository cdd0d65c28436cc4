"""A run's equity curve file: ``equity.csv`` (the default) or ``equity.parquet``
(``[report] equity_format = "parquet"``), one row per bar: the UTC ``timestamp``, then
``equity``, ``position``, ``buy_and_hold`` and ``close`` as float64.

Both are written with Arrow and read back with Arrow, streamed from the file (a 10M-bar
equity.csv is 0.8 GB of text, never held at once). Once written, the file is user input: a
tampered one is one :class:`OutputError` naming the file, expected vs found. The CSV reader takes
Arrow's typed parse for a file as crashbt writes it and, for anything else (a cut row, text in a
number, a naive time), the checking reader of :mod:`backtest.report.files`, which names the row.

Imports from crashbt: errors, limits, report.files (its checking reader).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from backtest.errors import OutputError
from backtest.limits import DATA_BYTES, open_capped
from backtest.report.files import read_table

FILES = {"csv": "equity.csv", "parquet": "equity.parquet"}  # [report] equity_format -> name
FILLED = ("timestamp", "equity")  # the columns a curve cannot do without
TIME_UNIT = "us"  # both readers' timestamp unit (pandas' unit for parsed ISO text)
BATCH = 1 << 17  # equity.csv rows formatted at a time: ~10 MB of text
ISO_SECOND = len("2026-02-05 00:00:00")  # Arrow's text of a timestamp[s] of years 1000..9999
RUN_SHARE = 4  # equity.csv: a column with fewer runs than rows / this formats each run once
READ_BLOCK = 16 << 20  # bytes of CSV text Arrow parses at a time
Read = TypeVar("Read")


def is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet"


def write_equity(equity: pd.DataFrame, path: Path) -> None:
    """``equity`` (a UTC-indexed frame of float columns) as ``path``: Parquet for a
    ``.parquet`` name, else CSV."""
    (write_equity_parquet if is_parquet(path) else write_equity_csv)(equity, path)


def read_equity(path: Path) -> pd.DataFrame:
    """An equity file read back: float64 columns on a UTC :data:`TIME_UNIT` index named
    ``timestamp``; a missing ``timestamp``/``equity`` column or value, a non-number, a non-UTC
    time or unreadable bytes is one :class:`OutputError` naming ``path``."""
    frame = _read_parquet(path) if is_parquet(path) else _read_csv(path)
    frame.index.name = "timestamp"
    return frame


def write_equity_parquet(equity: pd.DataFrame, path: Path) -> None:
    """The frame as one Arrow table: ``timestamp`` (UTC, the index's unit), then the columns as
    float64 (NaN kept as NaN), snappy-compressed (Arrow's default: zstd saves a tenth of the
    bytes for a third more CPU, ~0.3 s at 10M bars)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = pd.DatetimeIndex(equity.index).tz_convert("UTC")
    table = pa.table({"timestamp": pa.array(index)}
                     | {str(name): pa.array(equity[name].to_numpy(dtype=np.float64))
                        for name in equity.columns})
    pq.write_table(table, path, compression="snappy")


def write_equity_csv(equity: pd.DataFrame, path: Path) -> None:
    """One row per bar: ISO UTC timestamp, then the float columns in shortest round-trip form
    (NaN as an empty field). Arrow's C++ CSV writer formats batches of :data:`BATCH` rows on two
    threads (it releases the GIL), written to ``path`` in order: pandas' ``to_csv`` takes ~7 s a
    million bars, this ~0.2 s of CPU, and 10M bars (~0.8 GB of text) are never held at once."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    index = pd.DatetimeIndex(equity.index)
    floats = {str(name): equity[name].to_numpy(dtype=np.float64) for name in equity.columns}
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")

    def batch(start: int) -> pa.Buffer:
        rows = slice(start, start + BATCH)
        seconds = index[rows].tz_convert("UTC").as_unit("s").tz_localize(None).to_numpy()
        table = pa.table({"timestamp": _iso_text(seconds)}
                         | {name: _float_text(values[rows]) for name, values in floats.items()})
        text = pa.BufferOutputStream()
        pa_csv.write_csv(table, text, options)
        return text.getvalue()

    with path.open("wb") as sink, ThreadPoolExecutor(2) as pool:
        sink.write((",".join(["timestamp", *floats]) + "\n").encode("utf-8"))
        pending: deque[Future[pa.Buffer]] = deque()
        for start in range(0, len(index), BATCH):
            if len(pending) == 2:  # at most two batches of text in memory
                sink.write(pending.popleft().result())
            pending.append(pool.submit(batch, start))
        for done in pending:
            sink.write(done.result())


def _float_text(values: np.ndarray) -> Any:
    """An Arrow column the CSV writer prints as it prints ``values`` (NaN as an empty field).
    Runs of one value (the position, the equity while in cash) are formatted once and their
    text repeated: float formatting is most of a 10M-bar equity.csv's CPU. A run is equal
    bits, so -0.0 and 0.0 (or two NaNs) are never merged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    starts = np.empty(values.size, dtype=bool)
    starts[:1] = True
    bits = values.view(np.int64)
    np.not_equal(bits[1:], bits[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    if first.size * RUN_SHARE > values.size:  # mostly changing: format every row
        return pa.array(values, from_pandas=True)
    text = pc.cast(pa.array(values[first], from_pandas=True), pa.string())
    return text.take(pa.array(np.cumsum(starts, dtype=np.int64) - 1))

def _iso_text(seconds: np.ndarray) -> Any:
    """datetime64[s] as Arrow text ``2026-02-05T00:00:00Z``: Arrow's cast writes
    ``2026-02-05 00:00:00``, whose fixed-width bytes get the ``T`` and the ``Z`` in place (a
    string replace and a join cost ~1 s at 10M bars)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows, width = len(seconds), ISO_SECOND + 1
    stored = pc.cast(pa.array(seconds), pa.string()).buffers()[2]
    iso = np.empty((rows, width), dtype=np.uint8)
    iso[:, :ISO_SECOND] = np.frombuffer(stored, dtype=np.uint8,
                                        count=rows * ISO_SECOND).reshape(rows, ISO_SECOND)
    iso[:, 10], iso[:, ISO_SECOND] = ord("T"), ord("Z")
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets),
                                                     pa.py_buffer(iso)])


def _opened(path: Path, what: str, read: Callable[[Any], Read]) -> Read:
    """``read`` of the capped, checked file ``path`` (a regular file of at most
    :data:`~backtest.limits.DATA_BYTES`); its OS errors as one line."""
    try:
        with open_capped(path, DATA_BYTES, OutputError, what) as handle:
            return read(handle)
    except OSError as exc:
        raise OutputError(f"{path}: expected a readable {what.removeprefix('a ')}, found "
                          f"{(exc.strerror or type(exc).__name__).lower()}") from None


def _read_csv(path: Path) -> pd.DataFrame:
    """Arrow's typed, streamed parse when the file is as crashbt writes it (every column but the
    UTC ``timestamp`` a number, no ``NaN`` text); else the checking reader, which names the row
    (and accepts what it always accepted: naive times, integers, ``NaN`` in other columns...)."""
    frame = _opened(path, "a CSV file", _arrow_csv)
    if frame is not None:
        return frame
    slow = read_table(path, FILLED, times=("timestamp",), filled=FILLED)
    slow.index = pd.DatetimeIndex(slow.pop("timestamp")).as_unit(TIME_UNIT)
    return slow.astype(np.float64)


def _arrow_csv(handle: Any) -> pd.DataFrame | None:
    """The frame of a plain equity CSV, one column at a time out of Arrow (10M bars: the
    numbers once in Arrow and once in numpy only for the column being moved), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    header = handle.readline().decode("utf-8", "replace").rstrip("\r\n").split(",")
    if len(set(header)) != len(header) or any(c not in header for c in FILLED):
        return None
    types = {name: pa.timestamp(TIME_UNIT, "UTC") if name == "timestamp" else pa.float64()
             for name in header}
    try:
        reader = pa_csv.open_csv(
            pa.PythonFile(handle, mode="r"),
            read_options=pa_csv.ReadOptions(column_names=header, block_size=READ_BLOCK),
            convert_options=pa_csv.ConvertOptions(column_types=types, null_values=[""],
                                                  strings_can_be_null=False))
        chunks: dict[str, list[pa.Array]] = {name: [] for name in header}
        for batch in reader:
            for name, column in zip(header, batch.columns, strict=True):
                chunks[name].append(column)
    except (pa.ArrowException, ValueError, UnicodeDecodeError):
        return None
    columns: dict[str, Any] = {}
    for name in header:
        column = pa.chunked_array(chunks.pop(name), types[name])
        if (name in FILLED and column.null_count) or len(column) == 0 or (
                name != "timestamp" and pc.any(pc.is_nan(column)).as_py()):
            return None  # the checking reader words it (or reads NaN text as it always has)
        columns[name] = column.to_numpy()
        del column
    pa.default_memory_pool().release_unused()
    index = pd.DatetimeIndex(columns.pop("timestamp")).tz_localize("UTC")
    return pd.DataFrame(columns, index=index, copy=False)


def _read_parquet(path: Path) -> pd.DataFrame:
    """An ``equity.parquet`` as written by :func:`write_equity_parquet`: a UTC timestamp column
    and float64 columns, ``timestamp`` and ``equity`` with no null/NaN."""
    return _opened(path, "a Parquet file", lambda handle: _arrow_parquet(path, handle))


def _arrow_parquet(path: Path, handle: Any) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.PythonFile(handle, mode="r"))
        schema = parquet.schema_arrow
    except (pa.ArrowException, ValueError) as exc:
        raise OutputError(f"{path}: expected a Parquet file, found unreadable bytes "
                          f"({str(exc).splitlines()[0][:120]})") from None
    names = list(schema.names)
    missing = [c for c in FILLED if c not in names]
    if missing or len(set(names)) != len(names):
        what = f"column {missing[0]!r}: expected a column named {missing[0]!r}" if missing \
            else "expected distinct column names"
        raise OutputError(f"{path}: {what}, found columns {', '.join(names)[:200]}")
    for name in names:
        kind = schema.field(name).type
        wanted = (pa.types.is_timestamp(kind) and kind.tz in ("UTC", "+00:00")
                  if name == "timestamp" else kind == pa.float64())
        if not wanted:
            expected = "UTC timestamps" if name == "timestamp" else "float64 numbers"
            raise OutputError(f"{path}: column {name!r}: expected {expected}, found {kind}")
    try:
        table = parquet.read(use_threads=True)
    except (pa.ArrowException, ValueError) as exc:
        raise OutputError(f"{path}: expected a Parquet file, found unreadable bytes "
                          f"({str(exc).splitlines()[0][:120]})") from None
    columns: dict[str, Any] = {}
    for name in names:
        values = table.column(name).to_numpy()
        table = table.drop_columns([name])  # its Arrow memory goes as its numpy copy comes
        empty = np.flatnonzero(pd.isna(values)) if name in FILLED else ()
        if len(empty):
            raise OutputError(f"{path}: row {empty[0] + 1}: column {name!r}: expected a value, "
                              f"found null or NaN")
        columns[name] = values
    pa.default_memory_pool().release_unused()
    index = pd.DatetimeIndex(columns.pop("timestamp")).tz_localize("UTC").as_unit(TIME_UNIT)
    return pd.DataFrame(columns, index=index, copy=False)
