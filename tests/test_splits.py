"""Walk-forward and leave-one-crash-out folds as index ranges."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from backtest.optimize import splits


def test_rolling_walk_forward_by_hand() -> None:
    # n = 100, 3 folds, train 0.5: w = 100 / (1 + 2 * 0.5) = 50, step s = 25.
    # fold 1: train [0, 25) test [25, 50); fold 2: [25, 50) / [50, 75); fold 3: [50, 75) / [75, 100).
    folds = splits.walk_forward(100, 3, 0.5)
    assert [(f.train, f.test) for f in folds] == [
        (((0, 25),), ((25, 50),)), (((25, 50),), ((50, 75),)), (((50, 75),), ((75, 100),))]


def test_anchored_keeps_the_tests_and_trains_from_zero() -> None:
    # Same test parts as the rolling folds; trains start at 0.
    folds = splits.walk_forward(100, 3, 0.5, anchored=True)
    assert [f.train for f in folds] == [((0, 25),), ((0, 50),), ((0, 75),)]
    assert [f.test for f in folds] == [((25, 50),), ((50, 75),), ((75, 100),)]


@given(n=st.integers(40, 5000), k=st.integers(1, 8), frac=st.floats(0.3, 0.9))
@example(n=520, k=7, frac=0.9)  # two roundings of one boundary once disagreed by a bar
def test_walk_forward_tests_tile_the_end_and_never_overlap_their_train(n: int, k: int,
                                                                      frac: float) -> None:
    folds = splits.walk_forward(n, k, frac)
    tests = [f.test[0] for f in folds]
    assert tests[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(tests))
    for fold in folds:
        (ta, tb), (sa, sb) = fold.train[0], fold.test[0]
        assert ta < tb == sa < sb  # train ends exactly where its test begins: no overlap


def test_walk_forward_refuses_too_few_bars() -> None:
    with pytest.raises(ValueError, match="at least"):
        splits.walk_forward(5, 4, 0.7)


def test_crash_folds_leave_one_window_out() -> None:
    index = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    windows = [("a", pd.Timestamp("2024-01-03", tz="UTC"), pd.Timestamp("2024-01-05", tz="UTC")),
               ("b", pd.Timestamp("2024-01-10", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC")),
               ("c", pd.Timestamp("2024-01-20", tz="UTC"), pd.Timestamp("2024-01-25", tz="UTC"))]
    folds = splits.crash_folds(index, windows)
    # Inclusive ends: Jan 3..5 = positions 2..4 -> [2, 5); Jan 10..12 -> [9, 12); 20..25 -> [19, 25)
    assert folds[0].test == ((2, 5),) and folds[0].train == ((9, 12), (19, 25))
    assert folds[2].test == ((19, 25),) and folds[2].train == ((2, 5), (9, 12))
    assert splits.distinct_ranges(folds) == [(2, 5), (9, 12), (19, 25)]


def test_crash_window_outside_the_data_is_refused() -> None:
    index = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    windows = [("a", pd.Timestamp("2024-01-03", tz="UTC"), pd.Timestamp("2024-01-05", tz="UTC")),
               ("late", pd.Timestamp("2025-01-01", tz="UTC"),
                pd.Timestamp("2025-02-01", tz="UTC"))]
    with pytest.raises(ValueError, match="window 'late'"):
        splits.crash_folds(index, windows)


def test_blocks_cover_everything() -> None:
    # 10 bars in 4 blocks: edges round(0, 2.5, 5, 7.5, 10) = 0, 2, 5, 8, 10 (banker's rounding)
    assert splits.blocks(10, 4) == [(0, 2), (2, 5), (5, 8), (8, 10)]
