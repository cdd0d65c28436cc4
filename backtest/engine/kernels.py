"""Numba kernels of the crashbt execution engine: plain arrays in, plain arrays out.

The execution convention they implement is documented once, in :mod:`backtest.engine`.
:func:`simulate_column_nb` runs one parameter set over one column of signals and can record
every order and trade; :func:`simulate_columns_nb` runs many columns (one per parameter set)
and returns only per-column summaries, without materializing any pandas object. Both cover spot
and perpetual futures (leverage, isolated margin, liquidation, funding; ``leverage`` 0 = spot).

Inputs come grouped, not as a long positional list:

* :class:`Market` - per-bar arrays of one run: OHLC, the slippage context ``slip``, funding
  settled at each bar's open and inside it, and ``vol`` (annualized realized volatility known
  at each bar's close, read by vol-target sizing; empty when unused).
* :class:`SignalArrays` - one column of signals: four bool arrays and the per-bar stop, target
  and entry-fraction levels (NaN = none).
* ``terms`` - one record of :data:`TERMS` (``terms_record``): the scalar settings of a run.
* :class:`Records` - the output arrays (equity, position, orders, trades), empty when a
  column is run without recording.

Slippage context ``slip`` (n, 4) per bar, or (1, 4) for the same in every bar: base slippage,
impact coefficient, lowest and highest allowed fill. A fill of ``size`` units at ``base`` slips
by ``slip[i, 0] + slip[i, 1] x sqrt(size)`` and is clipped to ``[slip[i, 2], slip[i, 3]]`` (0
and inf for the fixed model: no clipping).

Beside the simulation: :func:`bar_returns_nb` (the one definition of a bar return). The
statistics of a finished curve live in :mod:`backtest.metrics.kernels`.

Imports numpy, numba, :mod:`backtest.engine.margin` (scalar formulas compiled here) and the data
layout of :mod:`backtest.engine.layout` only; never vectorbt, pandas or the rest of crashbt.
crashbt calls the kernels of ``EXPORTS`` through :mod:`backtest.native`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.engine import margin
from backtest.engine.layout import (
    DIR_LONG,
    DIR_SHORT,
    DUST,
    N_STATE,
    R_END,
    R_LIQUIDATION,
    R_SIGNAL,
    R_STOP,
    R_TARGET,
    R_TIME,
    R_TRAILING,
    S_CASH,
    S_CUM,
    S_ENTRY_BAR,
    S_ENTRY_COST,
    S_ENTRY_FEES,
    S_EXTREME,
    S_FEES,
    S_FUND_TOTAL,
    S_FUNDING,
    S_LIQ,
    S_LIQS,
    S_MARGIN,
    S_MMR,
    S_ORDERS,
    S_POS,
    S_STOP,
    S_TARGET,
    S_TRADES,
    SIZE_FRACTION,
    SIZE_NOTIONAL,
    SIZE_RISK,
    SIZE_VOL_TARGET,
    Market,
    Records,
    SignalArrays,
)

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {
    "simulate_column_nb": "f8[](Market, SignalArrays, TERMS, f8[,], Records)",
    "simulate_columns_nb": "(f8[], i8[], f8[], f8[], i8[])(Market, b1[,], b1[,], b1[,], b1[,], "
                           "f8[,], f8[,], f8[,], TERMS[], f8[,])",
    "fixed_slip_nb": "f8[,](f8)",
    "bar_returns_nb": "f8[](f8[], f8)",
}

# actions decided from one bar's signals
_NONE, _OPEN_LONG, _OPEN_SHORT, _CLOSE, _ADD_LONG = 0, 1, 2, 3, 4

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
def fill_price_nb(slip: np.ndarray, bar: int, base: float, buy: bool, size: float) -> float:
    """Fill price of a market order of ``size`` units at ``base`` in bar ``bar`` (see module)."""
    row = bar if slip.shape[0] > 1 else 0  # one row: the same context in every bar
    rate = slip[row, 0] + slip[row, 1] * np.sqrt(max(size, 0.0))
    px = base * (1.0 + rate) if buy else base * (1.0 - rate)
    return min(max(px, slip[row, 2]), slip[row, 3])


@njit(cache=True)
def _order_nb(st: np.ndarray, rec: Records, bar: int, side: float, size: float, px: float,
              fees: float, reason: int) -> None:
    k = int(st[S_ORDERS])
    if rec.orders.shape[0] > 0:
        row = rec.orders[k]
        row[0] = bar
        row[1] = side
        row[2] = size
        row[3] = px
        row[4] = fees
        row[5] = reason
    st[S_ORDERS] = k + 1
    st[S_FEES] += fees


@njit(cache=True)
def _trade_nb(st: np.ndarray, terms, rec: Records, bar: int, exit_px: float, exit_fees: float,
              reason: int, is_open: bool, cover: float) -> None:
    """Record the open position as a trade; ``cover`` is a perp liquidation's loss beyond its
    isolated margin (not charged to the account), perp pnl also counts the funding paid."""
    k = int(st[S_TRADES])
    if rec.trades.shape[0] > 0:
        pos = st[S_POS]
        size = abs(pos)
        entry_px = st[S_ENTRY_COST] / size
        fees = st[S_ENTRY_FEES] + exit_fees
        row = rec.trades[k]
        row[0] = st[S_ENTRY_BAR]
        row[1] = bar
        row[2] = 1.0 if pos > 0 else -1.0
        row[3] = size
        row[4] = entry_px
        row[5] = exit_px
        row[6] = pos * (exit_px - entry_px) - fees - st[S_FUNDING] + cover
        row[7] = fees
        row[8] = reason
        row[9] = 1.0 if is_open else 0.0
        row[10] = st[S_FUNDING]
    st[S_TRADES] = k + 1


@njit(cache=True)
def _flat_nb(st: np.ndarray, terms) -> None:
    """The position is gone; a wiped-out account (cash within DUST of zero, from rounding) holds
    exactly 0, so that no dust position can open after it and equity never dips below 0."""
    st[S_POS] = 0.0
    st[S_MARGIN] = 0.0
    st[S_LIQ] = np.nan
    if st[S_CASH] < DUST * terms.init_cash and st[S_CASH] > -DUST * terms.init_cash:
        st[S_CASH] = 0.0


@njit(cache=True)
def _close_nb(st: np.ndarray, terms, mk: Market, rec: Records, bar: int, base: float,
              reason: int) -> None:
    """Close the whole position at ``base`` moved against the trader by the slippage."""
    pos = st[S_POS]
    px = fill_price_nb(mk.slip, bar, base, pos < 0, abs(pos))
    fees = abs(pos) * px * terms.fee
    st[S_CASH] += pos * px - fees
    _order_nb(st, rec, bar, -1.0 if pos > 0 else 1.0, abs(pos), px, fees, reason)
    _trade_nb(st, terms, rec, bar, px, fees, reason, False, 0.0)
    _flat_nb(st, terms)


@njit(cache=True)
def _liquidate_nb(st: np.ndarray, terms, mk: Market, rec: Records, bar: int,
                  base: float) -> None:
    """Liquidate at ``base`` (the liquidation price or a gapped open), slipped and clipped.

    The fee is liquidation_fee_rate x notional, taken only from what is left of the isolated
    margin; a loss beyond the margin (a gap past the bankruptcy price) is not charged.
    """
    pos = st[S_POS]
    size = abs(pos)
    px = fill_price_nb(mk.slip, bar, base, pos < 0, size)
    left = st[S_MARGIN] + pos * (px - st[S_ENTRY_COST] / size)
    fees = min(terms.liq_fee * size * px, max(left, 0.0))
    cover = max(-left, 0.0)
    st[S_CASH] += pos * px - fees + cover
    _order_nb(st, rec, bar, -1.0 if pos > 0 else 1.0, size, px, fees, R_LIQUIDATION)
    _trade_nb(st, terms, rec, bar, px, fees, R_LIQUIDATION, False, cover)
    st[S_LIQS] += 1.0
    _flat_nb(st, terms)


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
def _free_cash_nb(st: np.ndarray, terms) -> float:
    """Cash not tied up in the position: all of it for spot; for perp, virtual cash minus the
    isolated margin plus the entry notional booked into it (see S_CASH)."""
    if terms.leverage == 0.0 or st[S_POS] == 0.0:
        return st[S_CASH]
    if st[S_POS] > 0:
        return st[S_CASH] + (st[S_ENTRY_COST] - st[S_MARGIN])
    return st[S_CASH] - (st[S_MARGIN] + st[S_ENTRY_COST])


@njit(cache=True)
def _sized_spend_nb(st: np.ndarray, terms, mk: Market, sig: int, base: float, lev: float,
                    stop: float) -> float:
    """Cash (margin plus entry fee) an entry decided at bar ``sig`` wants under the sizing
    kind, before the free-cash cap; 0 when it cannot be sized (no stop, no volatility yet)."""
    kind = terms.size_kind
    value = terms.size_value
    per_notional = 1.0 / lev + terms.fee  # cash per unit of notional: margin plus fee
    equity = st[S_CASH] + st[S_POS] * base
    if kind == SIZE_FRACTION:
        return value * equity
    if kind == SIZE_NOTIONAL:
        return value * per_notional
    if kind == SIZE_RISK:
        distance = abs(base - stop)
        return value * equity / distance * base * per_notional if distance > 0 else 0.0
    if kind == SIZE_VOL_TARGET:
        sigma = mk.vol[sig]
        return value * equity / sigma * per_notional if sigma > 0 else 0.0
    return np.inf


@njit(cache=True)
def _open_nb(st: np.ndarray, terms, mk: Market, rec: Records, tiers: np.ndarray, sig: int,
             bar: int, base: float, is_long: bool, spend_cap: float, stop_abs: float,
             target_abs: float) -> None:
    """Spend the sized cash, at most ``min(free cash, spend_cap)``, including fees on a
    position (as margin for perp, buying leverage x as much notional); add to a long."""
    perp = terms.leverage > 0.0
    lev = terms.leverage if perp else 1.0
    adding = st[S_POS] != 0.0
    stop = (st[S_STOP] if adding
            else _levels_nb(is_long, base, terms.sl, terms.tp, stop_abs, target_abs)[0])
    spend = min(_free_cash_nb(st, terms), spend_cap,
                _sized_spend_nb(st, terms, mk, sig, base, lev, stop))
    if not spend > DUST * terms.init_cash:
        return
    px = fill_price_nb(mk.slip, bar, base, is_long, spend * lev / (base * (1.0 + lev * terms.fee)))
    size = spend * lev / (px * (1.0 + lev * terms.fee))
    if perp and (abs(st[S_POS]) + size) * px > terms.notional_cap:
        size = terms.notional_cap / px - abs(st[S_POS])
    if not size > 0.0:
        return
    fees = size * px * terms.fee
    st[S_CASH] += (-size * px if is_long else size * px) - fees
    _order_nb(st, rec, bar, 1.0 if is_long else -1.0, size, px, fees, R_SIGNAL)
    if not adding:
        st[S_ENTRY_BAR] = bar
        st[S_ENTRY_COST] = 0.0
        st[S_ENTRY_FEES] = 0.0
        st[S_FUNDING] = 0.0
        st[S_STOP], st[S_TARGET] = _levels_nb(is_long, px, terms.sl, terms.tp, stop_abs,
                                              target_abs)
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
def _signal_nb(st: np.ndarray, terms, mk: Market, sg: SignalArrays, rec: Records,
               tiers: np.ndarray, sig: int, bar: int, base: float) -> None:
    """Act on the signals decided at bar ``sig``, filling at ``base`` in bar ``bar``."""
    frac = sg.entry_fraction[sig]
    has_frac = terms.use_frac and frac == frac
    action = _action_nb(st[S_POS], sg.long_entries[sig] and terms.direction != DIR_SHORT,
                        sg.long_exits[sig], sg.short_entries[sig] and terms.direction != DIR_LONG,
                        sg.short_exits[sig], has_frac)
    if action == _NONE:
        return
    if st[S_POS] != 0.0 and action != _ADD_LONG:
        _close_nb(st, terms, mk, rec, bar, base, R_SIGNAL)
    if action != _CLOSE:
        is_long = action != _OPEN_SHORT
        cap = frac * terms.init_cash if is_long and has_frac else np.inf
        _open_nb(st, terms, mk, rec, tiers, sig, bar, base, is_long, cap, sg.stop_price[sig],
                 sg.target_price[sig])


@njit(cache=True)
def _has_levels_nb(st: np.ndarray, tsl: float) -> bool:
    """Whether the open position has any exit level to check (stop, target, trailing stop or
    liquidation price); without one, :func:`_level_exit_nb` has nothing to do."""
    return (st[S_STOP] == st[S_STOP] or st[S_TARGET] == st[S_TARGET] or tsl == tsl
            or st[S_LIQ] == st[S_LIQ])


@njit(cache=True)
def _gapped_liquidation_nb(st: np.ndarray, o: float) -> bool:
    """Whether the open is already beyond the open position's liquidation price."""
    pos = st[S_POS]
    liq = st[S_LIQ]
    return liq == liq and ((pos > 0 and o <= liq) or (pos < 0 and o >= liq))


