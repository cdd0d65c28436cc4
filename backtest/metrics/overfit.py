"""How much of a search's best result is luck: deflated Sharpe ratio and PBO via CSCV.

* Deflated Sharpe ratio (Bailey & Lopez de Prado, 2014): the probability that the best trial's
  true Sharpe ratio exceeds the Sharpe ratio the best of ``N`` unskilled trials would show by
  chance, given the dispersion of the trials' Sharpe ratios, the sample length and the
  skewness and kurtosis of the best trial's returns.
* Probability of backtest overfitting (Bailey, Borwein, Lopez de Prado & Zhu, 2015):
  combinatorially symmetric cross-validation over a (time block x trial) matrix. For every way
  of taking half the blocks as in-sample, the in-sample best trial is ranked out-of-sample; PBO
  is the share of splits where it lands at or below the median (logit <= 0).

Sharpe ratios here are per observation (not annualized). Pure numpy and the standard library
(``statistics.NormalDist`` for the normal CDF and its inverse); imports from crashbt only the
return-moments kernel of :mod:`backtest.metrics.kernels` (through :mod:`backtest.native`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations, pairwise
from statistics import NormalDist

import numpy as np

from backtest import native

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


@dataclass(frozen=True)
class ReturnStats:
    """Per-observation Sharpe ratio, skewness, (non-excess) kurtosis and count of a series."""

    sharpe: float
    skew: float
    kurtosis: float
    n: int


def return_stats(returns: np.ndarray) -> ReturnStats:
    """Moments of ``returns``; Sharpe uses the sample std (ddof=1), skew/kurtosis population ones.

    A constant series has Sharpe 0, skew 0 and kurtosis 3 (the normal values, so that it
    neither inflates nor deflates anything).
    """
    r = np.ascontiguousarray(returns, dtype=np.float64)
    n = r.size
    if n < 2:
        return ReturnStats(0.0, 0.0, 3.0, n)
    mean, s2, s3, s4, spread = native.kernel("backtest.metrics.kernels", "return_moments_nb")(r)
    if spread == 0.0 or not s2 > 0.0:  # constant returns (NaN ones too)
        return ReturnStats(0.0, 0.0, 3.0, n)
    m2 = s2 / n
    return ReturnStats(mean / math.sqrt(s2 / (n - 1)), s3 / n / m2**1.5, s4 / n / m2**2, n)


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` unskilled trials (the DSR benchmark SR0).

    ``sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))`` with g Euler's gamma; 0 for
    a single trial (nothing was selected).
    """
    if n_trials < 2 or var_sharpe <= 0.0:
        return 0.0
    first = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    second = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * first + EULER_GAMMA * second)


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float,
                         kurtosis: float) -> float:
    """P(true Sharpe > ``benchmark``) for an observed per-observation ``sharpe`` (PSR)."""
    if n_obs < 2:
        return 0.5
    spread = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if spread <= 0.0:
        return 1.0 if sharpe > benchmark else 0.0
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread))


def deflated_sharpe(best: ReturnStats, var_sharpe: float, n_trials: int) -> dict[str, float]:
    """Deflated Sharpe ratio of the best trial among ``n_trials`` with Sharpe variance given."""
    benchmark = expected_max_sharpe(n_trials, var_sharpe)
    return {
        "sharpe": best.sharpe,
        "expected_max_sharpe": benchmark,
        "n_trials": n_trials,
        "var_sharpe": var_sharpe,
        "n_obs": best.n,
        "skew": best.skew,
        "kurtosis": best.kurtosis,
        "dsr": probabilistic_sharpe(best.sharpe, benchmark, best.n, best.skew, best.kurtosis),
    }


def block_sums(returns: np.ndarray, edges: list[tuple[int, int]]) -> np.ndarray:
    """Per block and column: ``[count, sum, sum of squares]`` -> shape (blocks, 3, columns).

    Enough to get the exact Sharpe ratio of any union of blocks, so a study stores three numbers
    per block and trial instead of every return.
    """
    r = np.asarray(returns, dtype=float)
    r = r.reshape(len(r), -1)
    out = np.empty((len(edges), 3, r.shape[1]))
    for k, (a, b) in enumerate(edges):
        part = r[a:b]
        out[k, 0] = b - a
        out[k, 1] = part.sum(axis=0)
        out[k, 2] = np.einsum("ij,ij->j", part, part)  # sum of squares, no squared copy
    return out


def _union_sharpe(sums: np.ndarray) -> np.ndarray:
    """Sharpe (ddof=1) per column of the union of blocks given as (blocks, 3, columns) sums."""
    n, total, squares = sums.sum(axis=0)
    mean = total / n
    var = (squares - n * mean**2) / (n - 1)
    std = np.sqrt(np.clip(var, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 1e-15, mean / std, 0.0)


def _relative_rank(values: np.ndarray, pick: int) -> float:
    """Average rank (1 = lowest) of ``values[pick]`` divided by ``N + 1``: omega in (0, 1)."""
    below = int(np.sum(values < values[pick]))
    ties = int(np.sum(values == values[pick]))
    return (below + (ties + 1) / 2.0) / (len(values) + 1)


def pbo_from_blocks(sums: np.ndarray) -> dict[str, float | int]:
    """PBO by CSCV from block sums of shape (S, 3, N); S even, N >= 2 trials.

    For each of the C(S, S/2) in-sample halves: ``n*`` = argmax in-sample Sharpe (first on
    ties), ``omega`` = its relative out-of-sample rank, ``logit = ln(omega / (1 - omega))``.
    """
    n_blocks, _, n_trials = sums.shape
    if n_blocks < 2 or n_blocks % 2 or n_trials < 2:
        raise ValueError(f"an even number of blocks >= 2 and >= 2 trials, found {n_blocks} "
                         f"blocks and {n_trials} trials")
    logits = []
    for half in combinations(range(n_blocks), n_blocks // 2):
        mask = np.zeros(n_blocks, dtype=bool)
        mask[list(half)] = True
        chosen = int(np.argmax(_union_sharpe(sums[mask])))
        omega = _relative_rank(_union_sharpe(sums[~mask]), chosen)
        logits.append(math.log(omega / (1.0 - omega)))
    arr = np.array(logits)
    return {"pbo": float(np.mean(arr <= 0.0)), "n_splits": len(logits), "n_blocks": n_blocks,
            "n_trials": n_trials, "logit_mean": float(arr.mean())}


def pbo_cscv(returns: np.ndarray, n_blocks: int) -> dict[str, float | int]:
    """PBO by CSCV of a (time x trial) returns matrix cut into ``n_blocks`` equal row blocks."""
    n = len(returns)
    edges = [round(i * n / n_blocks) for i in range(n_blocks + 1)]
    return pbo_from_blocks(block_sums(returns, list(pairwise(edges))))
