"""Execution engine (spot and perpetual futures): bars + signals -> equity, orders, trades.

This is the ONE place that states crashbt's execution convention; tests/test_engine_scenarios.py
pins every rule below with a candle table.

Fills
    A signal decided at bar t's close fills at bar t+1's OPEN (``fill="next_open"``, default) or
    at bar t's CLOSE (``fill="close"``). Under next_open a signal on the last bar never fills.
    Slippage moves every fill (signals, stops and targets alike) against the trader: a buy
    fills at ``price * (1 + slippage_rate)``, a sell at ``price * (1 - slippage_rate)``. Every
    fill pays ``fee_rate * size * fill_price``.
Sizing (``execution.size``)
    Each entry spends an amount of cash m (fees included; for perp the margin plus fee) and
    buys ``m x leverage / (price x (1 + leverage x fee_rate))`` units at its fill price
    (leverage 1 for spot); a short entry sells the same notional. m is the smallest of the
    free cash, the tranche cap below, and what the sizing kind asks for (decided at the
    unslipped fill price P, equity E = cash + position x P before the fill, k = 1/leverage +
    fee_rate the cash per unit of notional):
    all_in     m = free cash (the default)
    fraction   m = fraction x E
    notional   m = notional x k (a notional worth of the asset)
    risk       m = risk x E / |P - stop| x P x k: a fill at the stop loses risk x E (before
               fees and slippage). The stop is the position's stop level (fraction or
               absolute, set as under Stops from P; a tranche uses the position's stop); an
               entry without a stop level is not taken.
    vol_target m = target / sigma x E x k, sigma the annualized standard deviation of the last
               ``lookback`` close-to-close log returns up to the signal bar's close (an entry
               before two returns exist is not taken).
    An entry whose m is not above ``1e-9 x init_cash`` is not taken (no dust positions).
    With ``signals.entry_fraction`` a long entry spends at most ``fraction x init_cash`` and
    adds to an open long (tranches); a NaN fraction on an entry bar means an entry that does
    not add. Shorts never add. Exits close the whole position.
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
Time exits (``signals.max_bars_held`` = N)
    The engine closes a position N bars after its first entry fill, at the same point of the
    bar as a signal fill: a position filled in bar f closes at bar f+N's open (next_open; the
    last event of that open after a gap liquidation) or at bar f+N's close (close fills; unless
    a stop closed it in that bar), reason "time". Tranche additions do not restart the clock;
    a reversal opens a new position with its own. The signals of the fill point then act on
    the flat account: an entry signal there opens a new position at the same price. An exit
    signal never comes from an entry signal the engine ignored.
End of data
    An open position stays open, valued at the last close: its trade has status "open",
    exit_reason "end", exit_price = last close and pnl without exit fees.
Wiped-out accounts
    A flat account whose cash is within ``1e-9 x init_cash`` of zero (a liquidation of all of
    it, plus rounding) holds exactly 0; no later entry can be sized, so equity stays 0.
Records
    ``equity`` = cash + position x close at every bar; ``returns`` its bar-to-bar change (the
    first bar against init_cash; NaN after a bar of zero equity, where no return is defined);
    ``position`` in units (negative = short); trade
    ``entry_price`` is the size-weighted mean fill, ``return_pct`` = 100 x pnl / (size x
    entry_price), ``funding_paid`` 0 (spot).
Fees and slippage models
    Every fill is a market order: ``taker_fee_rate``, when set, replaces ``fee_rate``.
    ``slippage_model = "sqrt_impact"``: a fill of ``size`` units in bar i slips by
    ``slippage_rate + k_vol x sigma_i + k_impact x sigma_i x sqrt(size / volume_i)`` where
    sigma_i is the standard deviation of the last ``slippage_vol_window`` close-to-close log
    returns known before bar i (closes up to i-1; 0 until two returns exist) and volume_i is
    bar i's volume (in units). Entries use the size at the unslipped price. It applies to
    signal fills, stops, targets and liquidations alike, and the fill is clipped to bar i's
    [low, high]. (The fixed model is not clipped, as in vectorbt.)
Perpetual futures (``instrument = "perp"``, isolated margin, always in the kernel)
    Entry: an entry spends m (Sizing) on margin plus fee: notional ``N = m x leverage / (1 +
    leverage x fee)`` at the fill price, isolated margin ``N / leverage``, fee ``fee x N``. N
    is cut to the largest notional the tier table allows at that leverage (Binance refuses
    bigger positions). A tranche
    adds margin and notional; the entry price is the size-weighted mean. ``equity = cash +
    margin + position x (close - entry)``; at leverage 1 it is the spot equity exactly.
    Maintenance: the tier is the first whose ``notional_cap`` is >= the position's entry
    notional (size x entry price). Liquidation price (Binance, isolated one-way; q signed
    size, E entry, M margin balance, r/c the tier's rate/amount):
    ``LP = (q x E - M - c) / (q - |q| x r)``, recomputed after each add and each funding
    settlement. No mark price exists in the data: the bar's low (long) / high (short) stands in.
    Each bar: funding settled at its open (below); a carried position whose LP the open has
    already passed is liquidated at the open, before any fill at that open (a signal exit
    cannot escape a gap); then the open's fills. Liquidation is then checked in every bar in
    which stops are checked (so in the entry bar of a next_open fill), in this order, the first
    that applies wins:
    1. the open already beyond LP (after funding inside the bar) -> liquidated at the open;
    2. the open beyond the stop -> stop at the open; 3. the open beyond the target -> target;
    4. the low (long) / high (short) reaches the adverse level nearer the open: LP acts as one
       more stop and the tighter of LP and the stop fires (LP on a tie) -> liquidation at LP
       or stop at the stop; 5. the target touched -> target.
    So an intra-bar liquidation precedes any target in the bar, and precedes the stop unless
    the stop is tighter (price reaches it first) or the open already passed the stop.
    A liquidation fills at LP (or the open) moved by slippage and pays ``liquidation_fee_rate x
    size x fill`` instead of the trading fee; exit_reason "liquidation". The isolated margin is
    the most it can lose: the fee is taken only from what is left of the margin, and a loss
    beyond the margin (a gap past the bankruptcy price) is not charged, so a trade's pnl is at
    least -(initial margin + entry fee).
    Funding (``funding = true``; :func:`simulate` takes the series indexed by settlement time
    T, rate known at T): a settlement is charged in the bar containing T (``t <= T < t +
    freq``). A T at the bar's open applies to the position carried into the bar (before the
    open's fills); a T strictly inside the bar applies to the position held after the open's
    fills (before the intra-bar checks). The position pays ``q x open_t x rate`` (longs pay a
    positive rate, shorts receive it; the bar's open stands in for the mark price) out of its
    margin, which moves LP. Trade pnl includes it; ``funding_paid`` per trade, and totals in
    :func:`simulate_many`. Settlements outside the bars, or with NaN rates, are skipped.

Engines: vectorbt 1.2's ``from_signals`` simulation on the Rust engine ("vectorbt-rust 1.2.0"; its
array-level ``portfolio.dispatch`` functions, what ``Portfolio.from_signals`` runs) runs
what it can express exactly: no stops, or ``fill="close"`` with one of sl/tsl or tp alone (its
stops start in the bar after the entry, which is our rule for close fills). Everything else
(stops with next_open fills, absolute levels, tranches, time exits, sizing other than all_in,
sl+tsl, tp with sl/tsl, or ``engine="numba"``), perp runs and the sqrt_impact model run in
:mod:`backtest.engine.kernels`
("crashbt-kernel (numba)").
JIT: none on the Rust path (its extension is called through :mod:`backtest.engine.vbt_rust`,
without importing the vectorbt package); the kernels come compiled ahead of time from
:mod:`backtest.native` (built at install), or JIT-compiled and cached once per machine.

The vectorbt-rust path lives in :mod:`backtest.engine.vectorbt_path`, the records both paths
build in :mod:`backtest.engine.records`; vectorbt is reached from this package and nowhere else.
This module must not import features, strategies, optimize, metrics or report modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from backtest import native
from backtest.catalogue import periods_per_year
from backtest.config.execution import ExecutionConfig
from backtest.engine import layout, margin
from backtest.engine.records import (
    DIRECTIONS,
    filtered_signals,
    float_array,
    nan_or,
    ohlc,
    orders_frame,
    sim_result,
    trades_frame,
)
from backtest.engine.vectorbt_path import simulate_vectorbt
from backtest.errors import DataError, StrategyError
from backtest.types import Bars, Signals, SimResult

ENGINE_KERNEL = "crashbt-kernel (numba)"
KERNELS = "backtest.engine.kernels"


def needs_kernel(signals: Signals, execution: ExecutionConfig) -> bool:
    """True when vectorbt cannot express the convention for this run (see module docstring)."""
    if execution.engine == "numba" or signals.entry_fraction is not None:
        return True
    if signals.max_bars_held is not None or execution.size.kind != "all_in":
        return True
    if execution.instrument == "perp" or execution.slippage_model != "fixed":
        return True
    for level in (signals.stop_price, signals.target_price):
        if level is not None and level.notna().any():
            return True
    sl, tp, tsl = (x is not None
                   for x in (execution.sl_stop, execution.tp_stop, execution.tsl_stop))
    if not (sl or tp or tsl):
        return False
    return execution.fill == "next_open" or (sl and tsl) or (tp and (sl or tsl))


def simulate(bars: Bars, signals: Signals, execution: ExecutionConfig, freq: str,
             funding: pd.Series | None = None) -> SimResult:
    """Simulate one run under the convention of this module; ``freq`` is a pandas offset.

    ``funding``: funding rates indexed by settlement time (UTC), required for a perp run with
    ``execution.funding`` (e.g. ``load_external("funding_8h")["funding_rate"]``).
    """
    if len(bars) < 1:
        raise StrategyError("bars: rows: expected at least 1 bar, found 0")
    if not signals.long_entries.index.equals(bars.index):
        raise StrategyError(f"signals: index: expected the index of the bars, found a different "
                            f"index ({len(signals.long_entries)} rows vs {len(bars)})")
    if needs_kernel(signals, execution):
        return _simulate_kernel(bars, signals, execution, freq, funding)
    return simulate_vectorbt(bars, signals, execution, freq)


def slippage_market(bars: Bars, execution: ExecutionConfig) -> np.ndarray:
    """The kernel's market context for the configured slippage model, (n, 4) per bar or (1, 4)
    for every bar: base slippage, impact coefficient (x sqrt(size) gives the impact), lowest and
    highest fill."""
    if execution.slippage_model == "fixed":
        return native.kernel(KERNELS, "fixed_slip_nb")(execution.slippage_rate)
    close = bars["close"].to_numpy(dtype=np.float64)
    log_ret = pd.Series(np.log(close)).diff()
    sigma = (log_ret.rolling(execution.slippage_vol_window, min_periods=2).std().shift(1)
             .fillna(0.0).to_numpy())
    volume = bars["volume"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        impact = np.where(sigma > 0, execution.slippage_impact_coef * sigma / np.sqrt(volume),
                          0.0)
    return np.ascontiguousarray(np.column_stack((
        execution.slippage_rate + execution.slippage_vol_coef * sigma, impact,
        bars["low"].to_numpy(dtype=np.float64), bars["high"].to_numpy(dtype=np.float64))))


def funding_arrays(index: pd.DatetimeIndex, funding: pd.Series | None,
                   freq: str) -> tuple[np.ndarray, np.ndarray]:
    """Summed funding rates per bar: settlements at the bar's open, and strictly inside it."""
    n = len(index)
    if funding is None or funding.empty:
        return np.zeros(n), np.zeros(n)
    rates = funding.dropna()
    times = pd.DatetimeIndex(rates.index).as_unit("ns").asi8
    starts = index.as_unit("ns").asi8
    bar = np.searchsorted(starts, times, side="right") - 1
    start = starts[np.maximum(bar, 0)]
    inside = (bar >= 0) & (times < start + pd.Timedelta(freq).value)
    at_open = inside & (times == start)
    within = inside & ~at_open
    values = rates.to_numpy(dtype=np.float64)
    # float64 always: bincount of no values returns int64 zeros
    return (np.bincount(bar[at_open], weights=values[at_open], minlength=n).astype(np.float64),
            np.bincount(bar[within], weights=values[within], minlength=n).astype(np.float64))