@njit(cache=True)
def _level_exit_nb(st: np.ndarray, tsl: float, o: float, h: float, lo: float
                   ) -> tuple[float, int]:
    """The exit price (before slippage) and reason if liquidation or a stop/target/trailing
    level fires in this bar, else NaN; without an exit the bar's high/low moves the trailing
    extreme.

    An open beyond the liquidation price liquidates at the open. Otherwise the liquidation
    price acts as one more stop: the adverse level nearer the open (the tighter of stop and
    liquidation price, liquidation on a tie) fires first.
    The trailing level used in the bar comes from the extreme seen *before* it (the entry
    fill, then highs/lows of completed bars); the bar's own high/low updates it after.
    Scalars only: the bar loop calls it for every bar in a position, and array arguments
    would cost reference counting on each call.
    """
    if _gapped_liquidation_nb(st, o):
        return o, R_LIQUIDATION
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
    if base != base:
        if pos > 0 and h > st[S_EXTREME]:
            st[S_EXTREME] = h
        elif pos < 0 and lo < st[S_EXTREME]:
            st[S_EXTREME] = lo
    return base, reason


@njit(cache=True)
def _exit_nb(st: np.ndarray, terms, mk: Market, rec: Records, bar: int, base: float,
             reason: int) -> None:
    """Close the position for ``reason``: a liquidation, or a market close."""
    if reason == R_LIQUIDATION:
        _liquidate_nb(st, terms, mk, rec, bar, base)
    else:
        _close_nb(st, terms, mk, rec, bar, base, reason)


