"""Numba kernels of the metrics: one-pass statistics of an equity curve and its returns.

:func:`curve_stats_nb` (moments, drawdown, exposure), :func:`max_drawdown_nb` and
:func:`return_moments_nb` are what
:mod:`backtest.metrics.performance` and :mod:`backtest.metrics.overfit` read. Drawdowns start
from a given peak (the initial cash). :func:`range_metrics_nb` and :func:`defined_means_nb` are
the batched metrics of a search: every (column, range) of the batched engine in one call.
Imports numpy, numba, the bar returns of :mod:`backtest.engine.kernels` and the trade-total
slots of :mod:`backtest.engine.layout`; crashbt calls ``EXPORTS`` through :mod:`backtest.native`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtest.engine.kernels import bar_returns_nb
from backtest.engine.layout import T_FEES, T_GAINS, T_LOSSES, T_OPEN, T_TRADES, T_WINS

#: the columns of :func:`range_metrics_nb`, in ``backtest.catalogue.METRIC_KEYS`` order
(M_TOTAL_RETURN, M_CAGR, M_SHARPE, M_SORTINO, M_CALMAR, M_MAX_DRAWDOWN, M_TRADES, M_CLOSED,
 M_OPEN, M_WIN_RATE, M_EXPOSURE, M_PROFIT_FACTOR, M_FEES) = range(13)
N_METRICS = 13

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {
    "max_drawdown_nb": "f8(f8[], f8)",
    "curve_stats_nb": "(f8, f8, f8, f8, i8, i8)(f8[], f8[], f8[], f8)",
    "return_moments_nb": "(f8, f8, f8, f8, f8)(f8[])",
    "range_metrics_nb": "none(f8[,], f8[,], i8[], f8[,,], i8[], f8, f8, i8[], f8[,,])",
    "defined_means_nb": "none(f8[,,], i8[,], i8, f8[,,])",
}


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
def max_drawdown_nb(equity: np.ndarray, start: float) -> float:
    """Largest ``1 - equity / running peak`` in one pass, the peak starting at ``start`` (the
    initial cash: a loss in the first bar is a drawdown; -inf to start at the first value).
    numpy's maximum.accumulate is the slowest step of a 1M-bar run's metrics."""
    peak, mdd = start, 0.0
    for x in equity:
        peak, mdd = _drawdown_step_nb(x, peak, mdd)
    return mdd


@njit(cache=True)
def curve_stats_nb(equity: np.ndarray, returns: np.ndarray, position: np.ndarray,
                   init_cash: float) -> tuple[float, float, float, float, int, int]:
    """The metrics' inputs in one pass over an equity curve, its bar returns and the position:
    mean return, sample variance (ddof=1; sums shifted by the first return, which keeps them
    exact enough when the mean dwarfs the spread), sum of squared negative returns, max
    drawdown from ``init_cash``, number of bars with a position, number of defined returns.
    Undefined (NaN) returns, the bars after a wiped-out account, are left out of the moments."""
    shift = returns[0]
    s1 = s2 = down = 0.0
    peak, mdd = init_cash, 0.0
    exposed = 0
    n = 0
    for i in range(returns.shape[0]):
        exposed += position[i] != 0.0
        peak, mdd = _drawdown_step_nb(equity[i], peak, mdd)
        r = returns[i]
        if r != r:
            continue
        n += 1
        d = r - shift
        s1 += d
        s2 += d * d
        if r < 0.0:
            down += r * r
    var = max((s2 - s1 * s1 / n) / (n - 1), 0.0) if n > 1 else 0.0
    return shift + s1 / max(n, 1), var, down, mdd, exposed, n


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
def _finite_nb(x: float) -> float:
    return x if math.isfinite(x) else np.nan


@njit(cache=True)
def range_metrics_nb(equity: np.ndarray, position: np.ndarray, at: np.ndarray,
                     totals: np.ndarray, which: np.ndarray, init_cash: float, ppy: float,
                     needs_trades: np.ndarray, out: np.ndarray) -> None:
    """``performance.curve_metrics`` of column c over range ``which[j]`` into ``out[c, j]``,
    for every column of the batched engine's output (range r of ``equity``/``position`` at
    ``[at[r], at[r + 1])``, its trade totals at ``totals[c, r]``), NaN where a metric is None;
    the metrics ``needs_trades`` are NaN in a range without a trade. The same operations in the
    same order as the per-range functions, so the values are the same to the last bit."""
    for c in range(equity.shape[0]):
        for j in range(which.shape[0]):
            r = which[j]
            eq = equity[c, at[r]:at[r + 1]]
            size = eq.shape[0]
            returns = bar_returns_nb(eq, init_cash)
            mean, var, down, mdd, exposed, defined = curve_stats_nb(
                eq, returns, position[c, at[r]:at[r + 1]], init_cash)
            growth = eq[size - 1] / init_cash
            log_cagr = math.log(growth) / (size / ppy) if growth > 0 else -np.inf
            cagr = math.expm1(log_cagr) if log_cagr < 700 else np.inf
            std = math.sqrt(var)
            downside = math.sqrt(down / defined) if defined else 0.0
            row, t = out[c, j], totals[c, r]
            row[M_TOTAL_RETURN] = 100.0 * (growth - 1.0)
            row[M_CAGR] = _finite_nb(100.0 * cagr)
            row[M_SHARPE] = _finite_nb(mean / std * math.sqrt(ppy)) if std > 0 else np.nan
            row[M_SORTINO] = (_finite_nb(mean / downside * math.sqrt(ppy)) if downside > 0
                              else np.nan)
            row[M_CALMAR] = (_finite_nb(cagr / mdd) if mdd > 0 and math.isfinite(cagr)
                             else np.nan)
            row[M_MAX_DRAWDOWN] = 100.0 * mdd
            n_trades, n_open = int(t[T_TRADES]), int(t[T_OPEN])
            n_closed = n_trades - n_open
            row[M_TRADES], row[M_CLOSED], row[M_OPEN] = n_trades, n_closed, n_open
            row[M_WIN_RATE] = 100.0 * (int(t[T_WINS]) / n_closed) if n_closed else np.nan
            row[M_EXPOSURE] = 100.0 * (exposed / size)
            row[M_PROFIT_FACTOR] = (_finite_nb(t[T_GAINS] / t[T_LOSSES]) if t[T_LOSSES] > 0
                                    else np.nan)
            row[M_FEES] = t[T_FEES]
            if n_trades == 0:
                row[needs_trades] = np.nan


@njit(cache=True)
def defined_means_nb(values: np.ndarray, groups: np.ndarray, summed: int,
                     out: np.ndarray) -> None:
    """Per column c and group g: the mean over the rows ``groups[g]`` (indices into axis 1 of
    ``values``; -1 pads) of each metric's defined (non-NaN) values, summed left to right as
    Python's ``sum`` does; NaN where no row defines it. Metric ``summed`` (-1: none) is the sum,
    not the mean."""
    for c in range(values.shape[0]):
        for g in range(groups.shape[0]):
            for m in range(values.shape[2]):
                total, n = 0.0, 0
                for r in groups[g]:
                    if r < 0:
                        break
                    v = values[c, r, m]
                    if v == v:
                        total += v
                        n += 1
                if m == summed:
                    out[c, g, m] = total
                else:
                    out[c, g, m] = total / n if n else np.nan