def _tiers(execution: ExecutionConfig) -> tuple[np.ndarray, str]:
    """The maintenance tiers of a perp run and where they come from (spot: none)."""
    if execution.instrument == "spot":
        return np.empty((0, 4)), ""
    spec = execution.maintenance_tiers
    return margin.load_tiers(spec), margin.tiers_source(spec)


def _notional_cap(execution: ExecutionConfig, tiers: np.ndarray, source: str) -> float:
    if execution.instrument == "spot":
        return np.inf
    return margin.max_notional(tiers, execution.leverage, source)


def kernel_market(bars: Bars, execution: ExecutionConfig, freq: str,
                  funding: pd.Series | None) -> layout.Market:
    """The kernel's per-bar market arrays of a run (funding and volatility only when used)."""
    n = len(bars)
    o, h, lo, c = ohlc(bars)
    fund_open, fund_inside = np.zeros(n), np.zeros(n)
    if execution.instrument == "perp":
        if execution.funding and funding is None:
            raise DataError("execution.funding: expected a funding series for a perp run (the "
                            "funding_8h external series), found none; set funding = false to "
                            "run without funding")
        fund_open, fund_inside = funding_arrays(
            bars.index, funding if execution.funding else None, freq)
    vol = np.empty(0)
    if execution.size.kind == "vol_target":
        vol = realized_vol(c, execution.size.lookback, freq)
    return layout.Market(o, h, lo, c, slippage_market(bars, execution), fund_open, fund_inside,
                          vol)


