"""Numba kernels of the features: level events, reachability and a latch, on plain arrays.

:mod:`backtest.features.levels` documents the rules and calls these through
:mod:`backtest.native` (compiled ahead of time when built). Imports numpy and numba only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: the kernels crashbt calls (signatures in :mod:`backtest.aot`'s notation)
EXPORTS = {
    "reached_or_undefined_nb": "b1(f8[], f8[], f8[])",
    "level_events_nb": "b1[](f8[], f8[], f8[], b1, f8, b1[], i8)",
    "latch_nb": "b1[](b1[], b1[])",
}


@njit(cache=True)
def reached_or_undefined_nb(level: np.ndarray, low: np.ndarray, high: np.ndarray) -> bool:
    """Whether some bar with a level and a low has ``low <= level <= high``, or none has both.
    Scans from the last bar and stops at the first that reaches the level: a level worth
    trading is usually near recent prices."""
    defined = False
    for t in range(level.shape[0] - 1, -1, -1):
        lvl = level[t]
        if lvl != lvl or low[t] != low[t]:
            continue
        defined = True
        if low[t] <= lvl <= high[t]:
            return True
    return not defined


@njit(cache=True)
def level_events_nb(close: np.ndarray, probe: np.ndarray, level: np.ndarray, below: bool,
                    rearm_pct: float, volume_ok: np.ndarray, hold: int) -> np.ndarray:
    """Armed/count state machine of the module docstring on aligned price arrays (``probe``:
    the close or the wick; ``volume_ok`` empty when no volume confirmation is asked)."""
    out = np.zeros(close.shape[0], dtype=np.bool_)
    rearm_up, rearm_down = 1.0 + rearm_pct, 1.0 - rearm_pct
    armed = False
    count = 0
    for t in range(close.shape[0]):
        c, p, lvl = close[t], probe[t], level[t]
        if lvl != lvl or c != c or p != p:  # no value, no crossing through it
            armed = False
            count = 0
        elif armed and (p < lvl if below else p > lvl):
            count += 1
            if count >= hold and (volume_ok.shape[0] == 0 or volume_ok[t]):
                out[t] = True
                armed = False
                count = 0
        else:
            count = 0
            armed = armed or (c >= lvl * rearm_up if below else c <= lvl * rearm_down)
    return out


@njit(cache=True)
def latch_nb(on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """True from each ``on`` until the next ``off`` (``on`` wins a bar with both)."""
    out = np.empty(on.shape[0], dtype=np.bool_)
    state = False
    for t in range(on.shape[0]):
        state = on[t] or (state and not off[t])
        out[t] = state
    return out
