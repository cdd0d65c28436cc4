"""Synthetic 1-minute bars for the benchmarks, like the peer baseline's data.

A seeded geometric random walk with two volatility regimes switched by a Markov chain (calm:
sigma 0.08%/min, mean spell 20,000 bars; crash: sigma 0.4%/min, drift -0.03%/min, mean spell
300 bars), gap-downs and flash wicks inside crashes (1% of crash bars each, size |N(5%, 3%)|),
open = previous close x exp(N(0, sigma/4)), wicks |N(0, sigma/2)|, every price rounded to 0.01.
Vectorized numpy only, so 1M bars take a fraction of a second; the same seed gives the same
bars in every process (the sweep subprocesses regenerate them instead of sharing files).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALM_SIGMA, CALM_SPELL = 0.0008, 20_000
CRASH_SIGMA, CRASH_DRIFT, CRASH_SPELL = 0.004, -0.0003, 300
JUMP_P, JUMP_MEAN, JUMP_SD = 0.01, 0.05, 0.03
START_PRICE = 30_000.0


def _crash_mask(rng: np.random.Generator, n: int) -> np.ndarray:
    """Alternating calm/crash spells with geometric lengths (a two-state Markov chain)."""
    spells = max(8, 4 * n // (CALM_SPELL + CRASH_SPELL) + 8)
    calm = rng.geometric(1.0 / CALM_SPELL, spells)
    crash = rng.geometric(1.0 / CRASH_SPELL, spells)
    lengths = np.column_stack((calm, crash)).ravel()
    while lengths.sum() < n:  # rare: draw more spells until the bars are covered
        lengths = np.concatenate((lengths, lengths))
    state = np.repeat(np.tile([False, True], len(lengths) // 2), lengths)
    return state[:n]


def make_bars(n: int, seed: int = 7, level_jumps: bool = False) -> pd.DataFrame:
    """``n`` one-minute OHLCV bars on a tz-aware UTC index named ``timestamp`` (crashbt Bars).

    ``level_jumps`` also offsets the gap-downs in the calm drift: without it the jumps pull the
    log price down ~7 per million bars, so 10M bars would end at a price that rounds to 0.
    """
    rng = np.random.default_rng(seed)
    crash = _crash_mask(rng, n)
    sigma = np.where(crash, CRASH_SIGMA, CALM_SIGMA)
    gap = rng.normal(0.0, sigma / 4)
    gap -= np.where(crash & (rng.random(n) < JUMP_P), np.abs(rng.normal(JUMP_MEAN, JUMP_SD, n)), 0)
    pulled = CRASH_DRIFT * crash.sum() + (gap[crash].sum() if level_jumps else 0.0)
    calm_drift = -pulled / max(1, n - crash.sum())  # zero log drift overall
    drift = np.where(crash, CRASH_DRIFT, calm_drift)
    body = rng.normal(drift, sigma)
    log_close = np.log(START_PRICE) + np.cumsum(gap + body)
    close = np.exp(log_close)
    open_ = np.exp(log_close - body)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = top * np.exp(np.abs(rng.normal(0.0, sigma / 2)))
    flash = crash & (rng.random(n) < JUMP_P)
    low = bottom * np.exp(-np.abs(rng.normal(0.0, sigma / 2))
                          - np.where(flash, np.abs(rng.normal(JUMP_MEAN, JUMP_SD, n)), 0))
    o, h, lo, c = (np.round(a, 2) for a in (open_, high, low, close))
    h, lo = np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c))
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c,
                         "volume": rng.lognormal(3.0, 1.0, n)}, index=index)
