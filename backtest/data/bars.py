"""Bars: find, read, validate and slice OHLCV data (bundled datasets or user files).

A bundled dataset is a gzip CSV in ``datasets/`` whose sha256 is pinned in
``datasets/manifest.toml``; a user file is a CSV, Parquet or headerless Binance kline CSV whose
header is read by :func:`backtest.data.columns.canonical_names` (``[data.columns]``, common
headers case-insensitively). ``data.resample`` aggregates the bars (:mod:`backtest.data.resample`)
after validation and before slicing. Every
problem is one :class:`~backtest.errors.DataError` line naming the file and the row or column.
Gaps are reported in :class:`DataInfo`, never filled. The file and table readers live in
:mod:`backtest.data.files`.

Zero-volume bars (exchange halts, e.g. Binance 2023-03-24) are valid data: they are kept and
counted in :attr:`DataInfo.zero_volume_bars`, never dropped or refused.

Imports from crashbt only :mod:`backtest.errors`, :mod:`backtest.limits`, :mod:`backtest.redact`,
:mod:`backtest.types` and :mod:`backtest.config`; never vectorbt, ta or optuna.
"""

from __future__ import annotations

import mmap
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.common import iso
from backtest.config.data import DataConfig
from backtest.data.columns import canonical_names
from backtest.data.files import (
    dataset_entry,
    parse_timestamps,
    read_csv_table,
    read_dataset_bytes,
    read_parquet_table,
    read_user_bytes_hashing,
)
from backtest.data.resample import Resampled, resample
from backtest.errors import ConfigError, DataError
from backtest.types import OHLCV, Bars

PRICES = ("open", "high", "low", "close")
EXTRAS = ("quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume")
BINANCE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "close_time",
                   "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume",
                   "ignore")
BAD_TICK = 0.5  # a close this far (relative) from both neighbours is a bad tick
_TIMEFRAME = re.compile(r"^(\d+)(s|m|min|h|d|w)$", re.IGNORECASE)
UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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


# ---------------------------------------------------------------- generic table reading


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
        fmt = cfg.format
        if fmt == "auto" and path.suffix in (".parquet", ".pq"):
            fmt = "parquet"
        raw, hashing = read_user_bytes_hashing(path, mapped=fmt == "parquet")  # parsed in place
        name, symbol, timeframe = path.name.split(".")[0], cfg.symbol or "", cfg.timeframe
        frame = _read_user_bars(path, raw, fmt, cfg.columns)  # while the file is hashed
        digest = hashing.result()
        symbol = symbol or name.split("_")[0].upper()
    del raw  # the file's bytes or map (360 MB for 10M Parquet bars) are parsed: free them now
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


def _read_user_bars(path: Path, raw: bytes | mmap.mmap, fmt: str,
                    columns: dict[str, str]) -> pd.DataFrame:
    """The frame of a user file in ``fmt`` (``raw`` is a memory map only for Parquet)."""
    label = str(path)
    if fmt == "auto":
        fmt = _sniff_csv(raw)
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
    ratio = np.empty(mid.size)  # one float temporary for both sides (10M bars: ~0.1 s less)
    spike = _far_from(mid, close[:-2], ratio)
    spike &= _far_from(mid, close[2:], ratio)
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


def _far_from(mid: np.ndarray, neighbour: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """``|mid / neighbour - 1| >= BAD_TICK``, computed in ``scratch``."""
    np.divide(mid, neighbour, out=scratch)
    scratch -= 1
    np.abs(scratch, out=scratch)
    return scratch >= BAD_TICK


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