def realized_vol(close: np.ndarray, lookback: int, freq: str) -> np.ndarray:
    """Annualized standard deviation (ddof=1) of the last ``lookback`` close-to-close log
    returns up to each bar's close (NaN until two returns exist)."""
    log_ret = pd.Series(np.log(close)).diff()
    sigma = log_ret.rolling(lookback, min_periods=2).std().to_numpy()
    return np.ascontiguousarray(sigma * np.sqrt(periods_per_year(freq)))


def kernel_terms(execution: ExecutionConfig, signals: Signals, notional_cap: float,
                 out: np.ndarray) -> None:
    """Fill one :data:`layout.TERMS` record from a run's settings."""
    size = execution.size
    value = {"all_in": 0.0, "fraction": getattr(size, "fraction", 0.0),
             "notional": getattr(size, "notional", 0.0), "risk": getattr(size, "risk", 0.0),
             "vol_target": getattr(size, "target", 0.0)}[size.kind]
    perp = execution.instrument == "perp"
    out["init_cash"] = execution.init_cash
    out["fee"] = execution.market_fee_rate
    out["sl"], out["tp"], out["tsl"] = (nan_or(execution.sl_stop), nan_or(execution.tp_stop),
                                        nan_or(execution.tsl_stop))
    out["direction"] = DIRECTIONS[execution.direction]
    out["fill_close"] = execution.fill == "close"
    out["use_frac"] = signals.entry_fraction is not None
    out["max_bars"] = signals.max_bars_held or 0
    out["leverage"] = execution.leverage if perp else 0.0
    out["liq_fee"] = execution.liquidation_fee_rate
    out["notional_cap"] = notional_cap
    out["size_kind"] = layout.SIZE_KINDS.index(size.kind)
    out["size_value"] = value


