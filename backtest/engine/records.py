"""Simulation records as pandas objects: trades, orders and the result of one run, built from
the per-trade and per-order arrays either engine path produces; and the small array helpers
both paths share (OHLC arrays, direction-filtered signals, NaN for an unset level).

Text columns are categoricals built from integer codes (tens of thousands of Python strings
cost more than the simulation of a million bars). Imports numpy, pandas, the kernels' layout
(reason codes) and :mod:`backtest.native` (bar returns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backtest import native
from backtest.engine import layout
from backtest.types import Bars, Signals, SimResult

TRADE_COLUMNS = ["entry_time", "exit_time", "direction", "size", "entry_price", "exit_price",
                 "pnl", "return_pct", "fees", "funding_paid", "exit_reason", "status"]


ORDER_COLUMNS = ["time", "side", "size", "price", "fees", "reason"]


DIRECTIONS = {"both": layout.DIR_BOTH, "long": layout.DIR_LONG, "short": layout.DIR_SHORT}


def nan_or(value: float | None) -> float:
    return np.nan if value is None else float(value)


def float_array(series: pd.Series | None, n: int) -> np.ndarray:
    if series is None:
        return np.full(n, np.nan)
    return np.ascontiguousarray(series.to_numpy(dtype=np.float64, na_value=np.nan))


def ohlc(bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64))  # type: ignore[return-value]
                 for c in ("open", "high", "low", "close"))


def filtered_signals(signals: Signals, direction: str) -> tuple[np.ndarray, ...]:
    """The four bool arrays with the side excluded by ``direction`` switched off."""
    le, lx, se, sx = (np.ascontiguousarray(a, dtype=bool) for a in signals.bool_arrays())
    off = np.zeros_like(le)
    if direction == "long":
        se, sx = off, off
    elif direction == "short":
        le, lx = off, off
    return le, lx, se, sx


def sim_result(bars: Bars, equity: np.ndarray, position: np.ndarray, trades: pd.DataFrame,
            orders: pd.DataFrame, engine: str, init_cash: float) -> SimResult:
    index = bars.index
    returns = native.kernel("backtest.engine.kernels", "bar_returns_nb")(equity, init_cash)
    # the arrays are fresh and owned here: wrap them without pandas' defensive copy
    return SimResult(equity=pd.Series(equity, index=index, name="equity", copy=False),
                     returns=pd.Series(returns, index=index, name="returns", copy=False),
                     position=pd.Series(position, index=index, name="position", copy=False),
                     trades=trades, orders=orders, engine=engine, init_cash=init_cash)


def _labels(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
    """Text columns as categoricals built from integer codes: converting tens of thousands of
    Python strings costs more than the simulation of a million bars."""
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=list(names))


def trades_frame(index: pd.Index, entry_bar: np.ndarray, exit_bar: np.ndarray,
                  direction: np.ndarray, size: np.ndarray, entry_price: np.ndarray,
                  exit_price: np.ndarray, pnl: np.ndarray, fees: np.ndarray,
                  reason: np.ndarray, is_open: np.ndarray,
                  funding: np.ndarray | None = None) -> pd.DataFrame:
    """Trade records (one row per position) from per-trade arrays."""
    return pd.DataFrame({
        "entry_time": index[entry_bar.astype(np.int64)],
        "exit_time": index[exit_bar.astype(np.int64)],
        "direction": _labels(direction < 0, ("long", "short")),
        "size": size,
        "entry_price": entry_price,
        "exit_price": exit_price,
        "pnl": pnl,
        "return_pct": 100.0 * pnl / (size * entry_price),
        "fees": fees,
        "funding_paid": np.zeros(len(size)) if funding is None else funding,
        "exit_reason": _labels(reason, layout.REASONS),
        "status": _labels(is_open, ("closed", "open")),
    }, columns=TRADE_COLUMNS)


def orders_frame(index: pd.Index, bar: np.ndarray, side: np.ndarray, size: np.ndarray,
                  price: np.ndarray, fees: np.ndarray, reason: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "time": index[bar.astype(np.int64)],
        "side": _labels(side < 0, ("buy", "sell")),
        "size": size,
        "price": price,
        "fees": fees,
        "reason": _labels(reason, layout.REASONS),
    }, columns=ORDER_COLUMNS)