@njit(cache=True)
def simulate_column_nb(mk: Market, sg: SignalArrays, terms, tiers: np.ndarray,
                       rec: Records) -> np.ndarray:
    """Simulate one column; returns the final state vector (see the ``S_*`` slots).

    ``terms`` is one :data:`TERMS` record, ``tiers`` the (k, 4) maintenance tiers
    (:mod:`backtest.engine.margin`; unused for spot). When ``rec`` holds arrays they receive
    every bar's equity and position and every order and trade; an open position at the end is
    counted (and recorded) as a trade valued at the last close. The final equity is returned in
    the cash slot. The per-bar checks read local arrays and scalars; the grouped inputs are
    passed on only when something happens (a fill, an exit).
    """
    open_, high, low, close = mk.open, mk.high, mk.low, mk.close
    fund_open, fund_inside = mk.fund_open, mk.fund_inside
    le, lx, se, sx = sg.long_entries, sg.long_exits, sg.short_entries, sg.short_exits
    n = close.shape[0]
    record = rec.equity.shape[0] > 0
    fill_close = terms.fill_close
    tsl = terms.tsl
    max_bars = terms.max_bars
    st = np.zeros(N_STATE)
    st[S_CASH] = terms.init_cash
    st[S_LIQ] = np.nan
    for i in range(n):
        stopped = False
        o = open_[i]
        if st[S_POS] != 0.0:
            if fund_open[i] != 0.0:
                _funding_nb(st, fund_open[i], o)
            if _gapped_liquidation_nb(st, o):
                _liquidate_nb(st, terms, mk, rec, i, o)
                stopped = True
        if not fill_close and i >= 1:
            if max_bars > 0 and st[S_POS] != 0.0 and i - st[S_ENTRY_BAR] >= max_bars:
                _close_nb(st, terms, mk, rec, i, o, R_TIME)
            if le[i - 1] or lx[i - 1] or se[i - 1] or sx[i - 1]:
                _signal_nb(st, terms, mk, sg, rec, tiers, i - 1, i, o)
        if st[S_POS] != 0.0 and fund_inside[i] != 0.0:
            _funding_nb(st, fund_inside[i], o)
        if st[S_POS] != 0.0 and _has_levels_nb(st, tsl):
            base, reason = _level_exit_nb(st, tsl, o, high[i], low[i])
            if base == base:
                _exit_nb(st, terms, mk, rec, i, base, reason)
                stopped = True
        if fill_close and not stopped:
            if max_bars > 0 and st[S_POS] != 0.0 and i - st[S_ENTRY_BAR] >= max_bars:
                _close_nb(st, terms, mk, rec, i, close[i], R_TIME)
            if le[i] or lx[i] or se[i] or sx[i]:
                _signal_nb(st, terms, mk, sg, rec, tiers, i, i, close[i])
        if record:
            rec.equity[i] = st[S_CASH] + st[S_POS] * close[i]
            rec.position[i] = st[S_POS]
    if st[S_POS] != 0.0:
        _trade_nb(st, terms, rec, n - 1, close[n - 1], 0.0, R_END, True, 0.0)
    st[S_CASH] += st[S_POS] * close[n - 1]  # final equity, stored in the cash slot
    return st


