"""Resampling statistics shared by the event study and the stress test.

* :func:`bootstrap_means`: Politis-Romano (1994) stationary bootstrap of column means: blocks
  of geometric length (mean ``block``) starting at uniform positions, wrapping circularly.
* :func:`block_length`: Politis-White (2004) automatic block length for the stationary
  bootstrap, with the Patton-Politis-White (2009) correction, capped at ``min(3 sqrt(n), n/3)``.
* :func:`wilson`: Wilson score interval of a proportion; :func:`percentile_rank`.

All randomness comes from a :class:`numpy.random.Generator` the caller seeds, so a result is
reproducible from the seed stored in its JSON.
"""

from __future__ import annotations

import math

import numpy as np

#: Two-sided confidence level of every interval the lab reports.
CONFIDENCE = 0.95


def block_sizes(rng: np.random.Generator, n: int, block: float) -> np.ndarray:
    """Geometric block lengths (mean ``block``) of one stationary-bootstrap resample, cut so
    that they sum to exactly ``n``."""
    p = 1.0 / max(block, 1.0)
    sizes = rng.geometric(p, size=int(n * p * 2) + 16)
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, rng.geometric(p, size=int(n * p) + 16)])
    total = np.cumsum(sizes)
    last = int(np.searchsorted(total, n))
    sizes = sizes[:last + 1].copy()
    sizes[-1] -= total[last] - n
    return sizes


def bootstrap_means(values: np.ndarray, block: float, reps: int, rng: np.random.Generator
                    ) -> np.ndarray:
    """(reps, columns) column means of stationary-bootstrap resamples of ``values`` (finite,
    rows in time order) with mean block length ``block``.

    Each resample is ``n`` rows made of blocks that start at uniform rows, run for geometric
    lengths and wrap from the last row to the first (Politis-Romano); block sums come from
    prefix sums, so a resample costs its number of blocks, not ``n``.
    """
    values = np.asarray(values, dtype=float)
    values = values[:, None] if values.ndim == 1 else values
    n = len(values)
    prefix = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(np.vstack([values, values]),
                                                                  axis=0)])
    out = np.empty((reps, values.shape[1]))
    for rep in range(reps):
        sizes = block_sizes(rng, n, block)
        starts = rng.integers(0, n, size=sizes.size)
        out[rep] = (prefix[starts + sizes] - prefix[starts]).sum(axis=0) / n
    return out


def interval(draws: np.ndarray) -> tuple[float, float]:
    """The central :data:`CONFIDENCE` percentile interval of bootstrap draws."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _autocovariances(x: np.ndarray, lags: int) -> np.ndarray:
    """Biased (divide by n) autocovariances at lags 0..``lags``, by FFT."""
    n = len(x)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x - x.mean(), size)
    return np.fft.irfft(spectrum * np.conj(spectrum), size)[:lags + 1] / n


def block_length(x: np.ndarray) -> float:
    """Politis-White automatic mean block length of the stationary bootstrap for series ``x``.

    The bandwidth ``m`` is the first lag after which ``K_n = max(5, sqrt(log10 n))`` successive
    autocorrelations are insignificant (``|rho| < 2 sqrt(log10 n / n)``); a flat-top kernel over
    ``2m`` lags estimates the spectral quantities ``G`` and ``D``, and
    ``b = (2 G^2 / D)^(1/3) n^(1/3)``.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 10:
        return 1.0
    kn = max(5, int(math.sqrt(math.log10(n))))
    m_max = math.ceil(math.sqrt(n)) + kn
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    acv = _autocovariances(x, m_max)
    if acv[0] <= 0:
        return 1.0
    rho = np.abs(acv[1:] / acv[0])
    threshold = 2.0 * math.sqrt(math.log10(n) / n)
    insignificant = rho < threshold
    m_hat = m_max
    for m in range(0, m_max - kn + 1):
        if insignificant[m:m + kn].all():
            m_hat = m
            break
    bandwidth = min(2 * max(m_hat, 1), m_max)
    lags = np.arange(-bandwidth, bandwidth + 1)
    ratio = np.abs(lags) / bandwidth
    flat_top = np.where(ratio <= 0.5, 1.0, np.where(ratio <= 1.0, 2.0 * (1.0 - ratio), 0.0))
    gamma = acv[np.abs(lags)]
    g = float(np.sum(flat_top * np.abs(lags) * gamma))
    spectral = float(np.sum(flat_top * gamma))
    d = 2.0 * spectral**2
    if d <= 0:
        return 1.0
    return float(min(max((2.0 * g * g / d) ** (1 / 3) * n ** (1 / 3), 1.0), b_max))


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of ``successes / trials`` (``(0, 1)`` when there are no trials)."""
    if trials == 0:
        return 0.0, 1.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_rank(sample: np.ndarray, value: float) -> float:
    """Percent of ``sample`` below ``value``, ties counted half (50 = the median)."""
    sample = np.asarray(sample, dtype=float)
    sample = sample[np.isfinite(sample)]
    if not sample.size or not math.isfinite(value):
        return math.nan
    return float(100.0 * (np.sum(sample < value) + 0.5 * np.sum(sample == value)) / sample.size)
