"""Plain value types that cross module boundaries: bars, signals, simulation results.

Time convention (used everywhere in crashbt): a bar is labelled by its **open** time (UTC) and
a decision is taken at its **close**. A signal at bar ``t`` therefore may use everything known at
the close of ``t``; :mod:`backtest.engine` decides when it fills.

Imports nothing from crashbt but :mod:`backtest.errors`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest.errors import StrategyError

OHLCV = ("open", "high", "low", "close", "volume")

#: Bars: a DataFrame with a tz-aware UTC DatetimeIndex named ``timestamp`` (bar open time),
#: float64 columns ``open high low close volume`` and optional extra columns
#: (``quote_volume``, ``trades``, ``taker_buy_base_volume``, ...).
Bars = pd.DataFrame


@dataclass(frozen=True)
class Signals:
    """What a strategy decided at each bar's close.

    Boolean Series aligned with the bars. ``stop_price`` / ``target_price`` are optional absolute
    price levels for a position opened on that bar's signal (NaN = none); ``entry_fraction`` is an
    optional fraction of *initial* cash to spend on each long entry (tranche buying; the engine
    then accumulates). ``max_bars_held`` asks the engine to close every position that many
    bars after its entry FILL (a time exit owned by the engine, so that it never comes from an
    entry signal the engine ignored). ``levels`` are price levels worth drawing on a chart.
    """

    long_entries: pd.Series
    long_exits: pd.Series
    short_entries: pd.Series | None = None
    short_exits: pd.Series | None = None
    stop_price: pd.Series | None = None
    target_price: pd.Series | None = None
    entry_fraction: pd.Series | None = None
    max_bars_held: int | None = None
    levels: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        index = self.long_entries.index
        for name in ("long_entries", "long_exits", "short_entries", "short_exits"):
            series = getattr(self, name)
            if series is None:
                continue
            if series.dtype != bool:
                raise StrategyError(f"signals: {name}: expected dtype bool, found {series.dtype}")
            _check_index(name, series, index)
        for name in ("stop_price", "target_price", "entry_fraction"):
            series = getattr(self, name)
            if series is not None:
                _check_index(name, series, index)
        held = self.max_bars_held
        if held is not None and (isinstance(held, bool) or not isinstance(held, int | np.integer)
                                 or held < 1):
            raise StrategyError(f"signals: max_bars_held: expected an integer >= 1 or None, "
                                f"found {held!r}")

    def restrict(self, rows: slice) -> Signals:
        """The same signals on a contiguous range of rows (positions, as with ``.iloc``): views,
        no copy, so a search can cut a 1M-bar history into folds for free."""
        changes = {
            name: getattr(self, name).iloc[rows]
            for name in ("long_entries", "long_exits", "short_entries", "short_exits",
                         "stop_price", "target_price", "entry_fraction")
            if getattr(self, name) is not None
        }
        return dataclasses.replace(self, **changes)

    def bool_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Entries and exits as four numpy bool arrays (short ones all False when absent)."""
        none = np.zeros(len(self.long_entries), dtype=bool)
        return (
            self.long_entries.to_numpy(),
            self.long_exits.to_numpy(),
            none if self.short_entries is None else self.short_entries.to_numpy(),
            none if self.short_exits is None else self.short_exits.to_numpy(),
        )


def _check_index(name: str, series: pd.Series, index: pd.Index) -> None:
    if series.index is not index and not series.index.equals(index):
        raise StrategyError(f"signals: {name}: expected the index of the bars, found a different "
                            f"index ({len(series)} rows vs {len(index)})")


@dataclass(frozen=True)
class SimResult:
    """What a simulation returns: plain records, never an engine object.

    ``trades`` columns: ``entry_time, exit_time, direction ('long'|'short'), size, entry_price,
    exit_price, pnl, return_pct, fees, funding_paid, exit_reason, status ('closed'|'open')``;
    an open position is marked to the last close.
    ``orders`` columns: ``time, side ('buy'|'sell'), size, price, fees, reason``.
    ``equity`` and ``position`` are Series on the bar index (equity marked at each close).
    """

    equity: pd.Series
    returns: pd.Series
    position: pd.Series
    trades: pd.DataFrame
    orders: pd.DataFrame
    engine: str
    init_cash: float