class KernelRun(NamedTuple):
    """One column's kernel inputs: market arrays, signal arrays, settings record, tiers."""

    market: layout.Market
    signals: layout.SignalArrays
    terms: np.void
    tiers: np.ndarray


def kernel_signals(signals: Signals, direction: str) -> layout.SignalArrays:
    """One column of kernel signal arrays: the side ``direction`` excludes switched off, unset
    levels as NaN."""
    n = len(signals.long_entries)
    le, lx, se, sx = filtered_signals(signals, direction)
    return layout.SignalArrays(le, lx, se, sx, float_array(signals.stop_price, n),
                                float_array(signals.target_price, n),
                                float_array(signals.entry_fraction, n))


def kernel_tiers(execution: ExecutionConfig) -> tuple[np.ndarray, float]:
    """The maintenance tiers of a run and the largest notional they allow at its leverage
    (spot: no tiers, no cap)."""
    tiers, source = _tiers(execution)
    return tiers, _notional_cap(execution, tiers, source)


def kernel_inputs(bars: Bars, signals: Signals, execution: ExecutionConfig, freq: str,
                  funding: pd.Series | None) -> KernelRun:
    """The numba kernel's inputs for one run (the one place they are built from a config)."""
    tiers, cap = kernel_tiers(execution)
    terms = layout.terms_record()
    kernel_terms(execution, signals, cap, terms[0])
    return KernelRun(kernel_market(bars, execution, freq, funding),
                     kernel_signals(signals, execution.direction), terms[0], tiers)


