"""Candle-table scenarios pinning the perpetual-futures rules of backtest.engine (isolated margin,
tiered maintenance, liquidation, funding) with hand-computed ledgers. Bundled BTCUSDT tiers;
init_cash 1000, fees 0, funding off unless stated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.config.execution import ExecutionConfig
from backtest.engine import margin
from backtest.engine.simulate import simulate, simulate_many
from backtest.errors import ConfigError, DataError
from backtest.metrics.performance import perp_metrics
from backtest.types import Signals
from tests.scenarios import candles, random_candles, signals


def run(bars, sig, rates=None, freq="1h", **kwargs):
    kwargs = {"init_cash": 1000.0, "fee_rate": 0.0, "instrument": "perp", "funding": False,
              **kwargs}
    return simulate(bars, sig, ExecutionConfig(**kwargs), freq, rates)


# 5x long from 100: notional 5000 -> tier 1 (rate 0.004, amount 0), q = 50, margin 1000;
# LP = (50 x 100 - 1000 - 0) / (50 - 50 x 0.004) = 4000 / 49.8 = 80.32128514...
LP_5X = 4000 / 49.8
CRASH = candles([
    (100, 101, 99, 100),  # 0 signal: long entry
    (100, 102, 95, 97),   # 1 fill at open 100; low 95 above LP
    (97, 98, 80, 85),     # 2 low 80 crosses LP 80.3213 -> liquidated at LP
    (85, 86, 84, 85),     # 3
])


def test_5x_long_liquidated_intra_bar_at_the_liquidation_price():
    res = run(CRASH, signals(CRASH, long_entries=[0]), leverage=5)
    (trade,) = res.trades.itertuples()
    assert (trade.exit_time, trade.exit_reason, trade.status) == (CRASH.index[2], "liquidation",
                                                                  "closed")
    assert trade.size == pytest.approx(50.0) and trade.exit_price == pytest.approx(LP_5X)
    # pnl = 50 x (80.3212851 - 100) = -983.935743; what is left = maintenance margin
    # 50 x 80.3212851 x 0.004 = 16.064257
    assert trade.pnl == pytest.approx(-983.9357430)
    assert res.equity.iloc[1] == pytest.approx(850.0)  # 1000 + 50 x (97 - 100)
    assert res.equity.iloc[2:].tolist() == pytest.approx([16.0642570] * 2)
    assert res.position.iloc[2] == 0.0


def test_liquidation_fee_is_paid_from_the_remaining_margin():
    res = run(CRASH, signals(CRASH, long_entries=[0]), leverage=5, liquidation_fee_rate=0.002)
    # fee = 0.002 x 50 x 80.3212851 = 8.0321285; left 16.0642570 - 8.0321285 = 8.0321285
    assert res.orders["fees"].tolist() == pytest.approx([0.0, 8.0321285])
    assert res.orders["reason"].tolist() == ["signal", "liquidation"]
    assert res.trades["pnl"].iloc[0] == pytest.approx(-983.9357430 - 8.0321285)
    assert res.equity.iloc[-1] == pytest.approx(8.0321285)


def test_liquidation_fee_cannot_take_more_than_the_margin():
    res = run(CRASH, signals(CRASH, long_entries=[0]), leverage=5, liquidation_fee_rate=0.01)
    # fee due 0.01 x 4016.06 = 40.16 > 16.064 left: only the 16.064 is taken -> pnl = -1000
    assert res.orders["fees"].iloc[1] == pytest.approx(16.0642570)
    assert res.trades["pnl"].iloc[0] == pytest.approx(-1000.0)
    assert res.equity.iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_gap_down_open_beyond_the_liquidation_price_fills_at_the_open():
    bars = candles([(100, 101, 99, 100), (100, 102, 95, 97), (75, 78, 70, 76), (76, 77, 75, 76)])
    res = run(bars, signals(bars, long_entries=[0]), leverage=5)
    (trade,) = res.trades.itertuples()
    assert (trade.exit_time, trade.exit_price, trade.exit_reason) == (bars.index[2], 75.0,
                                                                      "liquidation")
    # at the open 75: margin 1000 + 50 x (75 - 100) = -250 -> the 250 beyond the margin is not
    # charged: the isolated position loses exactly its margin, 1000
    assert trade.pnl == pytest.approx(-1000.0)
    assert res.equity.iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_short_squeezed_by_a_wick():
    bars = candles([(100, 100, 100, 100), (100, 103, 99, 101), (101, 112, 100, 102),
                    (102, 103, 101, 102)])
    res = run(bars, signals(bars, short_entries=[0]), leverage=10)
    (trade,) = res.trades.itertuples()
    # 10x short: q = -100, margin 1000, tier 1:
    # LP = (-100 x 100 - 1000 - 0) / (-100 - 100 x 0.004) = 11000 / 100.4 = 109.5617530
    assert (trade.direction, trade.exit_reason) == ("short", "liquidation")
    assert trade.exit_time == bars.index[2] and trade.exit_price == pytest.approx(109.5617530)
    # left = 1000 - 100 x 9.5617530 = 43.8247012 (= 100 x 109.5617530 x 0.004); the close
    # back at 102 does not help: the position is gone
    assert res.equity.iloc[2] == pytest.approx(43.8247012)


def test_a_large_notional_falls_in_a_higher_tier_and_is_liquidated_earlier():
    bars = candles([(100, 100, 100, 100), (100, 101, 99, 100), (100, 100, 90.5, 95)])
    sig = signals(bars, long_entries=[0])
    small = run(bars, sig, leverage=10)
    large = run(bars, sig, leverage=10, init_cash=1_000_000.0)
    # small: notional 10,000 -> tier 1: LP = (100 x 100 - 1000) / (100 x 0.996) = 90.3614458
    # large: notional 10,000,000 -> tier 4 (rate 0.01, amount 12,000):
    # LP = (100,000 x 100 - 1,000,000 - 12,000) / (100,000 x 0.99) = 90.7878788 > low 90.5
    assert small.trades["exit_reason"].tolist() == ["end"]
    assert large.trades["exit_reason"].tolist() == ["liquidation"]
    assert large.trades["exit_price"].iloc[0] == pytest.approx(90.7878788)


def test_notional_is_cut_to_the_cap_of_the_leverage():
    bars = candles([(100, 100, 100, 100), (100, 100, 99.5, 100)])
    res = run(bars, signals(bars, long_entries=[0]), leverage=100, init_cash=100_000.0)
    # 100x is allowed up to tier 2 (cap 800,000): size 8000, margin 8000 (92,000 stays free);
    # LP = (800,000 - 8,000 - 300) / (8000 x 0.995) = 99.4597990 > low 99.5? no: not liquidated
    assert res.trades["size"].iloc[0] == pytest.approx(8000.0)
    assert margin.liquidation_price(100.0, 8000.0, 8000.0, 0.005, 300.0) == pytest.approx(
        99.4597990)
    assert res.trades["exit_reason"].iloc[0] == "end"


def test_a_tighter_stop_fires_before_the_liquidation_a_looser_one_after():
    bars = candles([(100, 101, 99, 100), (100, 102, 95, 97), (97, 98, 70, 85)])
    sig = signals(bars, long_entries=[0])
    tight = run(bars, sig, leverage=5, sl_stop=0.1)   # stop 90 above LP 80.32: price meets it first
    loose = run(bars, sig, leverage=5, sl_stop=0.25)  # stop 75 below LP: liquidated first
    assert tight.trades[["exit_reason", "exit_price"]].values.tolist() == [["stop", 90.0]]
    assert loose.trades["exit_reason"].tolist() == ["liquidation"]
    assert loose.trades["exit_price"].iloc[0] == pytest.approx(LP_5X)
    gap = candles([(100, 101, 99, 100), (100, 102, 95, 97), (85, 86, 70, 80)])
    # the open 85 already passed the stop 90 (not the LP): stop at the open
    assert run(gap, signals(gap, long_entries=[0]), leverage=5, sl_stop=0.1).trades[
        ["exit_reason", "exit_price"]].values.tolist() == [["stop", 85.0]]


FUND_BARS = candles([(100, 100, 100, 100), (100, 101, 99, 100), (110, 111, 109, 110),
                     (90, 91, 89, 90), (100, 101, 99, 100), (100, 100, 100, 100)])


def test_three_funding_settlements_of_mixed_sign():
    times = FUND_BARS.index
    funding = pd.Series([0.01, 0.001, -0.0005, 0.002],
                        index=[times[0], times[2], times[3], times[4]])
    res = run(FUND_BARS, signals(FUND_BARS, long_entries=[0], long_exits=[4]), funding,
              leverage=2, funding=True)
    (trade,) = res.trades.itertuples()
    # 2x long from bar 1's open 100: q = 20. Settlement at bar 0: flat, nothing.
    # bar 2: 20 x 110 x 0.001 = 2.2 paid; bar 3: 20 x 90 x -0.0005 = -0.9 (received);
    # bar 4: 20 x 100 x 0.002 = 4.0 paid -> 5.3 in total; exit at bar 5's open 100
    assert trade.funding_paid == pytest.approx(5.3)
    assert trade.pnl == pytest.approx(-5.3)  # 20 x (100 - 100) - 0 fees - 5.3
    # equity: bar 2 = 1000 - 2.2 + 20 x 10 = 1197.8; bar 3 = 1000 - 1.3 - 200 = 798.7
    assert res.equity.iloc[2:4].tolist() == pytest.approx([1197.8, 798.7])
    assert res.equity.iloc[-1] == pytest.approx(994.7)


def test_a_short_receives_a_positive_rate():
    funding = pd.Series([0.001], index=[FUND_BARS.index[2]])
    res = run(FUND_BARS, signals(FUND_BARS, short_entries=[0], short_exits=[2]), funding,
              leverage=3, funding=True)
    # 3x short from 100: q = -30; bar 2: -30 x 110 x 0.001 = -3.3 -> received 3.3
    assert res.trades["funding_paid"].iloc[0] == pytest.approx(-3.3)
    # exit at bar 3's open 90: pnl = -30 x (90 - 100) + 3.3 = 303.3
    assert res.trades["pnl"].iloc[0] == pytest.approx(303.3)


def test_settlements_inside_a_daily_bar_apply_after_the_open_fill():
    days = candles([(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 99, 100)], freq="1D")
    t1 = days.index[1]
    funding = pd.Series([0.001, 0.001, 0.001],
                        index=[t1, t1 + pd.Timedelta("8h"), t1 + pd.Timedelta("16h")])
    res = run(days, signals(days, long_entries=[0]), funding, freq="1D", leverage=1,
              funding=True)
    # entry at day 1's 00:00 open: the 00:00 settlement finds no carried position; 08:00 and
    # 16:00 fall inside the bar after the fill: 2 x (10 units x open 100 x 0.001) = 2.0
    assert res.trades["funding_paid"].iloc[0] == pytest.approx(2.0)


def test_funding_moves_the_liquidation_price():
    bars = candles([(100, 100, 100, 100), (100, 100, 99, 100), (100, 100, 80.5, 90)])
    sig = signals(bars, long_entries=[0])
    # 5x: LP 80.3213 without funding. Paying 50 x 100 x 0.01 = 50 at bar 2's open leaves margin
    # 950: LP = (5000 - 950) / 49.8 = 81.3253012 > low 80.5 -> liquidated
    funding = pd.Series([0.01], index=[bars.index[2]])
    assert run(bars, sig, leverage=5).trades["exit_reason"].tolist() == ["end"]
    paid = run(bars, sig, funding, leverage=5, funding=True)
    assert paid.trades["exit_reason"].tolist() == ["liquidation"]
    assert paid.trades["exit_price"].iloc[0] == pytest.approx(81.3253012)


def test_funding_on_without_a_series_is_refused_and_tiers_are_checked():
    sig = signals(CRASH, long_entries=[0])
    with pytest.raises(DataError, match=r"execution\.funding: expected a funding series"):
        run(CRASH, sig, None, leverage=5, funding=True)
    with pytest.raises(ConfigError, match="tier 2: expected notional_cap increasing"):
        run(CRASH, sig, leverage=5, maintenance_tiers=[[1000, 0.01, 0, 50], [500, 0.02, 10, 20]])
    with pytest.raises(ConfigError, match="leverage: expected at most 50"):
        run(CRASH, sig, leverage=60, maintenance_tiers=[[1e9, 0.01, 0, 50]])
    # an inline one-tier table (rate 0.05): LP = (5000 - 1000) / (50 x 0.95) = 84.2105263
    res = run(CRASH, sig, leverage=5, maintenance_tiers=[[1e9, 0.05, 0, 50]])
    assert res.trades["exit_price"].iloc[0] == pytest.approx(84.2105263)


def test_max_leverage_comes_from_the_tier_table():
    sig = signals(CRASH, long_entries=[0])
    # the bundled BTCUSDT table: tier 1 allows 150x (since August 2025), no more
    assert run(CRASH, sig, leverage=150).trades["exit_reason"].tolist() == ["liquidation"]
    with pytest.raises(ConfigError, match=r"execution\.leverage: expected at most 150 \(the "
                       r"highest max_leverage of the maintenance tiers in .*binance_btcusdt_"
                       r"tiers\.toml\), found 151"):
        run(CRASH, sig, leverage=151)
    # a user's table overrides it, both ways
    res = run(CRASH, sig, leverage=200, maintenance_tiers=[[1e9, 0.001, 0, 200]])
    assert res.orders["size"].iloc[0] == pytest.approx(2000.0)  # 1000 x 200 / 100
    with pytest.raises(ConfigError, match=r"at most 20 \(.* in the inline "
                       r"execution\.maintenance_tiers\), found 25"):
        run(CRASH, sig, leverage=25, maintenance_tiers=[[1e9, 0.01, 0, 20]])


def test_simulate_many_sweeps_leverage_in_one_call():
    sig = signals(CRASH, long_entries=[0])
    execs = [ExecutionConfig(init_cash=1000.0, fee_rate=0.0, instrument="perp", funding=False,
                             leverage=lev) for lev in (1, 2, 5)]
    out = simulate_many(CRASH, [sig] * 3, execs)
    # 1x: 10 units marked at 85 = 850; 2x: 20 units, LP = (2000-1000)/(20 x 0.996) = 50.2 not
    # hit: 1000 + 20 x (85 - 100) = 700; 5x: liquidated -> 16.064257
    assert out["final_equity"].tolist() == pytest.approx([850.0, 700.0, 16.0642570])
    assert out["liquidations"].tolist() == [0, 0, 1]


@st.composite
def perp_market(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(3, 50))
    rng = np.random.default_rng(seed)
    bars = random_candles(rng, n, vol=0.06, gap=0.04, wick=0.03)
    flags = rng.random((4, n)) < 0.2
    sig = Signals(*(pd.Series(f, index=bars.index) for f in flags))
    funding = pd.Series(rng.normal(0, 0.01, n), index=bars.index)
    return bars, sig, funding, draw(st.floats(1, 150)), draw(st.sampled_from([0.0, 0.001])), \
        draw(st.sampled_from([0.0, 0.01]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(perp_market())
def test_an_isolated_position_never_loses_more_than_its_margin(case):
    bars, sig, funding, leverage, fee, liq_fee = case
    res = run(bars, sig, funding, leverage=leverage, fee_rate=fee, liquidation_fee_rate=liq_fee,
              funding=True)
    trades = res.trades
    entry_fees = trades["size"] * trades["entry_price"] * fee
    margin_in = trades["size"] * trades["entry_price"] / leverage
    # the worst a trade can do is lose its margin and its entry fee (funding comes out of the
    # margin); the account never goes below zero, up to float cancellation in a wiped-out
    # account (cash minus leveraged notionals: -1.9e-9 from 1,000 at 28x was found)
    assert (trades["pnl"] >= -(margin_in + entry_fees) * (1 + 1e-9) - 1e-9).all()
    assert (res.equity >= -1e-9 * res.init_cash).all()


def test_perp_metrics_of_a_liquidated_run():
    res = run(CRASH, signals(CRASH, long_entries=[0]), leverage=5, liquidation_fee_rate=0.002)
    # one liquidation losing 991.967871 (see the fee test); entry notional 5000 over the equity
    # 1000 before it -> 5x
    assert perp_metrics(res) == pytest.approx({"funding_paid": 0.0, "liquidations": 1,
                                               "liquidation_losses": 991.9678715,
                                               "max_leverage_used": 5.0})