@njit(cache=True)
def fixed_slip_nb(rate: float) -> np.ndarray:
    """Slippage context of the fixed model, one row for every bar: ``rate``, no impact, no
    clip."""
    slip = np.empty((1, 4))
    slip[0, 0] = rate
    slip[0, 1] = 0.0
    slip[0, 2] = 0.0
    slip[0, 3] = np.inf
    return slip


@njit(cache=True)
def simulate_columns_nb(
    mk: Market, le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray,
    stop_px: np.ndarray, target_px: np.ndarray, frac: np.ndarray, terms: np.ndarray,
    tiers: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Many parameter sets at once: column c of the 2-D (n, k) signal arrays with the record
    ``terms[c]``; ``stop_px``/``target_px``/``frac`` are (n, k) or (n, 1) (shared).

    Returns per-column (final equity, number of trades incl. an open one, total fees, total
    funding paid, number of liquidations).
    """
    k = le.shape[1]
    final_equity = np.empty(k)
    n_trades = np.empty(k, dtype=np.int64)
    fees = np.empty(k)
    funding = np.empty(k)
    liquidations = np.empty(k, dtype=np.int64)
    rec = Records(np.empty(0), np.empty(0), np.empty((0, 0)), np.empty((0, 0)))
    for c in range(k):
        sg = SignalArrays(le[:, c], lx[:, c], se[:, c], sx[:, c],
                          stop_px[:, c if stop_px.shape[1] > 1 else 0],
                          target_px[:, c if target_px.shape[1] > 1 else 0],
                          frac[:, c if frac.shape[1] > 1 else 0])
        st = simulate_column_nb(mk, sg, terms[c], tiers, rec)
        final_equity[c] = st[S_CASH]
        n_trades[c] = int(st[S_TRADES])
        fees[c] = st[S_FEES]
        funding[c] = st[S_FUND_TOTAL]
        liquidations[c] = int(st[S_LIQS])
    return final_equity, n_trades, fees, funding, liquidations


@njit(cache=True)
def bar_returns_nb(equity: np.ndarray, init_cash: float) -> np.ndarray:
    """Each bar's equity change over the previous bar's equity (the first bar's over
    ``init_cash``); NaN after a bar with zero equity, where no return is defined."""
    out = np.empty(equity.shape[0])
    prev = init_cash
    for i in range(equity.shape[0]):
        x = equity[i]
        out[i] = (x - prev) / prev if prev != 0.0 else np.nan
        prev = x
    return out
