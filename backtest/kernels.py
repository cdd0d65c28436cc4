"""Numba kernels of the crashbt execution engine: plain arrays in, plain arrays out.

The execution convention they implement is documented once, in :mod:`backtest.engine`.
:func:`simulate_column_nb` runs one parameter set over one column of signals and can record
every order and trade; :func:`simulate_columns_nb` runs many columns (one per parameter set)
and returns only per-column summaries, without materializing any pandas object.

Imports numpy and numba only (never vectorbt, pandas or the rest of crashbt).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# direction filter (ExecutionConfig.direction)
DIR_BOTH, DIR_LONG, DIR_SHORT = 0, 1, 2
# order / trade reasons (index into REASONS)
R_SIGNAL, R_STOP, R_TARGET, R_TRAILING, R_END = 0, 1, 2, 3, 4
REASONS = ("signal", "stop", "target", "trailing", "end")
# columns of the order records: bar, side (+1 buy / -1 sell), size, price, fees, reason
ORDER_FIELDS = 6
# columns of the trade records: entry_bar, exit_bar, direction (+1/-1), size, entry_price,
# exit_price, pnl, fees, reason, open (1.0 while still open at the end)
TRADE_FIELDS = 10
# actions decided from one bar's signals
_NONE, _OPEN_LONG, _OPEN_SHORT, _CLOSE, _ADD_LONG = 0, 1, 2, 3, 4
# slots of the per-column state vector
(S_CASH, S_POS, S_ENTRY_BAR, S_ENTRY_COST, S_ENTRY_FEES, S_STOP, S_TARGET, S_EXTREME,
 S_ORDERS, S_TRADES, S_FEES) = range(11)
N_STATE = 11


@njit(cache=True)
def _action_nb(pos: float, le: bool, lx: bool, se: bool, sx: bool, can_add: bool) -> int:
    """What one bar's signals ask for, given the position (see the engine docstring)."""
    if le and lx:
        le = lx = False
    if se and sx:
        se = sx = False
    if le and se:
        le = se = False
    if pos > 0:
        if se:
            return _OPEN_SHORT
        if lx:
            return _CLOSE
        if le and can_add:
            return _ADD_LONG
        return _NONE
    if pos < 0:
        if le:
            return _OPEN_LONG
        if sx:
            return _CLOSE
        return _NONE
    if le:
        return _OPEN_LONG
    if se:
        return _OPEN_SHORT
    return _NONE


@njit(cache=True)
def _stop_exit_nb(pos: float, o: float, h: float, lo: float, stop: float, target: float,
                  stop_reason: int) -> tuple[float, int]:
    """Exit price (before slippage) and reason if a stop/target fires in this bar, else NaN.

    A gap through a level fills at the open; otherwise a touched level fills at the level; if
    both the stop and the target are touched inside the bar, the stop is assumed first.
    """
    if pos > 0:
        if stop == stop and o <= stop:
            return o, stop_reason
        if target == target and o >= target:
            return o, R_TARGET
        if stop == stop and lo <= stop:
            return stop, stop_reason
        if target == target and h >= target:
            return target, R_TARGET
    else:
        if stop == stop and o >= stop:
            return o, stop_reason
        if target == target and o <= target:
            return o, R_TARGET
        if stop == stop and h >= stop:
            return stop, stop_reason
        if target == target and lo <= target:
            return target, R_TARGET
    return np.nan, R_SIGNAL


@njit(cache=True)
def _levels_nb(is_long: bool, px: float, sl: float, tp: float, stop_abs: float,
               target_abs: float) -> tuple[float, float]:
    """Stop and target levels of a new position: the tighter of the fraction and the level."""
    if is_long:
        stop = px * (1.0 - sl) if sl == sl else np.nan
        target = px * (1.0 + tp) if tp == tp else np.nan
        if stop_abs == stop_abs and not stop_abs <= stop:
            stop = stop_abs
        if target_abs == target_abs and not target_abs >= target:
            target = target_abs
    else:
        stop = px * (1.0 + sl) if sl == sl else np.nan
        target = px * (1.0 - tp) if tp == tp else np.nan
        if stop_abs == stop_abs and not stop_abs >= stop:
            stop = stop_abs
        if target_abs == target_abs and not target_abs <= target:
            target = target_abs
    return stop, target


@njit(cache=True)
def _order_nb(st: np.ndarray, bar: int, side: float, size: float, px: float, fees: float,
              reason: int, record: bool, orders_out: np.ndarray) -> None:
    k = int(st[S_ORDERS])
    if record:
        orders_out[k, 0] = bar
        orders_out[k, 1] = side
        orders_out[k, 2] = size
        orders_out[k, 3] = px
        orders_out[k, 4] = fees
        orders_out[k, 5] = reason
    st[S_ORDERS] = k + 1
    st[S_FEES] += fees


