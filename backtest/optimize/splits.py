"""Validation folds for a search: walk-forward (rolling or anchored) and leave-one-crash-out.

A fold is a pair of bar-position ranges, half-open ``[a, b)`` on the simulated bars: ``train``
(in-sample, what the objective sees) and ``test`` (out-of-sample, only reported). Every range is
simulated on its own from a flat account, so nothing leaks from one range into another.

Pure index arithmetic: imports pandas and numpy only, nothing from crashbt's engine, strategies
or optuna. Bad requests raise ValueError; the optimizer turns them into a ConfigError line.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

Range = tuple[int, int]
MIN_BARS = 2  # a range needs two bars for one return and a Sharpe ratio


@dataclass(frozen=True)
class Fold:
    """One validation fold: in-sample ranges and out-of-sample ranges (positions, half-open)."""

    name: str
    train: tuple[Range, ...]
    test: tuple[Range, ...] = ()


def whole(n_bars: int) -> list[Fold]:
    """No validation: one fold whose in-sample part is every bar."""
    _check_bars(n_bars, 1)
    return [Fold("all", ((0, n_bars),))]


def walk_forward(n_bars: int, folds: int, train_frac: float, anchored: bool = False) -> list[Fold]:
    """``folds`` windows sliding forward so that their test parts tile the end of the data.

    Each rolling window has length ``w`` and moves by its test length ``s = w * (1 - train_frac)``;
    the last window ends on the last bar, so ``(folds - 1) * s + w = n_bars``. Anchored folds keep
    the same test parts but train on everything before them.
    """
    if folds < 1:
        raise ValueError(f"folds >= 1, found {folds}")
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac in (0, 1), found {train_frac}")
    _check_bars(n_bars, 2 * folds)
    width = n_bars / (1.0 + (folds - 1) * (1.0 - train_frac))
    step = width * (1.0 - train_frac)
    # fold i's test ends where fold i+1's test begins: both from one rounding of one expression
    cuts = [round(i * step + train_frac * width) for i in range(folds)] + [n_bars]
    out = []
    for i in range(folds):
        start = round(i * step)
        cut, end = cuts[i], cuts[i + 1]
        train = (0 if anchored else start, cut)
        if min(cut - train[0], end - cut) < MIN_BARS:
            raise ValueError(f"at least {MIN_BARS} bars in every train and test part, found "
                             f"{cut - train[0]} and {end - cut} in fold {i + 1} of {n_bars} bars")
        out.append(Fold(f"wf{i + 1}", (train,), ((cut, end),)))
    return out


def crash_folds(index: pd.DatetimeIndex,
                windows: Sequence[tuple[str, pd.Timestamp, pd.Timestamp]]) -> list[Fold]:
    """Leave one crash out: fold ``k`` tests on window ``k`` and trains on all the others.

    Window ends are inclusive bar open times, as in ``datasets/regimes.toml``.
    """
    if len(windows) < 2:
        raise ValueError(f"at least 2 crash windows, found {len(windows)}")
    ranges: list[Range] = []
    for name, start, end in windows:
        a = int(index.searchsorted(start, side="left"))
        b = int(index.searchsorted(end, side="right"))
        if b - a < MIN_BARS:
            raise ValueError(f"at least {MIN_BARS} bars in window '{name}' "
                             f"({start:%Y-%m-%d} .. {end:%Y-%m-%d}), found {max(b - a, 0)} "
                             f"in the data {index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d}")
        ranges.append((a, b))
    return [Fold(name, tuple(r for j, r in enumerate(ranges) if j != k), (ranges[k],))
            for k, (name, _, _) in enumerate(windows)]


def distinct_ranges(folds: Sequence[Fold]) -> list[Range]:
    """Every range used by any fold, once, in order (each is simulated once per trial)."""
    return sorted({r for fold in folds for r in (*fold.train, *fold.test)})


def blocks(n_bars: int, n_blocks: int) -> list[Range]:
    """``n_blocks`` contiguous, nearly equal ranges covering ``[0, n_bars)`` (for CSCV)."""
    _check_bars(n_bars, n_blocks * MIN_BARS)
    edges = [round(i * n_bars / n_blocks) for i in range(n_blocks + 1)]
    return list(itertools.pairwise(edges))


def _check_bars(n_bars: int, need: int) -> None:
    if n_bars < max(need, MIN_BARS):
        raise ValueError(f"at least {max(need, MIN_BARS)} bars, found {n_bars}")
