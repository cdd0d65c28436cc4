"""Execution engine (spot): turn bars + signals into equity, positions, orders and trades.

This is the ONE place that states crashbt's execution convention; tests/test_engine_scenarios.py
pins every rule below with a candle table.

Fills
    A signal decided at bar t's close fills at bar t+1's OPEN (``fill="next_open"``, default) or
    at bar t's CLOSE (``fill="close"``). Under next_open a signal on the last bar never fills.
    Slippage moves every fill (signals, stops and targets alike) against the trader: a buy
    fills at ``price * (1 + slippage_rate)``, a sell at ``price * (1 - slippage_rate)``. Every
    fill pays ``fee_rate * size * fill_price``.
Sizing
    All-in: a long entry buys ``cash / (price * (1 + fee_rate))`` units, a short entry sells the
    same notional. With ``signals.entry_fraction`` a long entry spends ``min(fraction *
    init_cash, cash)`` (fees included) and adds to an open long (tranches); a NaN fraction on
    an entry bar means an all-in entry that does not add. Shorts are always all-in. Exits
    close the whole position.
Signals
    ``execution.direction`` drops the unused side ("long" ignores short entries). Same-side
    entry and exit on one bar cancel each other; a long and a short entry on one bar cancel
    each other. An opposite entry while in a position closes it and opens the other side at
    the same fill price (two orders). A long entry while long is ignored unless it carries an
    entry_fraction.
Stops
    ``sl_stop``/``tp_stop``/``tsl_stop`` are fractions of the position's first entry fill price;
    ``signals.stop_price``/``target_price`` are absolute levels read at the entry SIGNAL bar t
    (the position opened at t+1 uses them). When both a fraction and a level are given, the
    tighter one (closer to the entry) is used. Levels are set when a position opens; tranche
    additions do not move them. Stops are checked from the bar in which the position was
    opened when that happened at the open (next_open: the rest of the entry bar came after the
    fill); a position opened at a close is checked from the next bar. In a checked bar:
    1. the open already beyond the stop -> exit at the open (reason stop/trailing);
    2. else the open already beyond the target -> exit at the open (reason target);
    3. else the low (long) / high (short) touches the stop -> exit at the stop level;
    4. else the high (long) / low (short) touches the target -> exit at the target level.
    So when stop and target are both touched inside one bar, the stop is assumed first.
    The trailing stop sits ``tsl_stop`` below the highest high (long) / above the lowest low
    (short) seen since entry. The extreme starts at the entry fill price and a bar's own
    high/low updates it only AFTER that bar has been checked: the entry bar is checked
    against ``fill * (1 - tsl_stop)`` and its high moves the level from the next bar on. With
    both a fixed and a trailing stop the tighter one applies (reason names the one that fired).
    No re-entry on the bar on which a stop fired: under ``fill="close"`` the signal at that
    bar's close is dropped (under next_open a stop is the last event of its bar anyway).
End of data
    An open position stays open, valued at the last close: its trade has status "open",
    exit_reason "end", exit_price = last close and pnl without exit fees.
Records
    ``equity`` = cash + position x close at every bar; ``returns`` its bar-to-bar change (the
    first bar against init_cash); ``position`` in units (negative = short); trade
    ``entry_price`` is the size-weighted mean fill, ``return_pct`` = 100 x pnl / (size x
    entry_price), ``funding_paid`` 0 (spot).

Engines: vectorbt 1.2 ``Portfolio.from_signals(engine="rust")`` ("vectorbt-rust 1.2.0") runs
what it can express exactly: no stops, or ``fill="close"`` with one of sl/tsl or tp alone (its
stops start in the bar after the entry, which is our rule for close fills). Everything else
(stops with next_open fills, absolute levels, tranches, sl+tsl, tp with sl/tsl, or
``engine="numba"``) runs in :mod:`backtest.kernels` ("crashbt-kernel (numba)").
JIT: the Rust path still calls a few small numba helpers of vectorbt (record mapping,
cached on disk); the kernels are ``cache=True`` and compile once per machine.

vectorbt is imported here and nowhere else; this module must not import features, signals,
strategies, optimize, metrics or report modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version

import numpy as np
import pandas as pd

from backtest import kernels
from backtest.config import ExecutionConfig
from backtest.errors import StrategyError
from backtest.types import Bars, Signals, SimResult

ENGINE_KERNEL = "crashbt-kernel (numba)"
TRADE_COLUMNS = ["entry_time", "exit_time", "direction", "size", "entry_price", "exit_price",
                 "pnl", "return_pct", "fees", "funding_paid", "exit_reason", "status"]
ORDER_COLUMNS = ["time", "side", "size", "price", "fees", "reason"]
_DIRECTIONS = {"both": kernels.DIR_BOTH, "long": kernels.DIR_LONG, "short": kernels.DIR_SHORT}


def _nan_or(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _float_array(series: pd.Series | None, n: int) -> np.ndarray:
    if series is None:
        return np.full(n, np.nan)
    return np.ascontiguousarray(series.to_numpy(dtype=np.float64, na_value=np.nan))


def _ohlc(bars: Bars) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64))  # type: ignore[return-value]
                 for c in ("open", "high", "low", "close"))


def _filtered_signals(signals: Signals, direction: str) -> tuple[np.ndarray, ...]:
    """The four bool arrays with the side excluded by ``direction`` switched off."""
    le, lx, se, sx = (np.ascontiguousarray(a, dtype=bool) for a in signals.bool_arrays())
    off = np.zeros_like(le)
    if direction == "long":
        se, sx = off, off
    elif direction == "short":
        le, lx = off, off
    return le, lx, se, sx


def needs_kernel(signals: Signals, execution: ExecutionConfig) -> bool:
    """True when vectorbt cannot express the convention for this run (see module docstring)."""
    if execution.engine == "numba" or signals.entry_fraction is not None:
        return True
    for level in (signals.stop_price, signals.target_price):
        if level is not None and level.notna().any():
            return True
    sl, tp, tsl = (x is not None
                   for x in (execution.sl_stop, execution.tp_stop, execution.tsl_stop))
    if not (sl or tp or tsl):
        return False
    return execution.fill == "next_open" or (sl and tsl) or (tp and (sl or tsl))


def simulate(bars: Bars, signals: Signals, execution: ExecutionConfig, freq: str) -> SimResult:
    """Simulate one run under the convention of this module; ``freq`` is a pandas offset."""
    if len(bars) < 1:
        raise StrategyError("bars: rows: expected at least 1 bar, found 0")
    if not signals.long_entries.index.equals(bars.index):
        raise StrategyError(f"signals: index: expected the index of the bars, found a different "
                            f"index ({len(signals.long_entries)} rows vs {len(bars)})")
    if needs_kernel(signals, execution):
        return _simulate_kernel(bars, signals, execution)
    return _simulate_vectorbt(bars, signals, execution, freq)


def _result(bars: Bars, equity: np.ndarray, position: np.ndarray, trades: pd.DataFrame,
            orders: pd.DataFrame, engine: str, init_cash: float) -> SimResult:
    index = bars.index
    eq = pd.Series(equity, index=index, name="equity")
    returns = eq / np.concatenate(([init_cash], equity[:-1])) - 1.0
    return SimResult(equity=eq, returns=returns.rename("returns"),
                     position=pd.Series(position, index=index, name="position"),
                     trades=trades, orders=orders, engine=engine, init_cash=init_cash)


def _trades_frame(index: pd.Index, entry_bar: np.ndarray, exit_bar: np.ndarray,
                  direction: np.ndarray, size: np.ndarray, entry_price: np.ndarray,
                  exit_price: np.ndarray, pnl: np.ndarray, fees: np.ndarray,
                  reason: np.ndarray, is_open: np.ndarray) -> pd.DataFrame:
    """Trade records (one row per position) from per-trade arrays."""
    return pd.DataFrame({
        "entry_time": index[entry_bar.astype(np.int64)],
        "exit_time": index[exit_bar.astype(np.int64)],
        "direction": np.where(direction > 0, "long", "short"),
        "size": size,
        "entry_price": entry_price,
        "exit_price": exit_price,
        "pnl": pnl,
        "return_pct": 100.0 * pnl / (size * entry_price),
        "fees": fees,
        "funding_paid": np.zeros(len(size)),
        "exit_reason": np.asarray(kernels.REASONS, dtype=object)[reason.astype(np.int64)],
        "status": np.where(is_open, "open", "closed"),
    }, columns=TRADE_COLUMNS)


def _orders_frame(index: pd.Index, bar: np.ndarray, side: np.ndarray, size: np.ndarray,
                  price: np.ndarray, fees: np.ndarray, reason: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "time": index[bar.astype(np.int64)],
        "side": np.where(side > 0, "buy", "sell"),
        "size": size,
        "price": price,
        "fees": fees,
        "reason": np.asarray(kernels.REASONS, dtype=object)[reason.astype(np.int64)],
    }, columns=ORDER_COLUMNS)


def _simulate_kernel(bars: Bars, signals: Signals, execution: ExecutionConfig) -> SimResult:
    n = len(bars)
    o, h, lo, c = _ohlc(bars)
    le, lx, se, sx = _filtered_signals(signals, execution.direction)
    equity, position = np.empty(n), np.empty(n)
    orders, trades = np.empty((3 * n + 1, kernels.ORDER_FIELDS)), np.empty(
        (2 * n + 1, kernels.TRADE_FIELDS))
    st = kernels.simulate_column_nb(
        o, h, lo, c, le, lx, se, sx, _float_array(signals.stop_price, n),
        _float_array(signals.target_price, n), _float_array(signals.entry_fraction, n),
        signals.entry_fraction is not None, float(execution.init_cash), execution.fee_rate,
        execution.slippage_rate, _nan_or(execution.sl_stop), _nan_or(execution.tp_stop),
        _nan_or(execution.tsl_stop), _DIRECTIONS[execution.direction],
        execution.fill == "close", True, equity, position, orders, trades)
    od = orders[: int(st[kernels.S_ORDERS])]
    td = trades[: int(st[kernels.S_TRADES])]
    return _result(
        bars, equity, position,
        _trades_frame(bars.index, td[:, 0], td[:, 1], td[:, 2], td[:, 3], td[:, 4], td[:, 5],
                      td[:, 6], td[:, 7], td[:, 8], td[:, 9] > 0),
        _orders_frame(bars.index, od[:, 0], od[:, 1], od[:, 2], od[:, 3], od[:, 4], od[:, 5]),
        ENGINE_KERNEL, float(execution.init_cash))


def _simulate_vectorbt(bars: Bars, signals: Signals, execution: ExecutionConfig,
                       freq: str) -> SimResult:
    """The Rust path: shift signals ourselves, raw arrays in (no tz-aware index), all args set."""
    import vectorbt as vbt

    o, h, lo, c = _ohlc(bars)
    le, lx, se, sx = _filtered_signals(signals, execution.direction)
    next_open = execution.fill == "next_open"
    if next_open:
        le, lx, se, sx = (np.concatenate(([False], a[:-1])) for a in (le, lx, se, sx))
    use_stops = any(x is not None for x in (execution.sl_stop, execution.tp_stop,
                                             execution.tsl_stop))
    sl = execution.tsl_stop if execution.tsl_stop is not None else execution.sl_stop
    pf = vbt.Portfolio.from_signals(
        close=c, entries=le, exits=lx, short_entries=se, short_exits=sx,
        size=np.inf, size_type="amount", price=o if next_open else c,
        fees=execution.fee_rate, fixed_fees=0.0, slippage=execution.slippage_rate,
        min_size=0.0, max_size=np.inf, size_granularity=np.nan, reject_prob=0.0,
        lock_cash=False, allow_partial=True, raise_reject=False, log=False, accumulate=False,
        upon_long_conflict="ignore", upon_short_conflict="ignore", upon_dir_conflict="ignore",
        upon_opposite_entry="reverse", val_price=np.inf, open=o, high=h, low=lo,
        sl_stop=_nan_or(sl), sl_trail=execution.tsl_stop is not None,
        tp_stop=_nan_or(execution.tp_stop), stop_entry_price="fillprice",
        stop_exit_price="stopmarket", upon_stop_exit="close", upon_stop_update="override",
        use_stops=use_stops, init_cash=float(execution.init_cash), cash_sharing=False,
        call_seq="default", ffill_val_price=True, update_value=False, max_orders=None,
        max_logs=0, init_temp_records=False, seed=None, freq=freq, attach_call_seq=False,
        engine="rust",
    )
    rec = pf.exit_trades.values
    entry_bar, exit_bar = rec["entry_idx"], rec["exit_idx"]
    is_long = rec["direction"] == 0
    is_open = rec["status"] == 0
    n = len(c)
    exit_bar = np.where(is_open, n - 1, exit_bar)
    exit_price = np.where(is_open, c[n - 1], rec["exit_price"])
    fees = rec["entry_fees"] + rec["exit_fees"]
    size = rec["size"]
    pnl = np.where(is_long, 1.0, -1.0) * size * (exit_price - rec["entry_price"]) - fees
    reason = np.full(len(rec), kernels.R_SIGNAL)
    if use_stops:
        reason = _vectorbt_exit_reasons(rec, is_long, le, lx, se, sx, c, execution)
    reason = np.where(is_open, kernels.R_END, reason)
    trades = _trades_frame(bars.index, entry_bar, exit_bar, np.where(is_long, 1.0, -1.0), size,
                           rec["entry_price"], exit_price, pnl, fees, reason, is_open)
    closed = ~is_open
    orders = _orders_frame(
        bars.index,
        np.concatenate((entry_bar, exit_bar[closed])),
        np.concatenate((np.where(is_long, 1.0, -1.0), np.where(is_long, -1.0, 1.0)[closed])),
        np.concatenate((size, size[closed])),
        np.concatenate((rec["entry_price"], exit_price[closed])),
        np.concatenate((rec["entry_fees"], rec["exit_fees"][closed])),
        np.concatenate((np.full(len(rec), kernels.R_SIGNAL), reason[closed])),
    )
    # exits sort before entries at the same bar (a reversal closes first)
    leg = np.concatenate((np.ones(len(rec)), np.zeros(closed.sum())))
    orders = orders.iloc[np.lexsort((leg, orders["time"].to_numpy()))].reset_index(drop=True)
    engine = f"vectorbt-rust {version('vectorbt-rust')}"
    return _result(bars, pf.value().to_numpy(), pf.assets().to_numpy(), trades, orders, engine,
                   float(execution.init_cash))


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
    stop_kind = (kernels.R_TARGET if execution.tp_stop is not None
                 else kernels.R_TRAILING if execution.tsl_stop is not None else kernels.R_STOP)
    return np.where(by_signal, kernels.R_SIGNAL, stop_kind)


def simulate_many(bars: Bars, signals: Sequence[Signals],
                  executions: Sequence[ExecutionConfig]) -> pd.DataFrame:
    """Run one parameter set per column in the kernel; returns final_equity, n_trades, fees.

    ``signals[i]`` runs with ``executions[i]``. Only the stop fractions may differ between
    executions (the rest is shared by construction of a sweep); a mismatch raises ValueError.
    """
    if len(signals) != len(executions) or not signals:
        raise ValueError("simulate_many: expected as many signals as executions, at least one")
    base = executions[0]
    shared = base.model_dump(exclude={"sl_stop", "tp_stop", "tsl_stop", "engine"})
    for ex in executions[1:]:
        if ex.model_dump(exclude={"sl_stop", "tp_stop", "tsl_stop", "engine"}) != shared:
            raise ValueError("simulate_many: executions may differ only in sl/tp/tsl_stop")
    n = len(bars)
    o, h, lo, c = _ohlc(bars)
    cols = [_filtered_signals(s, base.direction) for s in signals]
    le, lx, se, sx = (np.asfortranarray(np.stack([col[k] for col in cols], axis=1))
                      for k in range(4))

    def levels(name: str) -> np.ndarray:
        return np.asfortranarray(np.stack([_float_array(getattr(s, name), n) for s in signals],
                                          axis=1))

    use_frac = any(s.entry_fraction is not None for s in signals)
    final, n_trades, fees = kernels.simulate_columns_nb(
        o, h, lo, c, le, lx, se, sx, levels("stop_price"), levels("target_price"),
        levels("entry_fraction"), use_frac, float(base.init_cash), base.fee_rate,
        base.slippage_rate, np.array([_nan_or(e.sl_stop) for e in executions]),
        np.array([_nan_or(e.tp_stop) for e in executions]),
        np.array([_nan_or(e.tsl_stop) for e in executions]), _DIRECTIONS[base.direction],
        base.fill == "close")
    return pd.DataFrame({"final_equity": final, "n_trades": n_trades, "fees": fees})
