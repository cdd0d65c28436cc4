"""The regime detector's int8 codes against the labels written as plain rules, and the spans a
report shades."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.config.data import DataConfig
from backtest.data import regimes
from backtest.data.bars import load_bars
from backtest.pipeline import regime_spans


def labels_by_rules(bars: pd.DataFrame, intensity: pd.Series | None) -> np.ndarray:
    """The module docstring's table as np.select on string labels (first match wins)."""
    close = bars["close"].to_numpy()
    drawdown = close / np.maximum.accumulate(bars["high"].to_numpy()) - 1.0
    step = pd.Series(bars.index[1:] - bars.index[:-1]).median()
    week = max(1, round(pd.Timedelta(days=7) / step))
    month = max(1, round(pd.Timedelta(days=30) / step))
    fell = pd.Series(drawdown).diff(week).to_numpy()
    bounce = close / pd.Series(bars["low"].to_numpy()).rolling(month, min_periods=1).min() - 1
    intense = np.zeros(len(bars), dtype=bool) if intensity is None else \
        intensity.reindex(bars.index).to_numpy() >= 3.0
    return np.select(
        [((drawdown <= -0.30) & (fell <= -0.15)) | ((drawdown <= -0.20) & intense),
         (drawdown <= -0.20) & (fell <= -0.08), (drawdown <= -0.20) & (bounce.to_numpy() >= 0.15),
         drawdown <= -0.20, drawdown <= -0.10],
        ["capitulation", "crash", "recovery", "bear", "correction"], default="calm")


@pytest.mark.parametrize("dataset", ["btcusdt_1h", "ethusdt_1d"])
@pytest.mark.parametrize("with_intensity", [False, True])
def test_codes_name_the_rules_labels(dataset: str, with_intensity: bool) -> None:
    bars, _ = load_bars(DataConfig(dataset=dataset))
    intensity = None
    if with_intensity:
        intensity = pd.Series(np.random.default_rng(1).random(len(bars)) * 4, index=bars.index)
    codes = regimes.detect(bars, intensity)
    assert codes.dtype == np.int8 and codes.index.equals(bars.index)
    names = np.asarray(regimes.LABELS)[codes.to_numpy()]
    expected = labels_by_rules(bars, intensity)
    assert (names == expected).all()
    assert len(set(expected)) >= 5  # the data visits (nearly) every regime


def test_spans_are_runs_of_one_code() -> None:
    index = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    codes = pd.Series(np.array([0, 0, 3, 3, 3, 1], dtype=np.int8), index=index)
    assert regime_spans(codes) == [
        {"regime": "calm", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z"},
        {"regime": "crash", "start": "2024-01-01T02:00:00Z", "end": "2024-01-01T04:00:00Z"},
        {"regime": "correction", "start": "2024-01-01T05:00:00Z",
         "end": "2024-01-01T05:00:00Z"}]
    assert regime_spans(codes.iloc[:0]) == []


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 400),
       freq=st.sampled_from(["1D", "6h", "1h"]), nan_share=st.sampled_from([0.0, 0.02, 0.3]),
       with_intensity=st.booleans())
def test_one_pass_matches_the_rules_on_random_walks(seed: int, n: int, freq: str,
                                                     nan_share: float,
                                                     with_intensity: bool) -> None:
    """The numba pass against the rules written with numpy/pandas, on steep random walks (every
    regime visited) with NaN prices, ties and short spans (below a week or a month of bars)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.08, n)))
    low = np.round(close * (1 - rng.random(n) * 0.05), 1)  # rounding makes equal lows
    high = close * (1 + rng.random(n) * 0.05)
    for column in (close, low, high):
        column[rng.random(n) < nan_share] = np.nan
    index = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    bars = pd.DataFrame({"close": close, "high": high, "low": low}, index=index)
    intensity = (pd.Series(rng.random(n) * 4, index=index) if with_intensity else None)
    names = np.asarray(regimes.LABELS)[regimes.detect(bars, intensity).to_numpy()]
    assert (names == labels_by_rules(bars, intensity)).all()
