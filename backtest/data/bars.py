"""Bars: find, read, validate and slice OHLCV data (bundled datasets or user files).

A bundled dataset is a gzip CSV in ``datasets/`` whose sha256 is pinned in
``datasets/manifest.toml``; a user file is a CSV, Parquet or headerless Binance kline CSV whose
header is read by :func:`backtest.data.columns.canonical_names` (``[data.columns]``, common
headers case-insensitively). ``data.resample`` aggregates the bars (:mod:`backtest.data.resample`)
after validation and before slicing. Every
problem is one :class:`~backtest.errors.DataError` line naming the file and the row or column.
Gaps are reported in :class:`DataInfo`, never filled. The table readers here are shared with
:mod:`backtest.data.external`.

Zero-volume bars (exchange halts, e.g. Binance 2023-03-24) are valid data: they are kept and
counted in :attr:`DataInfo.zero_volume_bars`, never dropped or refused.

Imports from crashbt only :mod:`backtest.errors`, :mod:`backtest.limits`, :mod:`backtest.redact`,
:mod:`backtest.types` and :mod:`backtest.config`; never vectorbt, ta or optuna.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tomllib
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.common import iso
from backtest.config.data import DataConfig
from backtest.data.columns import canonical_names
from backtest.data.resample import Resampled, resample
from backtest.errors import ConfigError, DataError, did_you_mean
from backtest.limits import CONFIG_BYTES, DATA_BYTES, read_capped
from backtest.redact import mask_secrets
from backtest.types import OHLCV, Bars

PRICES = ("open", "high", "low", "close")
EXTRAS = ("quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume")
BINANCE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "close_time",
                   "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume",
                   "ignore")
BAD_TICK = 0.5  # a close this far (relative) from both neighbours is a bad tick
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # a UTC calendar day (yfinance daily files)
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_TIMEFRAME = re.compile(r"^(\d+)(s|m|min|h|d|w)$", re.IGNORECASE)
UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Epoch magnitude bands: below 1e11 is seconds (until year 5138), below 1e14 milliseconds, below
# 1e17 microseconds (Binance spot klines since 2025).
_EPOCH_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17))
# what a nanosecond pandas index can hold, to the whole second
_FIRST_TIME = pd.Timestamp(pd.Timestamp.min.ceil("s"), tz="UTC")
_LAST_TIME = pd.Timestamp(pd.Timestamp.max.floor("s"), tz="UTC")
_TIME_RANGE = f"{iso(_FIRST_TIME)} and {iso(_LAST_TIME)}"


class DataWarning(UserWarning):
    """Data that loads but deserves a look (bad ticks kept with ``bad_ticks = "warn"``)."""


@dataclass(frozen=True)
class DataInfo:
    """What was loaded: provenance, the bar frequency, and the gaps (never filled)."""

    name: str
    path: str
    sha256: str
    symbol: str
    timeframe: str
    freq: str
    first: pd.Timestamp
    last: pd.Timestamp
    rows: int
    gaps: list[tuple[pd.Timestamp, pd.Timestamp, int]]
    zero_volume_bars: int = 0
    resampled: Resampled | None = None

    def resample_report(self) -> dict[str, Any] | None:
        """``data.resample`` as the report states it (None when the bars are as stored): the
        file's dropped edge buckets and the loaded buckets that miss source bars."""
        if self.resampled is None:
            return None
        inner = [t for t in self.resampled.inner_incomplete if self.first <= t <= self.last]
        return {"from": self.resampled.source_timeframe, "to": self.timeframe,
                "partial_buckets_dropped": [iso(t) for t in self.resampled.dropped_partial],
                "buckets_with_gaps": [iso(t) for t in inner]}


# ---------------------------------------------------------------- bundled datasets + manifest


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


def read_user_bytes(path: Path) -> tuple[bytes, str]:
    """Bytes (gunzipped if ``.gz``) and the sha256 of the file as stored."""
    blob = _read_file(path)
    return _gunzip(path, blob) if path.suffix == ".gz" else blob, hashlib.sha256(blob).hexdigest()