def recorded(n: int) -> layout.Records:
    """Output arrays for a kernel run of ``n`` bars that records equity, orders and trades."""
    return layout.Records(np.empty(n), np.empty(n), np.empty((3 * n + 1, layout.ORDER_FIELDS)),
                           np.zeros((2 * n + 1, layout.TRADE_FIELDS)))


def _simulate_kernel(bars: Bars, signals: Signals, execution: ExecutionConfig, freq: str,
                     funding: pd.Series | None) -> SimResult:
    run = kernel_inputs(bars, signals, execution, freq, funding)
    rec = recorded(len(bars))
    st = native.kernel(KERNELS, "simulate_column_nb")(run.market, run.signals, run.terms,
                                                      run.tiers, rec)
    od = rec.orders[: int(st[layout.S_ORDERS])]
    td = rec.trades[: int(st[layout.S_TRADES])]
    return sim_result(
        bars, rec.equity, rec.position,
        trades_frame(bars.index, td[:, 0], td[:, 1], td[:, 2], td[:, 3], td[:, 4], td[:, 5],
                      td[:, 6], td[:, 7], td[:, 8], td[:, 9] > 0, td[:, 10]),
        orders_frame(bars.index, od[:, 0], od[:, 1], od[:, 2], od[:, 3], od[:, 4], od[:, 5]),
        ENGINE_KERNEL, float(execution.init_cash))


def simulate_many(bars: Bars, signals: Sequence[Signals], executions: Sequence[ExecutionConfig],
                  freq: str = "1h", funding: pd.Series | None = None) -> pd.DataFrame:
    """Run one parameter set per column in the kernel; returns final_equity, n_trades, fees,
    funding_paid and liquidations per column.

    ``signals[i]`` runs with ``executions[i]``. Only the stop fractions and the leverage may
    differ between executions (the rest is shared by construction of a sweep); a mismatch
    raises ValueError. ``freq`` and ``funding`` as in :func:`simulate` (perp runs only).
    """
    if len(signals) != len(executions) or not signals:
        raise ValueError("simulate_many: expected as many signals as executions, at least one")
    varying = {"sl_stop", "tp_stop", "tsl_stop", "engine", "leverage"}
    base = executions[0]
    shared = base.model_dump(exclude=varying)
    for ex in executions[1:]:
        if ex.model_dump(exclude=varying) != shared:
            raise ValueError("simulate_many: executions may differ only in sl/tp/tsl_stop and "
                             "leverage")
    n = len(bars)
    cols = [filtered_signals(s, base.direction) for s in signals]
    le, lx, se, sx = (np.asfortranarray(np.stack([col[k] for col in cols], axis=1))
                      for k in range(4))

    def levels(name: str) -> np.ndarray:
        return np.asfortranarray(np.stack([float_array(getattr(s, name), n) for s in signals],
                                          axis=1))

    mk = kernel_market(bars, base, freq, funding)
    tiers, source = _tiers(base)
    terms = layout.terms_record(len(executions))
    for record, (sig, ex) in zip(terms, zip(signals, executions, strict=True), strict=True):
        kernel_terms(ex, sig, _notional_cap(ex, tiers, source), record)
    terms["use_frac"] = any(s.entry_fraction is not None for s in signals)
    final, n_trades, fees, paid, liquidations = native.kernel(KERNELS, "simulate_columns_nb")(
        mk, le, lx, se, sx, levels("stop_price"), levels("target_price"),
        levels("entry_fraction"), terms, tiers)
    return pd.DataFrame({"final_equity": final, "n_trades": n_trades, "fees": fees,
                         "funding_paid": paid, "liquidations": liquidations})
