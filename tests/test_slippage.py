"""The sqrt_impact slippage model: a hand-computed fill, fills never outside the bar's range, and
slippage that grows with volatility and with order size (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.config.execution import ExecutionConfig
from backtest.engine import kernels
from backtest.engine.simulate import simulate, slippage_market
from backtest.types import Signals
from tests.scenarios import candles, random_candles, signals

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def impact(**kwargs) -> ExecutionConfig:
    return ExecutionConfig(**{"init_cash": 1000.0, "fee_rate": 0.0,
                              "slippage_model": "sqrt_impact", "slippage_vol_window": 2,
                              **kwargs})


def test_a_hand_computed_entry_fill():
    bars = candles([(100, 100, 100, 100), (100, 110, 100, 110), (110, 110, 100, 100),
                    (100, 120, 90, 105)])
    bars["volume"] = 40.0
    res = simulate(bars, signals(bars, long_entries=[2]),
                   impact(slippage_vol_coef=0.5, slippage_impact_coef=0.1), "1h")
    # sigma for bar 3: std (ddof 1) of the log returns ln(1.1), ln(1/1.1) = 0.0953102 x sqrt(2)
    # = 0.1347880; est. size 1000 / 100 = 10 units of volume 40: sqrt(0.25) = 0.5
    # slip = 0.5 x 0.1347880 + 0.1 x 0.1347880 x 0.5 = 0.0741334 -> buy at 107.41334 (< high 120)
    sigma = math.log(1.1) * math.sqrt(2)
    slip = 0.5 * sigma + 0.1 * sigma * 0.5
    assert res.orders["price"].iloc[0] == pytest.approx(100 * (1 + slip))
    assert res.trades["size"].iloc[0] == pytest.approx(1000 / (100 * (1 + slip)))


def test_the_fill_is_clipped_to_the_bar():
    bars = candles([(100, 100, 100, 100), (100, 110, 100, 110), (110, 110, 100, 100),
                    (100, 101, 99, 100)])
    res = simulate(bars, signals(bars, long_entries=[2]), impact(slippage_vol_coef=5.0), "1h")
    # slip = 5 x 0.134788 = 0.674 would buy at 167.4: clipped to the high 101
    assert res.orders["price"].tolist() == [101.0]


@st.composite
def market(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(3, 60))
    rng = np.random.default_rng(seed)
    bars = random_candles(rng, n, vol=0.05, gap=0.02, wick=0.02)
    bars["volume"] = rng.exponential(5.0, n)
    sig = Signals(*(pd.Series(f, index=bars.index) for f in rng.random((4, n)) < 0.25))
    perp = draw(st.booleans())
    execution = impact(
        init_cash=draw(st.sampled_from([1e2, 1e5, 1e8])),
        slippage_vol_coef=draw(st.floats(0.0, 20.0)), slippage_impact_coef=draw(
            st.floats(0.01, 20.0)), sl_stop=draw(st.none() | st.floats(0.01, 0.2)),
        instrument="perp" if perp else "spot", leverage=draw(st.floats(1, 50)) if perp else 1.0,
        funding=False, fill=draw(st.sampled_from(["next_open", "close"])))
    return bars, sig, execution


@SETTINGS
@given(market())
def test_fills_never_leave_the_bar_range(case):
    bars, sig, execution = case
    orders = simulate(bars, sig, execution, "1h").orders
    bar = bars.loc[orders["time"]]
    assert (orders["price"].to_numpy() >= bar["low"].to_numpy()).all()
    assert (orders["price"].to_numpy() <= bar["high"].to_numpy()).all()


@SETTINGS
@given(st.floats(1e-6, 1e6), st.floats(1e-6, 1e6), st.floats(0.0, 5.0), st.floats(0.01, 5.0),
       st.booleans())
def test_slippage_grows_with_size(size_a, size_b, k_vol, k_impact, buy):
    bars = candles([(100, 100, 100, 100), (100, 110, 100, 110), (110, 110, 100, 100),
                    (100, 1e9, 1e-9, 100)])
    mkt = slippage_market(bars, impact(slippage_vol_coef=k_vol, slippage_impact_coef=k_impact))
    small, large = sorted((size_a, size_b))
    a, b = (kernels.fill_price_nb(mkt, 3, 100.0, buy, s) for s in (small, large))
    assert (a <= b) if buy else (a >= b)
    if large > 1.01 * small and min(a, b) > 1e-9:  # strictly worse unless clipped at the low
        assert a != b


@SETTINGS
@given(st.floats(1.1, 10.0), st.floats(0.01, 5.0), st.floats(0.0, 5.0), st.floats(0.01, 100.0))
def test_slippage_grows_with_volatility(scale, k_vol, k_impact, size):
    def fill(step: float) -> float:
        closes = 100 * np.exp(np.array([0.0, step, -step, 0.5 * step]))
        bars = candles([(c, c * 1e3, c * 1e-3, c) for c in closes])
        mkt = slippage_market(bars, impact(slippage_vol_coef=k_vol, slippage_impact_coef=k_impact,
                                           slippage_vol_window=3))
        return kernels.fill_price_nb(mkt, 3, 100.0, True, size) / 100.0 - 1.0

    assert fill(0.01 * scale) > fill(0.01)