@njit(cache=True)
def _trade_nb(st: np.ndarray, bar: int, exit_px: float, exit_fees: float, reason: int,
              is_open: bool, record: bool, trades_out: np.ndarray) -> None:
    k = int(st[S_TRADES])
    if record:
        pos = st[S_POS]
        size = abs(pos)
        entry_px = st[S_ENTRY_COST] / size
        fees = st[S_ENTRY_FEES] + exit_fees
        trades_out[k, 0] = st[S_ENTRY_BAR]
        trades_out[k, 1] = bar
        trades_out[k, 2] = 1.0 if pos > 0 else -1.0
        trades_out[k, 3] = size
        trades_out[k, 4] = entry_px
        trades_out[k, 5] = exit_px
        trades_out[k, 6] = pos * (exit_px - entry_px) - fees
        trades_out[k, 7] = fees
        trades_out[k, 8] = reason
        trades_out[k, 9] = 1.0 if is_open else 0.0
    st[S_TRADES] = k + 1


@njit(cache=True)
def _close_nb(st: np.ndarray, bar: int, base: float, reason: int, fee: float, slip: float,
              record: bool, orders_out: np.ndarray, trades_out: np.ndarray) -> None:
    """Close the whole position at ``base`` moved against the trader by the slippage."""
    pos = st[S_POS]
    px = base * (1.0 - slip) if pos > 0 else base * (1.0 + slip)
    fees = abs(pos) * px * fee
    st[S_CASH] += pos * px - fees
    _order_nb(st, bar, -1.0 if pos > 0 else 1.0, abs(pos), px, fees, reason, record, orders_out)
    _trade_nb(st, bar, px, fees, reason, False, record, trades_out)
    st[S_POS] = 0.0


@njit(cache=True)
def _open_nb(st: np.ndarray, bar: int, base: float, is_long: bool, spend_cap: float,
             stop_abs: float, target_abs: float, fee: float, slip: float, sl: float, tp: float,
             record: bool, orders_out: np.ndarray) -> None:
    """Buy (or sell short) ``min(cash, spend_cap)`` worth including fees; add to a long."""
    px = base * (1.0 + slip) if is_long else base * (1.0 - slip)
    size = min(st[S_CASH], spend_cap) / (px * (1.0 + fee))
    if not size > 0.0:
        return
    fees = size * px * fee
    st[S_CASH] += (-size * px if is_long else size * px) - fees
    _order_nb(st, bar, 1.0 if is_long else -1.0, size, px, fees, R_SIGNAL, record, orders_out)
    if st[S_POS] == 0.0:
        st[S_ENTRY_BAR] = bar
        st[S_ENTRY_COST] = 0.0
        st[S_ENTRY_FEES] = 0.0
        st[S_STOP], st[S_TARGET] = _levels_nb(is_long, px, sl, tp, stop_abs, target_abs)
        st[S_EXTREME] = px
    st[S_ENTRY_COST] += size * px
    st[S_ENTRY_FEES] += fees
    st[S_POS] += size if is_long else -size


@njit(cache=True)
def _signal_nb(st: np.ndarray, sig: int, bar: int, base: float,
               le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
               stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
               init_cash: float, fee: float, slip: float, sl: float, tp: float, direction: int,
               record: bool, orders_out: np.ndarray, trades_out: np.ndarray) -> None:
    """Act on the signals decided at bar ``sig``, filling at ``base`` in bar ``bar``."""
    has_frac = use_frac and frac[sig] == frac[sig]
    action = _action_nb(st[S_POS], le[sig] and direction != DIR_SHORT, lx[sig],
                        se[sig] and direction != DIR_LONG, sx[sig], has_frac)
    if action == _NONE:
        return
    pos = st[S_POS]
    if pos != 0.0 and action != _ADD_LONG:
        _close_nb(st, bar, base, R_SIGNAL, fee, slip, record, orders_out, trades_out)
    if action != _CLOSE:
        is_long = action != _OPEN_SHORT
        cap = frac[sig] * init_cash if is_long and has_frac else np.inf
        _open_nb(st, bar, base, is_long, cap, stop_px[sig], target_px[sig], fee, slip, sl, tp,
                 record, orders_out)


