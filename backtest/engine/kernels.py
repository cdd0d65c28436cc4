"""Numba kernels of the crashbt execution engine: plain arrays in, plain arrays out.

The execution convention they implement is documented once, in :mod:`backtest.engine`.
:func:`simulate_column_nb` runs one parameter set over one column of signals and can record
every order and trade; :func:`simulate_columns_nb` runs many columns (one per parameter set)
and returns only per-column summaries, without materializing any pandas object. Both are thin
wrappers of :func:`simulate_perp_column_nb` / :func:`simulate_perp_columns_nb`, which add
leverage, isolated margin, liquidation, funding and per-bar slippage (``leverage`` 0 = spot).

Market context ``mkt`` (n, 4) per bar, or (1, 4) for the same in every bar: base slippage,
impact coefficient, lowest and highest allowed fill. A fill of ``size`` units at ``base`` slips
by ``mkt[i, 0] + mkt[i, 1] x sqrt(size)`` and is clipped to ``[mkt[i, 2], mkt[i, 3]]`` (0 and
inf for the fixed model: no clipping).

Beside the simulation: :func:`equity_from_orders_nb` (equity and position from vectorbt's order
records) and the one-pass statistics that :mod:`backtest.metrics` and
:mod:`backtest.metrics.overfit` read (:func:`curve_stats_nb`, :func:`max_drawdown_nb`,
:func:`return_moments_nb`).

Imports numpy, numba and :mod:`backtest.engine.margin` (scalar formulas compiled here) only; never
vectorbt, pandas or the rest of crashbt.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.engine import margin

# direction filter (ExecutionConfig.direction)
DIR_BOTH, DIR_LONG, DIR_SHORT = 0, 1, 2
# order / trade reasons (index into REASONS)
R_SIGNAL, R_STOP, R_TARGET, R_TRAILING, R_END, R_LIQUIDATION = 0, 1, 2, 3, 4, 5
REASONS = ("signal", "stop", "target", "trailing", "end", "liquidation")
# columns of the order records: bar, side (+1 buy / -1 sell), size, price, fees, reason
ORDER_FIELDS = 6
# columns of the trade records: entry_bar, exit_bar, direction (+1/-1), size, entry_price,
# exit_price, pnl, fees, reason, open (1.0 while still open at the end); perp runs add funding
TRADE_FIELDS = 10
PERP_TRADE_FIELDS = 11
# actions decided from one bar's signals
_NONE, _OPEN_LONG, _OPEN_SHORT, _CLOSE, _ADD_LONG = 0, 1, 2, 3, 4
# slots of the per-column state vector
(S_CASH, S_POS, S_ENTRY_BAR, S_ENTRY_COST, S_ENTRY_FEES, S_STOP, S_TARGET, S_EXTREME,
 S_ORDERS, S_TRADES, S_FEES) = range(11)
# perp slots: leverage (0 = spot), liquidation fee rate, notional cap at that leverage; the open
# position's isolated margin balance, liquidation price, tier rate and amount, funding paid;
# run totals of funding and liquidations
(S_LEV, S_LIQ_FEE, S_NCAP, S_MARGIN, S_LIQ, S_MMR, S_CUM, S_FUNDING, S_FUND_TOTAL,
 S_LIQS) = range(11, 21)
N_STATE = 21
# S_CASH is "virtual cash": equity = S_CASH + S_POS x price for spot and perp alike (a perp
# entry books -size x price like a spot buy; the margin is tracked in S_MARGIN)

_liq_price_nb = njit(cache=True)(margin.liquidation_price)
_tier_nb = njit(cache=True)(margin.tier_index)


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
def fill_price_nb(mkt: np.ndarray, bar: int, base: float, buy: bool, size: float) -> float:
    """Fill price of a market order of ``size`` units at ``base`` in bar ``bar`` (see module)."""
    row = bar if mkt.shape[0] > 1 else 0  # one row: the same context in every bar
    slip = mkt[row, 0] + mkt[row, 1] * np.sqrt(max(size, 0.0))
    px = base * (1.0 + slip) if buy else base * (1.0 - slip)
    return min(max(px, mkt[row, 2]), mkt[row, 3])


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
              is_open: bool, cover: float, record: bool, trades_out: np.ndarray) -> None:
    """Record the open position as a trade; ``cover`` is a perp liquidation's loss beyond its
    isolated margin (not charged to the account), perp pnl also counts the funding paid."""
    k = int(st[S_TRADES])
    if record:
        pos = st[S_POS]
        size = abs(pos)
        entry_px = st[S_ENTRY_COST] / size
        fees = st[S_ENTRY_FEES] + exit_fees
        pnl = pos * (exit_px - entry_px) - fees
        trades_out[k, 0] = st[S_ENTRY_BAR]
        trades_out[k, 1] = bar
        trades_out[k, 2] = 1.0 if pos > 0 else -1.0
        trades_out[k, 3] = size
        trades_out[k, 4] = entry_px
        trades_out[k, 5] = exit_px
        trades_out[k, 6] = pnl
        trades_out[k, 7] = fees
        trades_out[k, 8] = reason
        trades_out[k, 9] = 1.0 if is_open else 0.0
        if st[S_LEV] > 0.0:
            trades_out[k, 6] = pnl - st[S_FUNDING] + cover
            trades_out[k, 10] = st[S_FUNDING]
    st[S_TRADES] = k + 1


@njit(cache=True)
def _flat_nb(st: np.ndarray) -> None:
    st[S_POS] = 0.0
    st[S_MARGIN] = 0.0
    st[S_LIQ] = np.nan


@njit(cache=True)
def _close_nb(st: np.ndarray, bar: int, base: float, reason: int, fee: float, record: bool,
              orders_out: np.ndarray, trades_out: np.ndarray, mkt: np.ndarray) -> None:
    """Close the whole position at ``base`` moved against the trader by the slippage."""
    pos = st[S_POS]
    px = fill_price_nb(mkt, bar, base, pos < 0, abs(pos))
    fees = abs(pos) * px * fee
    st[S_CASH] += pos * px - fees
    _order_nb(st, bar, -1.0 if pos > 0 else 1.0, abs(pos), px, fees, reason, record, orders_out)
    _trade_nb(st, bar, px, fees, reason, False, 0.0, record, trades_out)
    _flat_nb(st)


@njit(cache=True)
def _liquidate_nb(st: np.ndarray, bar: int, base: float, record: bool, orders_out: np.ndarray,
                  trades_out: np.ndarray, mkt: np.ndarray) -> None:
    """Liquidate at ``base`` (the liquidation price or a gapped open), slipped and clipped.

    The fee is liquidation_fee_rate x notional, taken only from what is left of the isolated
    margin; a loss beyond the margin (a gap past the bankruptcy price) is not charged.
    """
    pos = st[S_POS]
    size = abs(pos)
    px = fill_price_nb(mkt, bar, base, pos < 0, size)
    left = st[S_MARGIN] + pos * (px - st[S_ENTRY_COST] / size)
    fees = min(st[S_LIQ_FEE] * size * px, max(left, 0.0))
    cover = max(-left, 0.0)
    st[S_CASH] += pos * px - fees + cover
    _order_nb(st, bar, -1.0 if pos > 0 else 1.0, size, px, fees, R_LIQUIDATION, record,
              orders_out)
    _trade_nb(st, bar, px, fees, R_LIQUIDATION, False, cover, record, trades_out)
    st[S_LIQS] += 1.0
    _flat_nb(st)


@njit(cache=True)
def _set_liq_nb(st: np.ndarray) -> None:
    """Liquidation price of the open position from its entry, margin balance and tier."""
    pos = st[S_POS]
    st[S_LIQ] = _liq_price_nb(st[S_ENTRY_COST] / abs(pos), pos, st[S_MARGIN], st[S_MMR],
                              st[S_CUM])


@njit(cache=True)
def _funding_nb(st: np.ndarray, rate: float, price: float) -> None:
    """Settle funding: the position pays position x price x rate (a long pays a positive rate)
    out of its isolated margin, which moves its liquidation price."""
    amount = st[S_POS] * price * rate
    st[S_CASH] -= amount
    st[S_MARGIN] -= amount
    st[S_FUNDING] += amount
    st[S_FUND_TOTAL] += amount
    _set_liq_nb(st)


@njit(cache=True)
def _free_cash_nb(st: np.ndarray) -> float:
    """Cash not tied up in the position: all of it for spot; for perp, virtual cash minus the
    isolated margin plus the entry notional booked into it (see S_CASH)."""
    if st[S_LEV] == 0.0 or st[S_POS] == 0.0:
        return st[S_CASH]
    if st[S_POS] > 0:
        return st[S_CASH] + (st[S_ENTRY_COST] - st[S_MARGIN])
    return st[S_CASH] - (st[S_MARGIN] + st[S_ENTRY_COST])


@njit(cache=True)
def _open_nb(st: np.ndarray, bar: int, base: float, is_long: bool, spend_cap: float,
             stop_abs: float, target_abs: float, fee: float, sl: float, tp: float,
             record: bool, orders_out: np.ndarray, mkt: np.ndarray, tiers: np.ndarray) -> None:
    """Spend ``min(free cash, spend_cap)`` including fees on a position (as margin for perp,
    buying leverage x as much notional); add to a long."""
    perp = st[S_LEV] > 0.0
    lev = st[S_LEV] if perp else 1.0
    spend = min(_free_cash_nb(st), spend_cap)
    px = fill_price_nb(mkt, bar, base, is_long, spend * lev / (base * (1.0 + lev * fee)))
    size = spend * lev / (px * (1.0 + lev * fee))
    if perp and (abs(st[S_POS]) + size) * px > st[S_NCAP]:
        size = st[S_NCAP] / px - abs(st[S_POS])
    if not size > 0.0:
        return
    fees = size * px * fee
    st[S_CASH] += (-size * px if is_long else size * px) - fees
    _order_nb(st, bar, 1.0 if is_long else -1.0, size, px, fees, R_SIGNAL, record, orders_out)
    if st[S_POS] == 0.0:
        st[S_ENTRY_BAR] = bar
        st[S_ENTRY_COST] = 0.0
        st[S_ENTRY_FEES] = 0.0
        st[S_FUNDING] = 0.0
        st[S_STOP], st[S_TARGET] = _levels_nb(is_long, px, sl, tp, stop_abs, target_abs)
        st[S_EXTREME] = px
    st[S_ENTRY_COST] += size * px
    st[S_ENTRY_FEES] += fees
    st[S_POS] += size if is_long else -size
    if perp:
        st[S_MARGIN] += size * px / lev
        tier = _tier_nb(tiers[:, 0], st[S_ENTRY_COST])
        st[S_MMR] = tiers[tier, 1]
        st[S_CUM] = tiers[tier, 2]
        _set_liq_nb(st)


@njit(cache=True)
def _signal_nb(st: np.ndarray, sig: int, bar: int, base: float,
               le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
               stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
               init_cash: float, fee: float, sl: float, tp: float, direction: int,
               record: bool, orders_out: np.ndarray, trades_out: np.ndarray, mkt: np.ndarray,
               tiers: np.ndarray) -> None:
    """Act on the signals decided at bar ``sig``, filling at ``base`` in bar ``bar``."""
    has_frac = use_frac and frac[sig] == frac[sig]
    action = _action_nb(st[S_POS], le[sig] and direction != DIR_SHORT, lx[sig],
                        se[sig] and direction != DIR_LONG, sx[sig], has_frac)
    if action == _NONE:
        return
    pos = st[S_POS]
    if pos != 0.0 and action != _ADD_LONG:
        _close_nb(st, bar, base, R_SIGNAL, fee, record, orders_out, trades_out, mkt)
    if action != _CLOSE:
        is_long = action != _OPEN_SHORT
        cap = frac[sig] * init_cash if is_long and has_frac else np.inf
        _open_nb(st, bar, base, is_long, cap, stop_px[sig], target_px[sig], fee, sl, tp,
                 record, orders_out, mkt, tiers)


@njit(cache=True)
def _gap_liquidation_nb(st: np.ndarray, i: int, o: float, record: bool, orders_out: np.ndarray,
                        trades_out: np.ndarray, mkt: np.ndarray) -> bool:
    """Liquidate at the open when it is already beyond the liquidation price; True if so."""
    pos = st[S_POS]
    liq = st[S_LIQ]
    if liq == liq and ((pos > 0 and o <= liq) or (pos < 0 and o >= liq)):
        _liquidate_nb(st, i, o, record, orders_out, trades_out, mkt)
        return True
    return False


@njit(cache=True)
def _has_levels_nb(st: np.ndarray, tsl: float) -> bool:
    """Whether the open position has any exit level to check (stop, target, trailing stop or
    liquidation price); without one, :func:`_stops_nb` has nothing to do."""
    return (st[S_STOP] == st[S_STOP] or st[S_TARGET] == st[S_TARGET] or tsl == tsl
            or st[S_LIQ] == st[S_LIQ])


@njit(cache=True)
def _stops_nb(st: np.ndarray, i: int, o: float, h: float, lo: float, tsl: float, fee: float,
              record: bool, orders_out: np.ndarray, trades_out: np.ndarray,
              mkt: np.ndarray) -> bool:
    """Check liquidation and the stop/target/trailing levels in bar ``i``; True if closed.

    An open beyond the liquidation price liquidates at the open. Otherwise the liquidation
    price acts as one more stop: the adverse level nearer the open (the tighter of stop and
    liquidation price, liquidation on a tie) fires first.
    The trailing level used in bar ``i`` comes from the extreme seen *before* this bar (the
    entry fill, then highs/lows of completed bars); bar ``i``'s own high/low updates it after.
    """
    if _gap_liquidation_nb(st, i, o, record, orders_out, trades_out, mkt):
        return True
    pos = st[S_POS]
    liq = st[S_LIQ]
    stop = st[S_STOP]
    reason = R_STOP
    if tsl == tsl:
        trail = st[S_EXTREME] * (1.0 - tsl) if pos > 0 else st[S_EXTREME] * (1.0 + tsl)
        if not ((pos > 0 and trail <= stop) or (pos < 0 and trail >= stop)):
            stop = trail
            reason = R_TRAILING
    if liq == liq and not ((pos > 0 and stop > liq) or (pos < 0 and stop < liq)):
        stop = liq
        reason = R_LIQUIDATION
    base, reason = _stop_exit_nb(pos, o, h, lo, stop, st[S_TARGET], reason)
    if base == base:
        if reason == R_LIQUIDATION:
            _liquidate_nb(st, i, base, record, orders_out, trades_out, mkt)
        else:
            _close_nb(st, i, base, reason, fee, record, orders_out, trades_out, mkt)
        return True
    if pos > 0 and h > st[S_EXTREME]:
        st[S_EXTREME] = h
    elif pos < 0 and lo < st[S_EXTREME]:
        st[S_EXTREME] = lo
    return False


@njit(cache=True)
def simulate_perp_column_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
    init_cash: float, fee: float, sl: float, tp: float, tsl: float,
    direction: int, fill_close: bool, record: bool,
    equity_out: np.ndarray, pos_out: np.ndarray, orders_out: np.ndarray, trades_out: np.ndarray,
    mkt: np.ndarray, tiers: np.ndarray, fund_open: np.ndarray, fund_inside: np.ndarray,
    leverage: float, liq_fee: float, notional_cap: float,
) -> np.ndarray:
    """Simulate one column with leverage, liquidation, funding and per-bar slippage.

    Arguments as :func:`simulate_column_nb` plus ``mkt`` (n, 4) (module docstring), ``tiers``
    (k, 4) (:mod:`backtest.margin`), the summed funding rate of settlements at each bar's open
    (``fund_open``) and strictly inside it (``fund_inside``), and ``leverage`` (0 = spot
    accounting: no margin, no liquidation), ``liq_fee`` and ``notional_cap`` (the largest
    notional the tiers allow at that leverage). ``trades_out`` needs 11 columns (funding paid).
    """
    n = close.shape[0]
    st = np.zeros(N_STATE)
    st[S_CASH] = init_cash
    st[S_LEV] = leverage
    st[S_LIQ_FEE] = liq_fee
    st[S_NCAP] = notional_cap
    st[S_LIQ] = np.nan
    for i in range(n):
        stopped = False
        if st[S_POS] != 0.0:
            if fund_open[i] != 0.0:
                _funding_nb(st, fund_open[i], open_[i])
            stopped = _gap_liquidation_nb(st, i, open_[i], record, orders_out, trades_out, mkt)
        if not fill_close and i >= 1 and (le[i - 1] or lx[i - 1] or se[i - 1] or sx[i - 1]):
            _signal_nb(st, i - 1, i, open_[i], le, lx, se, sx, stop_px, target_px, frac,
                       use_frac, init_cash, fee, sl, tp, direction, record, orders_out,
                       trades_out, mkt, tiers)
        if st[S_POS] != 0.0 and fund_inside[i] != 0.0:
            _funding_nb(st, fund_inside[i], open_[i])
        if st[S_POS] != 0.0 and _has_levels_nb(st, tsl):
            stopped = _stops_nb(st, i, open_[i], high[i], low[i], tsl, fee, record,
                                orders_out, trades_out, mkt) or stopped
        if fill_close and not stopped and (le[i] or lx[i] or se[i] or sx[i]):
            _signal_nb(st, i, i, close[i], le, lx, se, sx, stop_px, target_px, frac, use_frac,
                       init_cash, fee, sl, tp, direction, record, orders_out, trades_out, mkt,
                       tiers)
        if record:
            equity_out[i] = st[S_CASH] + st[S_POS] * close[i]
            pos_out[i] = st[S_POS]
    if st[S_POS] != 0.0:
        _trade_nb(st, n - 1, close[n - 1], 0.0, R_END, True, 0.0, record, trades_out)
    st[S_CASH] += st[S_POS] * close[n - 1]  # final equity, stored in the cash slot
    return st


@njit(cache=True)
def fixed_market_nb(slip: float) -> np.ndarray:
    """Market context of the fixed slippage model, one row for every bar: ``slip``, no
    impact, no clip."""
    mkt = np.empty((1, 4))
    mkt[0, 0] = slip
    mkt[0, 1] = 0.0
    mkt[0, 2] = 0.0
    mkt[0, 3] = np.inf
    return mkt


@njit(cache=True)
def simulate_column_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
    init_cash: float, fee: float, slip: float, sl: float, tp: float, tsl: float,
    direction: int, fill_close: bool, record: bool,
    equity_out: np.ndarray, pos_out: np.ndarray, orders_out: np.ndarray, trades_out: np.ndarray,
) -> np.ndarray:
    """Simulate one column of spot signals; returns the final state vector (see ``S_*`` slots).

    Prices are 1-D float arrays of length n; signals 1-D bool; ``stop_px``/``target_px``/``frac``
    1-D float (NaN = none). ``sl``/``tp``/``tsl`` are fractions of the entry fill (NaN = off).
    When ``record`` is true, ``equity_out``/``pos_out`` (n,), ``orders_out`` (3n+1, 6) and
    ``trades_out`` (2n+1, 10) are filled; otherwise they may be empty arrays. An open position
    at the end is counted (and recorded) as a trade valued at the last close.
    """
    n = close.shape[0]
    none = np.zeros(n)
    return simulate_perp_column_nb(
        open_, high, low, close, le, lx, se, sx, stop_px, target_px, frac, use_frac, init_cash,
        fee, sl, tp, tsl, direction, fill_close, record, equity_out, pos_out, orders_out,
        trades_out, fixed_market_nb(slip), np.empty((0, 4)), none, none, 0.0, 0.0, np.inf)


@njit(cache=True)
def simulate_perp_columns_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
    init_cash: float, fee: float, sl: np.ndarray, tp: np.ndarray, tsl: np.ndarray,
    direction: int, fill_close: bool, mkt: np.ndarray, tiers: np.ndarray,
    fund_open: np.ndarray, fund_inside: np.ndarray, leverage: np.ndarray, liq_fee: float,
    notional_cap: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Many parameter sets at once: column c of the 2-D (n, k) signal arrays with ``sl[c]``,
    ``tp[c]``, ``tsl[c]``, ``leverage[c]``, ``notional_cap[c]``; ``stop_px``/``target_px``/
    ``frac`` are (n, k) or (n, 1) (shared). The rest as :func:`simulate_perp_column_nb`.

    Returns per-column (final equity, number of trades incl. an open one, total fees, total
    funding paid, number of liquidations).
    """
    k = le.shape[1]
    final_equity = np.empty(k)
    n_trades = np.empty(k, dtype=np.int64)
    fees = np.empty(k)
    funding = np.empty(k)
    liquidations = np.empty(k, dtype=np.int64)
    empty1 = np.empty(0)
    empty2 = np.empty((0, 0))
    for c in range(k):
        cs = c if stop_px.shape[1] > 1 else 0
        ct = c if target_px.shape[1] > 1 else 0
        cf = c if frac.shape[1] > 1 else 0
        st = simulate_perp_column_nb(
            open_, high, low, close, le[:, c], lx[:, c], se[:, c], sx[:, c], stop_px[:, cs],
            target_px[:, ct], frac[:, cf], use_frac, init_cash, fee, sl[c], tp[c], tsl[c],
            direction, fill_close, False, empty1, empty1, empty2, empty2, mkt, tiers, fund_open,
            fund_inside, leverage[c], liq_fee, notional_cap[c])
        final_equity[c] = st[S_CASH]
        n_trades[c] = int(st[S_TRADES])
        fees[c] = st[S_FEES]
        funding[c] = st[S_FUND_TOTAL]
        liquidations[c] = int(st[S_LIQS])
    return final_equity, n_trades, fees, funding, liquidations


