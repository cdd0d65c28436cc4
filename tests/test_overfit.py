"""Deflated Sharpe ratio and PBO (CSCV) against hand-computed values on small fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.metrics import overfit


def test_return_stats_by_hand() -> None:
    # r = [1, 2, 3, 6]: mean 3; deviations -2, -1, 0, 3; sum sq 14 -> sample std sqrt(14/3)
    # = 2.1602 -> Sharpe 3 / 2.1602 = 1.3887. Population m2 = 14/4 = 3.5, m3 = (-8-1+0+27)/4
    # = 4.5 -> skew 4.5 / 3.5^1.5 = 0.68724; m4 = (16+1+0+81)/4 = 24.5 -> kurtosis 24.5 / 12.25 = 2.
    stats = overfit.return_stats(np.array([1.0, 2.0, 3.0, 6.0]))
    assert stats.sharpe == pytest.approx(3 / math.sqrt(14 / 3))
    assert stats.skew == pytest.approx(4.5 / 3.5**1.5)
    assert stats.kurtosis == pytest.approx(2.0)
    assert stats.n == 4


def test_constant_returns_are_neutral() -> None:
    stats = overfit.return_stats(np.full(10, 0.01))
    assert (stats.sharpe, stats.skew, stats.kurtosis) == (0.0, 0.0, 3.0)


def test_expected_max_sharpe_by_hand() -> None:
    # N = 10, V = 0.01: Z^-1(1 - 1/10) = Z^-1(0.9) = 1.281552; Z^-1(1 - 1/(10 e)) =
    # Z^-1(0.963212) = 1.789119. SR0 = 0.1 * (0.422784 * 1.281552 + 0.577216 * 1.789119)
    # = 0.1 * (0.541825 + 1.032707) = 0.157453.
    assert overfit.expected_max_sharpe(10, 0.01) == pytest.approx(0.157453, abs=1e-5)
    assert overfit.expected_max_sharpe(1, 0.01) == 0.0  # nothing was selected


def test_deflated_sharpe_by_hand() -> None:
    # SR* = 0.2 per bar, T = 101, normal returns (skew 0, kurtosis 3), N = 10, V = 0.01:
    # SR0 = 0.157453 (above); spread = 1 - 0 + (3 - 1) / 4 * 0.04 = 1.02;
    # z = (0.2 - 0.157453) * sqrt(100) / sqrt(1.02) = 0.42547 / 1.009950 = 0.421278;
    # DSR = Phi(0.421278) = 0.66322.
    out = overfit.deflated_sharpe(overfit.ReturnStats(0.2, 0.0, 3.0, 101), 0.01, 10)
    assert out["expected_max_sharpe"] == pytest.approx(0.157453, abs=1e-5)
    assert out["dsr"] == pytest.approx(0.66322, abs=1e-4)


def test_more_trials_deflate_more() -> None:
    best = overfit.ReturnStats(0.2, 0.0, 3.0, 101)
    few = overfit.deflated_sharpe(best, 0.01, 10)["dsr"]
    many = overfit.deflated_sharpe(best, 0.01, 1000)["dsr"]
    assert many < few


def test_negative_skew_and_fat_tails_lower_psr() -> None:
    # Same SR and benchmark; skew -1, kurtosis 10: spread = 1 + 0.2 + 9/4 * 0.04 = 1.29 > 1.02,
    # so z shrinks and the probability falls (for SR above the benchmark).
    normal = overfit.probabilistic_sharpe(0.2, 0.0, 101, 0.0, 3.0)
    fat = overfit.probabilistic_sharpe(0.2, 0.0, 101, -1.0, 10.0)
    # normal: z = 0.2 * 10 / sqrt(1.02) = 1.98030 -> Phi = 0.97616
    assert normal == pytest.approx(0.97616, abs=1e-4)
    assert fat < normal


def _blocks(means: list[list[float]]) -> np.ndarray:
    """Returns matrix: each block is two bars at mean +- 0.01, so every block has the same
    spread and a higher block mean means a higher Sharpe."""
    rows = []
    for block in means:
        rows.append([m + 0.01 for m in block])
        rows.append([m - 0.01 for m in block])
    return np.array(rows)


def test_pbo_zero_when_one_trial_dominates_everywhere() -> None:
    # Trial 0 has the highest mean in all 4 blocks: it is the in-sample pick in all C(4,2) = 6
    # splits and ranks 3rd of 3 out of sample: omega = 3/4, logit = ln 3 > 0 -> PBO = 0.
    returns = _blocks([[0.03, 0.01, 0.0], [0.03, 0.02, 0.0], [0.04, 0.01, 0.02],
                       [0.05, 0.0, 0.01]])
    out = overfit.pbo_cscv(returns, 4)
    assert out["n_splits"] == 6
    assert out["pbo"] == 0.0
    assert out["logit_mean"] == pytest.approx(math.log(3))


def test_pbo_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    # Two trials, two blocks: trial 0 wins block A, trial 1 wins block B. Each split picks the
    # other half's loser: omega = 1/3, logit = ln(1/2) < 0 in both splits -> PBO = 1.
    returns = _blocks([[0.02, 0.0], [0.0, 0.02]])
    out = overfit.pbo_cscv(returns, 2)
    assert out["n_splits"] == 2
    assert out["pbo"] == 1.0
    assert out["logit_mean"] == pytest.approx(math.log(0.5))


def test_pbo_half_for_mixed_blocks() -> None:
    # Blocks (means; spread equal): A (.02, 0), B (.02, 0), C (0, .02), D (0, .02). Of the six
    # halves, {A,B} and {C,D} pick a trial that loses out of sample (logit ln .5 < 0); the four
    # mixed halves tie in-sample, argmax picks trial 0, which ties out of sample too:
    # omega = (0 + (2 + 1)/2) / 3 = 0.5, logit 0 -> counted as overfit (<= 0). PBO = 6/6 = 1.
    returns = _blocks([[0.02, 0.0], [0.02, 0.0], [0.0, 0.02], [0.0, 0.02]])
    assert overfit.pbo_cscv(returns, 4)["pbo"] == 1.0
    # Make trial 1 slightly better in C and D than trial 0 in A and B: the mixed halves now pick
    # trial 1 ({A,C}: 0.01 vs 0.0105), which wins the other mixed half too (omega 2/3 > .5);
    # {A,B} still picks trial 0, which loses {C,D}. PBO = 2/6.
    returns = _blocks([[0.02, 0.0], [0.02, 0.0], [0.0, 0.021], [0.0, 0.021]])
    assert overfit.pbo_cscv(returns, 4)["pbo"] == pytest.approx(2 / 6)


def test_pbo_refuses_odd_blocks() -> None:
    with pytest.raises(ValueError, match="even number of blocks"):
        overfit.pbo_cscv(np.zeros((9, 2)), 3)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_block_sums_give_the_exact_union_sharpe(seed: int) -> None:
    """Any union of blocks has the same Sharpe from stored sums as from the raw returns."""
    r = np.random.default_rng(seed).normal(0.001, 0.02, size=(40, 3))
    edges = [(0, 10), (10, 20), (20, 30), (30, 40)]
    sums = overfit.block_sums(r, edges)
    picked = sums[[0, 2]]
    raw = np.concatenate([r[0:10], r[20:30]])
    expected = raw.mean(axis=0) / raw.std(axis=0, ddof=1)
    np.testing.assert_allclose(overfit._union_sharpe(picked), expected, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=9), st.integers(min_value=2, max_value=3000),
       st.integers(min_value=0, max_value=2**31 - 1))
def test_block_sums_of_stacked_rows_are_each_rows_own_to_the_last_bit(columns: int, n: int,
                                                                      seed: int) -> None:
    """A search sums the blocks of all its sets at once, from their return rows stacked and
    transposed: each set's sums must be those of its own 1-d returns, bit for bit (the numpy
    reductions run along each row in memory, as for a single array)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 0.02, size=(columns, n)) * (rng.random((columns, n)) < 0.4)
    edges = [(round(i * n / 5), round((i + 1) * n / 5)) for i in range(5)]
    together = overfit.block_sums(rows.T, edges)
    for c in range(columns):
        alone = overfit.block_sums(rows[c].copy(), edges)[:, :, 0]
        assert together[:, :, c].tobytes() == alone.tobytes()
