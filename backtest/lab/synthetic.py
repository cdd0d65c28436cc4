"""Synthetic price histories that keep crash structure: a regime-aware stationary bootstrap.

1. Every bar of the source history is labelled by the causal regime detector
   (:func:`backtest.data.regimes.detect`); ``crash`` and ``capitulation`` bars form the CRASH
   pool, all others the CALM pool.
2. Each synthetic path draws its own regime sequence from a two-state Markov chain whose
   switching probabilities are the source's (so crashes come in spells of realistic length and
   number, not at the dates they happened).
3. Inside a regime, bars are drawn by a stationary bootstrap (Politis-Romano) of that regime's
   pool, i.e. of its spells concatenated in time order and wrapped circularly: a block starts at
   a uniform bar of the pool and runs on through the next bars of the pool until a geometric
   clock (mean ``block`` bars) or a regime switch of the path stops it. Every pool bar is then
   equally likely (the mean and volatility of the regime are kept), and runs of large moves stay
   together: volatility clusters survive, which an i.i.d. shuffle destroys.
4. Bars are rebuilt from the drawn bars' log close-to-close returns; each bar's open, high and
   low keep their ratio to its own close, and its volume is copied.

Shocks (``[stress.shocks]``) are applied to crash-regime bars afterwards: gap-down opens (the
path stays lower), liquidation wicks (the low only). All randomness comes from one seeded
:class:`numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest import native
from backtest.data import regimes
from backtest.lab.config import ShocksConfig
from backtest.types import Bars

KERNELS = "backtest.lab.kernels"
CRASH_LABELS = ("crash", "capitulation")


@dataclass(frozen=True)
class Source:
    """The source history as bar shapes: log return of each bar's close over the previous
    close, open/high/low over its own close, volume, and the crash flag."""

    log_return: np.ndarray
    open_rel: np.ndarray
    high_rel: np.ndarray
    low_rel: np.ndarray
    volume: np.ndarray
    crash: np.ndarray

    @property
    def switch(self) -> tuple[float, float]:
        """P(calm -> crash) and P(crash -> calm) per bar, from the source's transitions."""
        now, nxt = self.crash[:-1], self.crash[1:]
        calm_to_crash = np.sum(~now & nxt) / max(np.sum(~now), 1)
        crash_to_calm = np.sum(now & ~nxt) / max(np.sum(now), 1)
        return float(calm_to_crash), float(crash_to_calm)


def source_from(bars: Bars, crash: np.ndarray | None = None) -> Source:
    """Bar shapes of ``bars`` (the first bar only anchors the first return) with crash flags
    from the regime detector unless given."""
    o, h, lo, c = (bars[col].to_numpy(dtype=float) for col in ("open", "high", "low", "close"))
    if crash is None:
        crash = regimes.detect(bars).isin([regimes.CODE[n] for n in CRASH_LABELS]).to_numpy()
    return Source(np.diff(np.log(c)), o[1:] / c[1:], h[1:] / c[1:], lo[1:] / c[1:],
                  bars["volume"].to_numpy(dtype=float)[1:], np.asarray(crash, dtype=bool)[1:])


def regime_paths(rng: np.random.Generator, n: int, paths: int, switch: tuple[float, float]
                 ) -> np.ndarray:
    """(n, paths) crash flags from the two-state Markov chain, started in its stationary law."""
    up, down = switch
    share = up / (up + down) if up + down > 0 else 0.0
    draws = rng.random((n, paths))
    return native.kernel(KERNELS, "markov_nb")(draws, float(share), float(up), float(down))


def sample_indices(rng: np.random.Generator, source: Source, crash_path: np.ndarray,
                   block: float) -> np.ndarray:
    """(n, paths) source bar positions for the given regime paths (module docstring, step 3)."""
    restart = rng.random(crash_path.shape) < 1.0 / max(block, 1.0)
    start = rng.random(crash_path.shape)
    return native.kernel(KERNELS, "indices_nb")(
        crash_path, restart, start, np.flatnonzero(~source.crash), np.flatnonzero(source.crash))


@dataclass(frozen=True)
class Paths:
    """(n, paths) OHLCV arrays of synthetic bars and their crash flags."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    crash: np.ndarray

    def bars(self, column: int, index: pd.DatetimeIndex) -> Bars:
        """One path as a Bars frame on ``index``."""
        return pd.DataFrame({name: getattr(self, name)[:, column]
                             for name in ("open", "high", "low", "close", "volume")},
                            index=index)


def build(source: Source, idx: np.ndarray, crash_path: np.ndarray,
          anchor: float | np.ndarray, shocks: ShocksConfig, rng: np.random.Generator) -> Paths:
    """Bars from drawn source positions after the close ``anchor`` (one per path, or one for
    all), with shocks."""
    close = anchor * np.exp(np.cumsum(source.log_return[idx], axis=0))
    if shocks.gap_prob > 0:
        gaps = crash_path & (rng.random(idx.shape) < shocks.gap_prob)
        close *= np.cumprod(np.where(gaps, 1.0 - shocks.gap_pct / 100.0, 1.0), axis=0)
    low = close * source.low_rel[idx]
    if shocks.wick_prob > 0:
        wicks = crash_path & (rng.random(idx.shape) < shocks.wick_prob)
        low = np.where(wicks, np.minimum(low, close * (1.0 - shocks.wick_pct / 100.0)), low)
    return Paths(open=close * source.open_rel[idx], high=close * source.high_rel[idx], low=low,
                 close=close, volume=source.volume[idx], crash=crash_path)
