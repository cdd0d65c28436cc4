"""The vectorbt-rust path: vectorbt 1.2's ``from_signals`` simulation for what it expresses
exactly (see :mod:`backtest.engine.simulate` for when that is), on raw 1-D arrays through
:mod:`backtest.engine.vbt_rust`, and equity/position rebuilt from its order records.
"""

from __future__ import annotations

import numpy as np

from backtest import native
from backtest.config.execution import ExecutionConfig
from backtest.engine import layout
from backtest.engine.records import (
    filtered_signals,
    nan_or,
    ohlc,
    orders_frame,
    sim_result,
    trades_frame,
)
from backtest.types import Bars, Signals, SimResult


def uses_stops(execution: ExecutionConfig) -> bool:
    return any(x is not None for x in (execution.sl_stop, execution.tp_stop, execution.tsl_stop))


def vectorbt_from_signals(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                           le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
                           execution: ExecutionConfig, next_open: bool
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """vectorbt 1.2's engine-neutral ``dispatch`` layer on raw 1-D arrays, Rust engine.

    It is what ``Portfolio.from_signals`` runs after broadcasting its arguments (every argument
    below is one of its values, spelled as the enum integers), without the pandas wrapping that
    costs as much as the simulation at 1M bars. Returns exit-trade records, equity and position
    per bar (one pass of :func:`backtest.engine.vectorbt_kernels.equity_from_orders_nb` over the
    order records; equal to vectorbt's ``value`` and ``assets``,
    tests/test_engine_differential.py).
    """
    from backtest.engine import vbt_rust as dispatch  # the Rust kernels, not `import vectorbt`
    from backtest.engine.vbt_rust import enums

    n = len(c)
    shape = (n, 1)
    close = c.reshape(shape)
    one = np.ones(1, dtype=np.int64)
    init_cash = np.full(1, float(execution.init_cash))
    sl = execution.tsl_stop if execution.tsl_stop is not None else execution.sl_stop
    orders, _ = dispatch.simulate_from_signals(
        shape, one, init_cash, np.zeros(shape, dtype=np.int64),
        long_entries=le, long_exits=lx, short_entries=se, short_exits=sx,
        size=np.asarray(np.inf), price=o if next_open else c,
        size_type=np.asarray(enums.SizeType.Amount), fees=np.asarray(execution.market_fee_rate),
        fixed_fees=np.asarray(0.0), slippage=np.asarray(execution.slippage_rate),
        min_size=np.asarray(0.0), max_size=np.asarray(np.inf),
        size_granularity=np.asarray(np.nan), reject_prob=np.asarray(0.0),
        lock_cash=np.asarray(False), allow_partial=np.asarray(True),
        raise_reject=np.asarray(False), log=np.asarray(False),
        accumulate=np.asarray(enums.AccumulationMode.Disabled),
        upon_long_conflict=np.asarray(enums.ConflictMode.Ignore),
        upon_short_conflict=np.asarray(enums.ConflictMode.Ignore),
        upon_dir_conflict=np.asarray(enums.DirectionConflictMode.Ignore),
        upon_opposite_entry=np.asarray(enums.OppositeEntryMode.Reverse),
        val_price=np.asarray(np.inf), open=o, high=h, low=lo, close=close,
        sl_stop=np.asarray(nan_or(sl)), sl_trail=np.asarray(execution.tsl_stop is not None),
        tp_stop=np.asarray(nan_or(execution.tp_stop)),
        stop_entry_price=np.asarray(enums.StopEntryPrice.FillPrice),
        stop_exit_price=np.asarray(enums.StopExitPrice.StopMarket),
        upon_stop_exit=np.asarray(enums.StopExitMode.Close),
        upon_stop_update=np.asarray(enums.StopUpdateMode.Override),
        use_stops=uses_stops(execution), auto_call_seq=False, ffill_val_price=True,
        update_value=False, max_orders=n, max_logs=1, init_temp_records=False, flex_2d=False,
        seed=None, engine="rust")
    col_map = (np.arange(len(orders), dtype=np.int64), np.array([len(orders)], dtype=np.int64))
    trades = dispatch.get_exit_trades(orders, close, col_map, engine="rust")
    equity, position = native.kernel("backtest.engine.vectorbt_kernels", "equity_from_orders_nb")(
        c, orders["idx"], orders["side"], orders["size"], orders["price"], orders["fees"],
        float(execution.init_cash))
    return trades, equity, position


def simulate_vectorbt(bars: Bars, signals: Signals, execution: ExecutionConfig,
                       freq: str) -> SimResult:
    """The Rust path: shift signals ourselves, raw arrays in (no tz-aware index, no pandas)."""
    o, h, lo, c = ohlc(bars)
    le, lx, se, sx = filtered_signals(signals, execution.direction)
    next_open = execution.fill == "next_open"
    if next_open:  # vectorbt fills at the signal bar: hand it the signal one bar later
        le, lx, se, sx = (np.concatenate(([False], a[:-1])) for a in (le, lx, se, sx))
    use_stops = uses_stops(execution)
    rec, equity, position = vectorbt_from_signals(o, h, lo, c, le, lx, se, sx, execution,
                                                   next_open)
    entry_bar, exit_bar = rec["entry_idx"], rec["exit_idx"]
    is_long = rec["direction"] == 0
    is_open = rec["status"] == 0
    n = len(c)
    exit_bar = np.where(is_open, n - 1, exit_bar)
    exit_price = np.where(is_open, c[n - 1], rec["exit_price"])
    fees = rec["entry_fees"] + rec["exit_fees"]
    size = rec["size"]
    pnl = np.where(is_long, 1.0, -1.0) * size * (exit_price - rec["entry_price"]) - fees
    reason = np.full(len(rec), layout.R_SIGNAL)
    if use_stops:
        reason = _vectorbt_exit_reasons(rec, is_long, le, lx, se, sx, c, execution)
    reason = np.where(is_open, layout.R_END, reason)
    trades = trades_frame(bars.index, entry_bar, exit_bar, np.where(is_long, 1.0, -1.0), size,
                           rec["entry_price"], exit_price, pnl, fees, reason, is_open)
    closed = ~is_open
    bar = np.concatenate((entry_bar, exit_bar[closed]))
    # exits sort before entries at the same bar (a reversal closes first)
    leg = np.concatenate((np.ones(len(rec)), np.zeros(closed.sum())))
    order = np.lexsort((leg, bar))
    columns = (  # every entry, then the exit of every closed trade
        bar,
        np.concatenate((np.where(is_long, 1.0, -1.0), np.where(is_long, -1.0, 1.0)[closed])),
        np.concatenate((size, size[closed])),
        np.concatenate((rec["entry_price"], exit_price[closed])),
        np.concatenate((rec["entry_fees"], rec["exit_fees"][closed])),
        np.concatenate((np.full(len(rec), layout.R_SIGNAL), reason[closed])),
    )
    orders = orders_frame(bars.index, *(column[order] for column in columns))
    from importlib.metadata import version  # ~15 ms of imports, only on this path

    engine = f"vectorbt-rust {version('vectorbt-rust')}"
    return sim_result(bars, equity, position, trades, orders, engine, float(execution.init_cash))


def _vectorbt_exit_reasons(rec: np.ndarray, is_long: np.ndarray, le: np.ndarray, lx: np.ndarray,
                           se: np.ndarray, sx: np.ndarray, close: np.ndarray,
                           execution: ExecutionConfig) -> np.ndarray:
    """vectorbt does not record why a position closed: a close-fill exit at a bar carrying a
    closing signal is a signal exit, anything else is the (single) configured stop kind."""
    j = rec["exit_idx"]
    slip = execution.slippage_rate
    signal_px = np.where(is_long, close[j] * (1 - slip), close[j] * (1 + slip))
    closing = np.where(is_long, lx[j] | se[j], sx[j] | le[j])
    by_signal = closing & np.isclose(rec["exit_price"], signal_px, rtol=1e-12, atol=0.0)
    stop_kind = (layout.R_TARGET if execution.tp_stop is not None
                 else layout.R_TRAILING if execution.tsl_stop is not None else layout.R_STOP)
    return np.where(by_signal, layout.R_SIGNAL, stop_kind)
