"""``data.resample``: bars aggregated into longer bars by open-time buckets.

A bucket of length ``target`` starts at a multiple of ``target`` counted from Monday
1970-01-05 00:00 UTC (so 4h buckets start at 00, 04, ... UTC, 1d at midnight, 1w on Monday) and
holds the source bars that OPEN inside it: first open, max high, min low, last close, summed
volume (and summed quote volume, trades and taker volumes when present). Its open time is the
bucket start. A bucket at either edge of the data that lacks some of its source bars is a
partial bar (the data starts or ends inside it) and is dropped; the dropped bucket starts are
reported. A bucket inside the data that misses bars because of an exchange gap is kept (the gap
is real, as it is in the source) and counted. Nothing is filled.

External series are not resampled: they are joined to the resampled bars by publication time
(:func:`backtest.data.external.align_to_bars` with the new bar length), so they stay point in
time.

Imports from crashbt only :mod:`backtest.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.errors import ConfigError

ORIGIN = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday: weekly buckets start on Mondays
SUMMED = ("volume", "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume")


@dataclass(frozen=True)
class Resampled:
    """What resampling did to the whole file (it runs before ``data.start``/``end`` slice it):
    the source bar length, the partial edge buckets dropped and the inner buckets kept with fewer
    source bars than a full bucket (exchange gaps), by bucket start."""

    source_timeframe: str
    dropped_partial: tuple[pd.Timestamp, ...]
    inner_incomplete: tuple[pd.Timestamp, ...]


def resample(bars: pd.DataFrame, source: pd.Timedelta, target: pd.Timedelta, source_name: str,
             target_name: str, where: str) -> tuple[pd.DataFrame, Resampled]:
    """``bars`` (on a ``source`` grid) aggregated into ``target`` buckets (module docstring)."""
    if target <= source or target % source != pd.Timedelta(0):
        raise ConfigError(f"{where}: expected a whole multiple of the bars' {source_name} "
                          f"longer than it, found {target_name!r}")
    origin = ORIGIN if bars.index.tz is not None else ORIGIN.tz_localize(None)
    starts = origin + ((bars.index - origin) // target) * target
    groups = bars.groupby(starts, sort=True)
    agg = {"open": "first", "high": "max", "low": "min", "close": "last",
           **{c: "sum" for c in SUMMED if c in bars.columns}}
    out = groups.agg(agg)[[c for c in bars.columns if c in agg]]
    count = groups.size().to_numpy()
    full = target // source
    partial = count < full
    edges = np.zeros(len(out), dtype=bool)
    if len(out):
        edges[[0, -1]] = partial[[0, -1]]
    out.index = pd.DatetimeIndex(out.index).as_unit("ns").rename(bars.index.name)
    info = Resampled(source_timeframe=source_name,
                     dropped_partial=tuple(out.index[edges]),
                     inner_incomplete=tuple(out.index[partial & ~edges]))
    return out.loc[~edges], info