def _read_file(path: Path) -> bytes:
    """A regular file of at most :data:`~backtest.limits.DATA_BYTES` (never a FIFO or device)."""
    try:
        return read_capped(path, DATA_BYTES, DataError, "a data file")
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
    """Decompressed bytes, at most :data:`~backtest.limits.DATA_BYTES` (no gzip bomb)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as stream:
            data = stream.read(DATA_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: expected gzip data, found a corrupt stream ({exc})") from None
    if len(data) > DATA_BYTES:
        raise DataError(f"{path}: expected at most {DATA_BYTES >> 30} GiB of data once "
                        f"decompressed, found more")
    return data


# ---------------------------------------------------------------- generic table reading


def read_csv_table(label: str, raw: bytes, required: tuple[str, ...],
                   optional: tuple[str, ...] | None = (), text_columns: tuple[str, ...] = (),
                   names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Parse CSV bytes into a frame of ``timestamp`` (raw text) + float64 columns.

    ``names`` is given for headerless files. Columns outside ``required + optional`` are ignored
    (``optional=None`` keeps every column).
    Structural problems (encoding, delimiter, field counts, non-numbers) raise naming the row.
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
    if not body.strip():
        raise DataError(f"{label}: expected a header and data rows, found an empty file")
    header_line = body.split("\n", 1)[0].rstrip("\r")
    header = list(names) if names else [h.strip() for h in header_line.split(",")]
    if not names:
        _check_header(label, header_line, header, required)
        if "\n" not in body:
            raise DataError(f"{label}: expected at least one data row, found only the header")
        _check_repeated_header(label, body, header_line)
    _check_field_counts(label, body, len(header), first_data_line)
    wanted = [c for c in header if optional is None or c in (*required, *optional)]
    numeric = [c for c in wanted if c != "timestamp" and c not in text_columns]
    dtypes: dict[str, Any] = {c: "float64" for c in numeric}
    dtypes.update({c: str for c in (*text_columns, "timestamp") if c in wanted})
    kwargs: dict[str, Any] = {"usecols": wanted, "engine": "c", "skipinitialspace": True}
    if names:
        kwargs.update(header=None, names=list(names))
    try:
        return pd.read_csv(io.StringIO(body), dtype=dtypes, **kwargs)
    except pd.errors.ParserError as exc:  # quoting the field counts could not check
        raise DataError(f"{label}: expected CSV rows, found {str(exc).splitlines()[0][:160]}") \
            from None
    except ValueError:
        frame = pd.read_csv(io.StringIO(body), dtype=str, **kwargs)
    raise _non_number(label, frame, numeric)


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
    repeat = re.search(r"\n" + re.escape(header_line) + r"\r?(?:\n|$)", body)
    if repeat:
        row = body.count("\n", 0, repeat.start() + 1)
        raise DataError(f"{label}: row {row}: expected a data row, found a repeated header "
                        f"{header_line[:60]!r} (files concatenated with their headers?)")


def _check_field_counts(label: str, body: str, expected: int, first_data_line: int) -> None:
    """Every line must have the header's field count (skipped when quotes are present)."""
    if '"' in body:
        return
    buf = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
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


def check_order(label: str, index: pd.DatetimeIndex) -> None:
    """Timestamps must be strictly ascending: no step back, no repeat."""
    steps = np.diff(index.asi8)
    for bad, what in ((steps < 0, "ascending timestamps"), (steps == 0, "unique timestamps")):
        rows = np.flatnonzero(bad)
        if rows.size:
            i = int(rows[0]) + 1
            raise DataError(f"{label}: row {i + 1} ({iso(index[i])}): expected {what}, found "
                            f"{iso(index[i])} after {iso(index[i - 1])} (row {i})")


# ---------------------------------------------------------------- timeframes + gaps


