"""Numba kernels of the vectorbt-rust path: equity and position rebuilt from order records.

:mod:`backtest.engine.vectorbt_path` calls :func:`equity_from_orders_nb` through
:mod:`backtest.native` (compiled ahead of time when built). Imports numpy and numba only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {"equity_from_orders_nb": "(f8[], f8[])(f8[], i8[], i8[], f8[], f8[], f8[], f8)"}


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
