"""Numba kernels of the data layer: the regime detector's per-bar pass.

:mod:`backtest.data.regimes` documents the rules and calls :func:`regime_codes_nb` through
:mod:`backtest.native` (compiled ahead of time when built). Imports numpy, numba and the regime
codes of :mod:`backtest.data.regimes`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtest.data.regimes import BEAR, CAPITULATION, CORRECTION, CRASH, RECOVERY

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {"regime_codes_nb": "i1[](f8[], f8[], f8[], i8, i8, b1[])"}


@njit(cache=True)
def _divide_nb(a: float, b: float) -> float:
    """``a / b`` as IEEE 754 and numpy define it (inf or NaN for ``b == 0``), not an error."""
    if b == 0.0:
        return np.nan if a == 0.0 or a != a else math.copysign(np.inf, a) * math.copysign(1.0, b)
    return a / b


@njit(cache=True, nogil=True)  # nogil: it runs beside the engine
def regime_codes_nb(close: np.ndarray, high: np.ndarray, low: np.ndarray, week: int,
                    month: int, intense: np.ndarray) -> np.ndarray:
    """The module docstring's rules bar by bar: drawdown from the running max of ``high`` (NaN
    from a NaN high on, as ``np.maximum.accumulate``), its change over ``week`` bars (NaN in the
    first week), the bounce off the lowest ``low`` of the last ``month`` bars (NaN lows skipped,
    as pandas' rolling min with ``min_periods=1``; a monotonic queue of bar numbers)."""
    n = close.shape[0]
    codes = np.zeros(n, dtype=np.int8)
    past = np.empty(week)  # the last week's drawdowns, a ring
    queue = np.empty(month + 1, dtype=np.int64)  # ring of bars whose lows rise
    head = 0
    size = 0
    peak = np.nan
    for t in range(n):
        h = high[t]
        peak = h if t == 0 else (np.nan if peak != peak or h != h else max(peak, h))
        drawdown = _divide_nb(close[t], peak) - 1.0
        fell = drawdown - past[t % week] if t >= week else np.nan
        past[t % week] = drawdown
        if size and queue[head] <= t - month:
            head = (head + 1) % (month + 1)
            size -= 1
        if low[t] == low[t]:
            while size and low[queue[(head + size - 1) % (month + 1)]] >= low[t]:
                size -= 1
            queue[(head + size) % (month + 1)] = t
            size += 1
        bounce = _divide_nb(close[t], low[queue[head]]) - 1.0 if size else np.nan
        deep = drawdown <= -0.20
        if (drawdown <= -0.30 and fell <= -0.15) or (deep and intense.shape[0] > 0 and intense[t]):
            codes[t] = CAPITULATION
        elif deep and fell <= -0.08:
            codes[t] = CRASH
        elif deep and bounce >= 0.15:
            codes[t] = RECOVERY
        elif deep:
            codes[t] = BEAR
        elif drawdown <= -0.10:
            codes[t] = CORRECTION
    return codes