def timeframe_delta(timeframe: str, where: str) -> pd.Timedelta:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"1w"`` -> Timedelta; anything else raises ConfigError."""
    match = _TIMEFRAME.match(timeframe.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{where}: expected a timeframe like '15m', '1h' or '1d', found "
                          f"{timeframe!r}")
    return pd.Timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2).lower()])


def describe_delta(delta: pd.Timedelta) -> tuple[str, str]:
    """(timeframe, pandas offset string) of a bar spacing, e.g. (``"1d"``, ``"1D"``)."""
    seconds = int(delta.total_seconds())
    for unit, size, offset in (("d", 86400, "D"), ("h", 3600, "h"), ("m", 60, "min"),
                               ("s", 1, "s")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}", f"{seconds // size}{offset}"
    raise DataError(f"expected a bar spacing of whole seconds, found {delta}")


def _modal_spacing(label: str, index: pd.DatetimeIndex) -> pd.Timedelta:
    if len(index) < 2:
        raise DataError(f"{label}: expected at least 2 bars to infer the timeframe, found "
                        f"{len(index)}; set data.timeframe")
    values, counts = np.unique(np.diff(index.asi8), return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def _check_declared_timeframe(label: str, index: pd.DatetimeIndex, delta: pd.Timedelta,
                              where: str) -> None:
    """A declared timeframe must be the bars' usual spacing (1h declared on daily bars would
    otherwise pass as daily bars with 23 missing bars between each)."""
    if len(index) >= 2:
        spacing = _modal_spacing(label, index)
        if spacing != delta:
            raise ConfigError(f"{where}: expected the spacing of the bars in {label} "
                              f"({describe_delta(spacing)[0]}), found "
                              f"{describe_delta(delta)[0]!r}")


def find_gaps(label: str, index: pd.DatetimeIndex,
              delta: pd.Timedelta) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Missing bars as (first missing, last missing, count); off-grid spacing raises."""
    steps = np.diff(index.asi8)
    step = delta.value
    off = np.flatnonzero((steps % step) != 0)
    if off.size:
        i = int(off[0]) + 1
        raise DataError(f"{label}: row {i + 1} ({iso(index[i])}): expected bars every "
                        f"{describe_delta(delta)[0]}, found "
                        f"{describe_delta(pd.Timedelta(int(steps[i - 1])))[0]} "
                        f"after the previous bar")
    holes = np.flatnonzero(steps > step)
    return [(index[i] + delta, index[i + 1] - delta, int(steps[i] // step) - 1) for i in holes]


# ---------------------------------------------------------------- bars


def load_bars(cfg: DataConfig, source: str = "config") -> tuple[Bars, DataInfo]:
    """Resolve, verify, parse, validate and slice the bars described by ``cfg``.

    ``source`` names the config in error messages. Returns float64 OHLCV (+ known extras) on a
    UTC index named ``timestamp`` (bar open time) and a :class:`DataInfo` for the slice.
    """
    if cfg.dataset is not None:
        entry = dataset_entry(cfg.dataset, f"{source}: data.dataset", kinds=("bars",))
        path, raw, digest = read_dataset_bytes(cfg.dataset, entry)
        name, symbol, timeframe = cfg.dataset, entry["symbol"], entry["timeframe"]
        for key, given, have in (("symbol", cfg.symbol, symbol),
                                 ("timeframe", cfg.timeframe, timeframe)):
            if given is not None and given != have:
                raise ConfigError(f"{source}: data.{key}: expected {have!r} (the {key} of "
                                  f"{name}; data.resample aggregates bars), found {given!r}")
        frame = read_csv_table(str(path), raw, ("timestamp", *OHLCV), EXTRAS)
    else:
        path = Path(str(cfg.path))
        raw, digest = read_user_bytes(path)
        name, symbol, timeframe = path.name.split(".")[0], cfg.symbol or "", cfg.timeframe
        frame = _read_user_bars(path, raw, cfg.format, cfg.columns)
        symbol = symbol or name.split("_")[0].upper()
    label = str(path)
    index = parse_timestamps(label, frame["timestamp"])
    bars = frame.drop(columns="timestamp").set_index(index)
    check_order(label, index)
    _check_values(label, bars)
    _check_bad_ticks(label, bars, cfg.bad_ticks)
    if timeframe is None:
        timeframe = describe_delta(_modal_spacing(label, index))[0]
    delta = timeframe_delta(timeframe, f"{source}: data.timeframe")
    if cfg.timeframe is not None:
        _check_declared_timeframe(label, index, delta, f"{source}: data.timeframe")
    gaps = find_gaps(label, index, delta)
    resampled = None
    if cfg.resample:
        target = timeframe_delta(cfg.resample, f"{source}: data.resample")
        bars, resampled = resample(bars, delta, target, timeframe, cfg.resample,
                                   f"{source}: data.resample")
        if bars.empty:
            raise DataError(f"{label}: expected at least one whole {cfg.resample} bucket of "
                            f"{timeframe} bars, found none")
        timeframe, delta = describe_delta(target)[0], target
        gaps = find_gaps(label, bars.index, delta)
    bars = _slice(bars, cfg, source, name)
    first, last = bars.index[0], bars.index[-1]
    gaps = [g for g in gaps if g[0] - delta >= first and g[1] + delta <= last]
    info = DataInfo(name=name, path=str(path), sha256=digest, symbol=symbol,
                    timeframe=timeframe, freq=describe_delta(delta)[1], first=first,
                    last=last, rows=len(bars), gaps=gaps,
                    zero_volume_bars=int(np.count_nonzero(bars["volume"].to_numpy() == 0)),
                    resampled=resampled)
    return bars, info


def _read_user_bars(path: Path, raw: bytes, fmt: str, columns: dict[str, str]) -> pd.DataFrame:
    label = str(path)
    if fmt == "auto":
        fmt = "parquet" if path.suffix in (".parquet", ".pq") else _sniff_csv(raw)
    if fmt == "parquet":
        return read_parquet_table(label, raw, ("timestamp", *OHLCV), EXTRAS,
                                  rename=lambda names: canonical_names(label, names, columns))
    if fmt == "binance":
        first = raw.split(b",", 1)[0].strip()[:30].decode(errors="replace")
        if not first.isdigit():
            raise DataError(f"{label}: row 1: expected a headerless Binance kline row starting "
                            f"with the open time in ms, found {first!r}")
        return read_csv_table(label, raw, ("timestamp", *OHLCV), EXTRAS, names=BINANCE_COLUMNS)
    return read_csv_table(label, _renamed_header(label, raw, columns), ("timestamp", *OHLCV),
                          EXTRAS)


def _renamed_header(label: str, raw: bytes, columns: dict[str, str]) -> bytes:
    """``raw`` with its header line in bar column names (undecodable or one-column headers are
    left for :func:`read_csv_table` to report)."""
    head, newline, body = raw.partition(b"\n")
    bom = b"\xef\xbb\xbf" if head.startswith(b"\xef\xbb\xbf") else b""
    try:
        line = head[len(bom):].decode("utf-8")
    except UnicodeDecodeError:
        return raw
    ending = "\r" if line.endswith("\r") else ""
    cells = line.rstrip("\r").split(",")
    if len(cells) < 2:
        return raw
    names = canonical_names(label, cells, columns)
    return bom + (",".join(names) + ending).encode() + newline + body


def _sniff_csv(raw: bytes) -> str:
    """``binance`` when the first line is 12 fields starting with a number, else ``csv``."""
    fields = raw.split(b"\n", 1)[0].split(b",")
    return "binance" if len(fields) == len(BINANCE_COLUMNS) and fields[0].isdigit() else "csv"


def read_parquet_table(label: str, raw: bytes, required: tuple[str, ...],
                       optional: tuple[str, ...] | None = (), text_columns: tuple[str, ...] = (),
                       rename: Callable[[list[str]], list[str]] | None = None) -> pd.DataFrame:
    """Parquet bytes -> a frame like :func:`read_csv_table`'s: ``timestamp`` (as stored) and
    float64 columns (``text_columns`` kept as they are); ``rename`` maps the stored names."""
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


def _first_bad(label: str, bars: pd.DataFrame, bad: np.ndarray, what: str, found: str) -> None:
    rows = np.flatnonzero(bad)
    if rows.size:
        i = int(rows[0])
        more = f" (and {rows.size - 1} more rows)" if rows.size > 1 else ""
        raise DataError(f"{label}: row {i + 1} ({iso(bars.index[i])}): expected {what}, found "
                        f"{found.format(**bars.iloc[i].to_dict())}{more}")


def _check_values(label: str, bars: pd.DataFrame) -> None:
    """Finite positive prices, consistent high/low, finite non-negative volume."""
    o, h, lo, c, v = (bars[k].to_numpy() for k in OHLCV)
    for column in PRICES:
        values = bars[column].to_numpy()
        _first_bad(label, bars, ~np.isfinite(values), f"a finite {column} price",
                   f"{column} {{{column}}}")
        _first_bad(label, bars, values <= 0, f"a positive {column} price",
                   f"{column} {{{column}}}")
    _first_bad(label, bars, h < np.maximum(o, c), "high >= max(open, close)",
               "high {high} with open {open}, close {close}")
    _first_bad(label, bars, lo > np.minimum(o, c), "low <= min(open, close)",
               "low {low} with open {open}, close {close}")
    _first_bad(label, bars, ~np.isfinite(v), "a finite volume", "volume {volume}")
    _first_bad(label, bars, v < 0, "a non-negative volume", "volume {volume}")


def _check_bad_ticks(label: str, bars: pd.DataFrame, mode: str) -> None:
    """A lone close >= 50% away from both neighbours: refuse, or warn when asked."""
    close = bars["close"].to_numpy()
    if close.size < 3:
        return
    mid = close[1:-1]
    spike = ((np.abs(mid / close[:-2] - 1) >= BAD_TICK)
             & (np.abs(mid / close[2:] - 1) >= BAD_TICK))
    rows = np.flatnonzero(spike) + 1
    if not rows.size:
        return
    i = int(rows[0])
    more = f" (and {rows.size - 1} more)" if rows.size > 1 else ""
    message = (f"{label}: row {i + 1} ({iso(bars.index[i])}): expected a close within 50% of "
               f"a neighbour, found bad tick close {close[i]} between {close[i - 1]} and "
               f"{close[i + 1]}{more}")
    if mode == "reject":
        raise DataError(message + "; set data.bad_ticks = 'warn' to keep it")
    warnings.warn(message, DataWarning, stacklevel=3)


def _slice(bars: pd.DataFrame, cfg: DataConfig, source: str, name: str) -> pd.DataFrame:
    """Bars with open time in [start, end] (both inclusive); empty or disjoint raises."""
    start = pd.Timestamp(cfg.start) if cfg.start else bars.index[0]
    end = pd.Timestamp(cfg.end) if cfg.end else bars.index[-1]
    out = bars.loc[start:end]
    if out.empty:
        raise DataError(f"{source}: data.start..data.end: expected a range with bars of {name} "
                        f"({iso(bars.index[0])} .. {iso(bars.index[-1])}), found "
                        f"{iso(start)} .. {iso(end)} with no bars")
    return out
