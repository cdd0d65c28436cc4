"""Numba kernels of the crash lab: the regime chain and the block sampler of synthetic paths.

:mod:`backtest.lab.synthetic` documents them and calls them through :mod:`backtest.native`
(compiled ahead of time when built). Imports numpy and numba only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {
    "markov_nb": "b1[,](f8[,], f8, f8, f8)",
    "indices_nb": "i8[,](b1[,], b1[,], f8[,], i8[], i8[])",
}


@njit(cache=True)
def markov_nb(draws: np.ndarray, share: float, up: float, down: float) -> np.ndarray:
    """(n, k) states of the two-state chain from uniform ``draws`` (row 0: the stationary law)."""
    n, k = draws.shape
    out = np.empty((n, k), dtype=np.bool_)
    for c in range(k):
        state = draws[0, c] < share
        out[0, c] = state
        for t in range(1, n):
            state = draws[t, c] >= down if state else draws[t, c] < up
            out[t, c] = state
    return out


@njit(cache=True)
def indices_nb(crash_path: np.ndarray, restart: np.ndarray, start: np.ndarray,
                calm_pool: np.ndarray, crash_pool: np.ndarray) -> np.ndarray:
    """(n, k) source bar positions: a block of the wanted regime's pool continues until the
    regime switches or ``restart`` starts a new block at ``start`` (a fraction of the pool)."""
    n, k = crash_path.shape
    out = np.empty((n, k), dtype=np.int64)
    for c in range(k):
        at = 0
        for t in range(n):
            want = crash_path[t, c]
            pool = crash_pool if want else calm_pool
            if pool.shape[0] == 0:  # a history without one of the regimes
                pool = calm_pool if want else crash_pool
            if t > 0 and want == crash_path[t - 1, c] and not restart[t, c]:
                at = (at + 1) % pool.shape[0]
            else:
                at = int(start[t, c] * pool.shape[0])
            out[t, c] = pool[at]
    return out