@njit(cache=True)
def simulate_columns_nb(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, use_frac: bool,
    init_cash: float, fee: float, slip: float, sl: np.ndarray, tp: np.ndarray, tsl: np.ndarray,
    direction: int, fill_close: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many spot parameter sets at once: column c of the 2-D (n, k) signal arrays with
    ``sl[c]``, ``tp[c]``, ``tsl[c]``; ``stop_px``/``target_px``/``frac`` are (n, k) or (n, 1).

    Returns per-column (final equity, number of trades incl. an open one, total fees).
    """
    n, k = close.shape[0], le.shape[1]
    none = np.zeros(n)
    final_equity, n_trades, fees, _, _ = simulate_perp_columns_nb(
        open_, high, low, close, le, lx, se, sx, stop_px, target_px, frac, use_frac, init_cash,
        fee, sl, tp, tsl, direction, fill_close, fixed_market_nb(slip), np.empty((0, 4)),
        none, none, np.zeros(k), 0.0, np.full(k, np.inf))
    return final_equity, n_trades, fees


@njit(cache=True)
def _drawdown_step_nb(x: float, peak: float, mdd: float) -> tuple[float, float]:
    """Running peak and largest ``1 - equity / peak`` after equity ``x``; divides only when a
    deeper drawdown is possible."""
    if x > peak:
        return x, mdd
    if x < peak * (1.0 - mdd):
        return peak, max(mdd, 1.0 - x / peak)
    return peak, mdd


@njit(cache=True)
def max_drawdown_nb(equity: np.ndarray) -> float:
    """Largest ``1 - equity / running peak`` in one pass (numpy's maximum.accumulate is the
    slowest step of a 1M-bar run's metrics)."""
    peak, mdd = -np.inf, 0.0
    for x in equity:
        peak, mdd = _drawdown_step_nb(x, peak, mdd)
    return mdd


@njit(cache=True)
def curve_stats_nb(equity: np.ndarray, returns: np.ndarray, position: np.ndarray
                   ) -> tuple[float, float, float, float, int]:
    """The metrics' inputs in one pass over an equity curve, its bar returns and the position:
    mean return, sample variance (ddof=1; sums shifted by the first return, which keeps them
    exact enough when the mean dwarfs the spread), sum of squared negative returns, max
    drawdown, number of bars with a position."""
    n = returns.shape[0]
    shift = returns[0]
    s1 = s2 = down = 0.0
    peak, mdd = -np.inf, 0.0
    exposed = 0
    for i in range(n):
        exposed += position[i] != 0.0
        r = returns[i]
        d = r - shift
        s1 += d
        s2 += d * d
        if r < 0.0:
            down += r * r
        peak, mdd = _drawdown_step_nb(equity[i], peak, mdd)
    var = max((s2 - s1 * s1 / n) / (n - 1), 0.0) if n > 1 else 0.0
    return shift + s1 / n, var, down, mdd, exposed


@njit(cache=True)
def return_moments_nb(returns: np.ndarray) -> tuple[float, float, float, float, float]:
    """Mean; the sums of squared, cubed and fourth-power deviations from it; max - min. Two
    passes over the array instead of numpy's dozen."""
    n = returns.shape[0]
    total, low, high = 0.0, np.inf, -np.inf
    for x in returns:
        total += x
        low = min(low, x)
        high = max(high, x)
    mean = total / n
    m2 = m3 = m4 = 0.0
    for x in returns:
        d = x - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    return mean, m2, m3, m4, high - low


@njit(cache=True)
def _snapped_sum_nb(a: float, b: float) -> float:
    """``a + b``, or exactly 0.0 when the two cancel to within 1e-9 relative (1e-12 absolute):
    vectorbt's rule for its cash and position sums, kept so that :func:`equity_from_orders_nb`
    equals vectorbt's value series bit for bit."""
    if np.sign(a) != np.sign(b):
        x, y = abs(a), abs(b)
        if np.isfinite(x) and np.isfinite(y) and abs(x - y) <= max(1e-9 * max(x, y), 1e-12):
            return 0.0
        return a + b
    s = a + b
    if np.isfinite(s) and abs(s) <= 1e-12:
        return 0.0
    return s


@njit(cache=True)
def equity_from_orders_nb(close: np.ndarray, bar: np.ndarray, side: np.ndarray,
                          size: np.ndarray, price: np.ndarray, fees: np.ndarray,
                          init_cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Equity (cash + position x close) and position at each bar from order records sorted by
    bar (``side`` 0 buy / 1 sell), in one pass: what vectorbt's asset_flow, assets, cash_flow,
    cash, asset_value and value compute in six."""
    n = close.shape[0]
    equity, position = np.empty(n), np.empty(n)
    cash, pos, k = init_cash, 0.0, 0
    for i in range(n):
        cash_flow, asset_flow = 0.0, 0.0
        while k < bar.shape[0] and bar[k] == i:
            signed = -size[k] if side[k] == 1 else size[k]
            asset_flow = _snapped_sum_nb(asset_flow, signed)
            cash_flow = _snapped_sum_nb(cash_flow, -signed * price[k] - fees[k])
            k += 1
        pos = _snapped_sum_nb(pos, asset_flow)
        cash = _snapped_sum_nb(cash, cash_flow)
        position[i] = pos
        equity[i] = cash + close[i] * pos
    return equity, position
