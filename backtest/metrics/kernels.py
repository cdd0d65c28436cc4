"""Numba kernels of the metrics: one-pass statistics of an equity curve and its returns.

:func:`curve_stats_nb` (moments, drawdown, exposure), :func:`max_drawdown_nb` and
:func:`return_moments_nb` are what
:mod:`backtest.metrics.performance` and :mod:`backtest.metrics.overfit` read. Drawdowns start
from a given peak (the initial cash). Imports numpy and numba only.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
