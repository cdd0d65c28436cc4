"""Property tests of the engine (hypothesis) on random candles, signals and stop settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.config.execution import ExecutionConfig
from backtest.engine.simulate import simulate, simulate_many
from backtest.types import Signals
from tests.scenarios import random_candles

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def market(draw):
    """Random-walk candles, random signals/levels and a random execution config."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(2, 60))
    rng = np.random.default_rng(seed)
    bars = random_candles(rng, n, vol=0.03, gap=0.01, wick=0.01)
    flags = rng.random((4, n)) < draw(st.sampled_from([0.05, 0.2, 0.5]))
    levels = rng.random(n) < 0.5
    close = bars["close"].to_numpy()
    sig = Signals(*(pd.Series(f, index=bars.index) for f in flags),
                  stop_price=pd.Series(np.where(levels, close * 0.97, np.nan), index=bars.index),
                  target_price=pd.Series(np.where(levels, close * 1.05, np.nan),
                                         index=bars.index))
    opt = st.none() | st.floats(0.005, 0.2)
    execution = ExecutionConfig(
        init_cash=1000.0, fee_rate=draw(st.sampled_from([0.0, 0.001, 0.01])),
        slippage_rate=draw(st.sampled_from([0.0, 0.002])),
        fill=draw(st.sampled_from(["next_open", "close"])),
        direction=draw(st.sampled_from(["long", "short", "both"])),
        sl_stop=draw(opt), tp_stop=draw(opt), tsl_stop=draw(opt),
        engine=draw(st.sampled_from(["rust", "numba"])))
    return bars, sig, execution


def cash_from_orders(res, init_cash: float) -> np.ndarray:
    """Cash at each bar's close, replayed from the order ledger."""
    flow = np.where(res.orders["side"] == "buy", -1.0, 1.0) * res.orders["size"] * res.orders[
        "price"] - res.orders["fees"]
    per_bar = pd.Series(flow.to_numpy()).groupby(res.orders["time"].to_numpy()).sum()
    return init_cash + per_bar.reindex(res.equity.index, fill_value=0.0).cumsum().to_numpy()


@SETTINGS
@given(market())
def test_equity_is_cash_plus_position_value(case):
    bars, sig, execution = case
    res = simulate(bars, sig, execution, "1h")
    cash = cash_from_orders(res, execution.init_cash)
    value = res.position.to_numpy() * bars["close"].to_numpy()
    np.testing.assert_allclose(res.equity.to_numpy(), cash + value, rtol=1e-9, atol=1e-6)
    signed = np.where(res.orders["side"] == "buy", 1.0, -1.0) * res.orders["size"]
    assert abs(signed.sum() - res.position.iloc[-1]) <= 1e-9 * max(1.0, res.orders["size"].max()
                                                                    if len(signed) else 1.0)


@SETTINGS
@given(market())
def test_no_fill_outside_the_bar_range(case):
    bars, sig, execution = case
    res = simulate(bars, sig, execution, "1h")
    bar = bars.loc[res.orders["time"]]
    s = execution.slippage_rate
    assert (res.orders["price"].to_numpy() >= bar["low"].to_numpy() * (1 - s) * (1 - 1e-12)).all()
    assert (res.orders["price"].to_numpy() <= bar["high"].to_numpy() * (1 + s) * (1 + 1e-12)).all()


@SETTINGS
@given(market())
def test_fees_never_increase_equity(case):
    bars, sig, execution = case
    free = execution.model_copy(update={"fee_rate": 0.0})
    paid = execution.model_copy(update={"fee_rate": 0.01})
    # same trades only when no position sizing feeds back into stops: compare the fee ledger
    res_paid = simulate(bars, sig, paid, "1h")
    res_free = simulate(bars, sig, free, "1h")
    assert (res_paid.orders["fees"] >= 0).all()
    if len(res_paid.orders) == len(res_free.orders) and (
            res_paid.orders["time"].to_numpy() == res_free.orders["time"].to_numpy()).all():
        assert res_paid.equity.iloc[-1] <= res_free.equity.iloc[-1] * (1 + 1e-12)


SIZES = st.sampled_from([{"kind": "all_in"}, {"kind": "fraction", "fraction": 0.4},
                         {"kind": "notional", "notional": 300.0}, {"kind": "risk", "risk": 0.02},
                         {"kind": "vol_target", "target": 0.5, "lookback": 5}])


@SETTINGS
@given(market(), st.permutations(range(5)), SIZES, st.lists(st.none() | st.integers(1, 6),
                                                             min_size=5, max_size=5))
def test_simulate_many_order_of_columns_does_not_matter(case, order, size, holds):
    bars, sig, execution = case
    rng = np.random.default_rng(len(bars))
    sigs = [Signals(*(pd.Series(f, index=bars.index) for f in rng.random((4, len(bars))) < 0.2),
                    stop_price=sig.stop_price, target_price=sig.target_price,
                    max_bars_held=hold) for hold in holds]
    sized = ExecutionConfig.model_validate(execution.model_dump() | {"size": size})
    execs = [sized.model_copy(update={"sl_stop": sl}) for sl in (None, .01, .03, .05, .1)]
    base = simulate_many(bars, sigs, execs)
    shuffled = simulate_many(bars, [sigs[i] for i in order], [execs[i] for i in order])
    pd.testing.assert_frame_equal(shuffled, base.iloc[list(order)].reset_index(drop=True))
    for k in (0, 3):  # and each column equals a single full simulation
        single = simulate(bars, sigs[k], execs[k].model_copy(update={"engine": "numba"}), "1h")
        assert base["final_equity"][k] == single.equity.iloc[-1]
        assert base["n_trades"][k] == len(single.trades)
