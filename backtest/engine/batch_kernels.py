"""Numba kernel of the batched engine: many columns of signals, each over many row ranges.

:func:`simulate_ranges_nb` runs column c over range r by slicing the run's market and signal
arrays (views, no copy) and calling :func:`backtest.engine.kernels.simulate_column_nb`, the
kernel of every single run, on them; so a range of a batch is bit for bit the run of that
range. It writes each (column, range)'s equity and position at every bar into flat buffers and
reduces its trade records to the totals the trade metrics need
(:data:`backtest.engine.layout.TOTALS`); no order
record is written and no trade leaves the kernel.

Imports numpy, numba, the engine's kernels and their layout only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.engine.kernels import simulate_column_nb
from backtest.engine.layout import (
    S_TRADES,
    T_FEES,
    T_GAINS,
    T_LOSSES,
    T_OPEN,
    T_TRADES,
    T_WINS,
    TRADE_FIELDS,
    Market,
    Records,
    SignalArrays,
)

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {
    "simulate_ranges_nb": "none(Market, f8[,], i8[,], f8[], i8[,], b1[,], b1[,], b1[,], b1[,], "
                          "f8[,], f8[,], f8[,], TERMS[], f8[,], i8[,], i8[], f8[,], f8[,], "
                          "f8[,,])",
}


@njit(cache=True)
def _totals_nb(trades: np.ndarray, count: int, out: np.ndarray) -> None:
    """Reduce the first ``count`` trade records (kernels' trade columns) into ``out``."""
    out[:] = 0.0
    out[T_TRADES] = count
    for j in range(count):
        row = trades[j]
        out[T_FEES] += row[7]
        if row[9] > 0.0:
            out[T_OPEN] += 1.0
            continue
        pnl = row[6]
        if pnl > 0.0:
            out[T_WINS] += 1.0
            out[T_GAINS] += pnl
        elif pnl < 0.0:
            out[T_LOSSES] -= pnl


@njit(cache=True)
def simulate_ranges_nb(
    mk: Market, slip: np.ndarray, slip_at: np.ndarray, vol: np.ndarray, vol_at: np.ndarray,
    le: np.ndarray, lx: np.ndarray, se: np.ndarray, sx: np.ndarray, stop_px: np.ndarray,
    target_px: np.ndarray, frac: np.ndarray, terms: np.ndarray, tiers: np.ndarray,
    bounds: np.ndarray, out_at: np.ndarray, equity: np.ndarray, position: np.ndarray,
    totals: np.ndarray,
) -> None:
    """Column c of the (k, n) signal arrays with ``terms[c]`` over each range ``bounds[r]`` =
    [a, b) of the run's n bars.

    ``mk`` holds the whole run's OHLC and funding (a range reads their slice); the slippage
    context and volatility depend on where a range starts (rolling windows restart there), so
    they come per range: ``slip[slip_at[r, 0]:slip_at[r, 1]]`` and likewise ``vol`` (a (1, 4)
    slip row is shared by every bar; an empty vol is unused). ``stop_px``/``target_px``/``frac``
    are (k, n) or (1, n) (shared). Writes ``equity[c, out_at[r]:out_at[r] + b - a]`` and
    ``position`` likewise, and ``totals[c, r]`` (:data:`backtest.engine.layout.TOTALS`).
    """
    longest = 0
    for r in range(bounds.shape[0]):
        longest = max(longest, bounds[r, 1] - bounds[r, 0])
    trades = np.empty((2 * longest + 1, TRADE_FIELDS))  # every field of a row is written
    no_orders = np.empty((0, 0))
    for c in range(le.shape[0]):
        cs = c if stop_px.shape[0] > 1 else 0
        ct = c if target_px.shape[0] > 1 else 0
        cf = c if frac.shape[0] > 1 else 0
        for r in range(bounds.shape[0]):
            a, b = bounds[r, 0], bounds[r, 1]
            o = out_at[r]
            part = Market(mk.open[a:b], mk.high[a:b], mk.low[a:b], mk.close[a:b],
                          slip[slip_at[r, 0]:slip_at[r, 1]], mk.fund_open[a:b],
                          mk.fund_inside[a:b], vol[vol_at[r, 0]:vol_at[r, 1]])
            sg = SignalArrays(le[c, a:b], lx[c, a:b], se[c, a:b], sx[c, a:b],
                              stop_px[cs, a:b], target_px[ct, a:b], frac[cf, a:b])
            rec = Records(equity[c, o:o + b - a], position[c, o:o + b - a], no_orders, trades)
            st = simulate_column_nb(part, sg, terms[c], tiers, rec)
            _totals_nb(trades, int(st[S_TRADES]), totals[c, r])