@njit(cache=True)
def _stops_nb(st: np.ndarray, i: int, o: float, h: float, lo: float, tsl: float, fee: float,
              slip: float, record: bool, orders_out: np.ndarray, trades_out: np.ndarray) -> bool:
    """Check the position's stop/target/trailing levels in bar ``i``; True if it was closed.

    The trailing level used in bar ``i`` comes from the extreme seen *before* this bar (the
    entry fill, then highs/lows of completed bars); bar ``i``'s own high/low updates it after.
    """
    pos = st[S_POS]
    stop = st[S_STOP]
    reason = R_STOP
    if tsl == tsl:
        trail = st[S_EXTREME] * (1.0 - tsl) if pos > 0 else st[S_EXTREME] * (1.0 + tsl)
        if not ((pos > 0 and trail <= stop) or (pos < 0 and trail >= stop)):
            stop = trail
            reason = R_TRAILING
    base, reason = _stop_exit_nb(pos, o, h, lo, stop, st[S_TARGET], reason)
    if base == base:
        _close_nb(st, i, base, reason, fee, slip, record, orders_out, trades_out)
        return True
    if pos > 0 and h > st[S_EXTREME]:
        st[S_EXTREME] = h
    elif pos < 0 and lo < st[S_EXTREME]:
        st[S_EXTREME] = lo
    return False


@njit(cache=True)
def simulate_column_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
    init_cash: float, fee: float, slip: float, sl: float, tp: float, tsl: float,
    direction: int, fill_close: bool, record: bool,
    equity_out: np.ndarray, pos_out: np.ndarray, orders_out: np.ndarray, trades_out: np.ndarray,
) -> np.ndarray:
    """Simulate one column of signals; returns the final state vector (see ``S_*`` slots).

    Prices are 1-D float arrays of length n; signals 1-D bool; ``stop_px``/``target_px``/``frac``
    1-D float (NaN = none). ``sl``/``tp``/``tsl`` are fractions of the entry fill (NaN = off).
    When ``record`` is true, ``equity_out``/``pos_out`` (n,), ``orders_out`` (3n+1, 6) and
    ``trades_out`` (2n+1, 10) are filled; otherwise they may be empty arrays. An open position
    at the end is counted (and recorded) as a trade valued at the last close.
    """
    n = close.shape[0]
    st = np.zeros(N_STATE)
    st[S_CASH] = init_cash
    for i in range(n):
        if not fill_close and i >= 1:
            _signal_nb(st, i - 1, i, open_[i], le, lx, se, sx, stop_px, target_px, frac,
                       use_frac, init_cash, fee, slip, sl, tp, direction, record, orders_out,
                       trades_out)
        stopped = False
        if st[S_POS] != 0.0:
            stopped = _stops_nb(st, i, open_[i], high[i], low[i], tsl, fee, slip, record,
                                orders_out, trades_out)
        if fill_close and not stopped:
            _signal_nb(st, i, i, close[i], le, lx, se, sx, stop_px, target_px, frac, use_frac,
                       init_cash, fee, slip, sl, tp, direction, record, orders_out, trades_out)
        if record:
            equity_out[i] = st[S_CASH] + st[S_POS] * close[i]
            pos_out[i] = st[S_POS]
    if st[S_POS] != 0.0:
        _trade_nb(st, n - 1, close[n - 1], 0.0, R_END, True, record, trades_out)
    st[S_CASH] += st[S_POS] * close[n - 1]  # final equity, stored in the cash slot
    return st


@njit(cache=True)
def simulate_columns_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
    init_cash: float, fee: float, slip: float, sl: np.ndarray, tp: np.ndarray, tsl: np.ndarray,
    direction: int, fill_close: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many parameter sets at once: column c of the 2-D (n, k) signal arrays with ``sl[c]``,
    ``tp[c]``, ``tsl[c]``; ``stop_px``/``target_px``/``frac`` are (n, k) or (n, 1) (shared).

    Returns per-column (final equity, number of trades incl. an open one, total fees).
    """
    k = le.shape[1]
    final_equity = np.empty(k)
    n_trades = np.empty(k, dtype=np.int64)
    fees = np.empty(k)
    empty1 = np.empty(0)
    empty2 = np.empty((0, 0))
    for c in range(k):
        cs = c if stop_px.shape[1] > 1 else 0
        ct = c if target_px.shape[1] > 1 else 0
        cf = c if frac.shape[1] > 1 else 0
        st = simulate_column_nb(open_, high, low, close, le[:, c], lx[:, c], se[:, c], sx[:, c],
                                stop_px[:, cs], target_px[:, ct], frac[:, cf], use_frac,
                                init_cash, fee, slip, sl[c], tp[c], tsl[c], direction,
                                fill_close, False, empty1, empty1, empty2, empty2)
        final_equity[c] = st[S_CASH]
        n_trades[c] = int(st[S_TRADES])
        fees[c] = st[S_FEES]
    return final_equity, n_trades, fees
