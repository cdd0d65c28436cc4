"""The engine kernels' data layout, without numba: what callers build and read.

Input groups (:class:`Market`, :class:`SignalArrays`), output arrays (:class:`Records`), the
scalar settings of a run (:data:`TERMS`), the slots of the final state vector (``S_*``), the
columns of order and trade records, reasons, sizing kinds and the batched engine's trade totals
(:data:`TOTALS`). :mod:`backtest.engine.kernels` and :mod:`backtest.engine.batch_kernels`
compute on this layout; the rest of crashbt imports it from here, so that reading a result
never imports numba (the kernels themselves come from :mod:`backtest.native`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# direction filter (ExecutionConfig.direction)
DIR_BOTH, DIR_LONG, DIR_SHORT = 0, 1, 2
# order / trade reasons (index into REASONS)
R_SIGNAL, R_STOP, R_TARGET, R_TRAILING, R_END, R_LIQUIDATION, R_TIME = range(7)
REASONS = ("signal", "stop", "target", "trailing", "end", "liquidation", "time")
# sizing kinds (ExecutionConfig.size.kind, index into SIZE_KINDS)
SIZE_KINDS = ("all_in", "fraction", "notional", "risk", "vol_target")
SIZE_ALL_IN, SIZE_FRACTION, SIZE_NOTIONAL, SIZE_RISK, SIZE_VOL_TARGET = range(5)
# columns of the order records: bar, side (+1 buy / -1 sell), size, price, fees, reason
ORDER_FIELDS = 6
# columns of the trade records: entry_bar, exit_bar, direction (+1/-1), size, entry_price,
# exit_price, pnl, fees, reason, open (1.0 while still open at the end), funding paid
TRADE_FIELDS = 11
#: a flat account whose cash is below this fraction of init_cash is wiped out: cash 0 exactly
DUST = 1e-9
# slots of the per-column state vector
(S_CASH, S_POS, S_ENTRY_BAR, S_ENTRY_COST, S_ENTRY_FEES, S_STOP, S_TARGET, S_EXTREME,
 S_ORDERS, S_TRADES, S_FEES) = range(11)
# perp slots: the open position's isolated margin balance, liquidation price, tier rate and
# amount, funding paid; run totals of funding and liquidations
S_MARGIN, S_LIQ, S_MMR, S_CUM, S_FUNDING, S_FUND_TOTAL, S_LIQS = range(11, 18)
N_STATE = 18
# S_CASH is "virtual cash": equity = S_CASH + S_POS x price for spot and perp alike (a perp
# entry books -size x price like a spot buy; the margin is tracked in S_MARGIN)

#: the scalar settings of one run (one record per column in :func:`simulate_columns_nb`):
#: fractions sl/tp/tsl (NaN = off), ``max_bars`` (0 = no time exit), ``leverage`` (0 = spot
#: accounting), ``notional_cap`` (the largest notional the tiers allow at that leverage),
#: ``size_kind`` (index into SIZE_KINDS) and its ``size_value``
TERMS = np.dtype([
    ("init_cash", "f8"), ("fee", "f8"), ("sl", "f8"), ("tp", "f8"), ("tsl", "f8"),
    ("direction", "i8"), ("fill_close", "?"), ("use_frac", "?"), ("max_bars", "i8"),
    ("leverage", "f8"), ("liq_fee", "f8"), ("notional_cap", "f8"), ("size_kind", "i8"),
    ("size_value", "f8"),
], align=True)


class Market(NamedTuple):
    """Per-bar market arrays of one run (module docstring)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    slip: np.ndarray
    fund_open: np.ndarray
    fund_inside: np.ndarray
    vol: np.ndarray


class SignalArrays(NamedTuple):
    """One column of signals: bool entries/exits, float levels (NaN = none)."""

    long_entries: np.ndarray
    long_exits: np.ndarray
    short_entries: np.ndarray
    short_exits: np.ndarray
    stop_price: np.ndarray
    target_price: np.ndarray
    entry_fraction: np.ndarray


class Records(NamedTuple):
    """Output arrays of a recorded run: equity and position (n,), orders (3n+1, ORDER_FIELDS),
    trades (2n+1, TRADE_FIELDS)."""

    equity: np.ndarray
    position: np.ndarray
    orders: np.ndarray
    trades: np.ndarray


def terms_record(count: int = 1) -> np.ndarray:
    """``count`` zeroed :data:`TERMS` records (fill the fields, pass one record or the array)."""
    return np.zeros(count, dtype=TERMS)


def no_records() -> Records:
    """Empty output arrays: a column run for its summary only."""
    return Records(np.empty(0), np.empty(0), np.empty((0, 0)), np.empty((0, 0)))


#: per (column, range) trade totals of the batched engine: trades (closed + one open at the
#: end), open trades, closed trades with pnl > 0, their pnl sum, minus the pnl sum of closed
#: losers, fees of every trade (entry and exit fills)
TOTALS = ("trades", "open", "wins", "gains", "losses", "fees")
T_TRADES, T_OPEN, T_WINS, T_GAINS, T_LOSSES, T_FEES = range(len(TOTALS))
