"""Perp engine on real data: the 2026-02-05 crash replay, spot-vs-perp differential at 1x, and
funding totals against an independent pandas ledger on the real 2025-2026 funding_8h series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.config.data import DataConfig
from backtest.config.execution import ExecutionConfig
from backtest.data.bars import load_bars
from backtest.data.external import load_external
from backtest.engine.simulate import simulate, simulate_many
from backtest.types import Signals

ENTRY = pd.Timestamp("2026-02-04 00:00", tz="UTC")


@pytest.fixture(scope="module")
def hourly() -> tuple[pd.DataFrame, str]:
    bars, info = load_bars(DataConfig(dataset="btcusdt_1h"))
    return bars.loc["2025-01-01":"2026-03-31"], info.freq


@pytest.fixture(scope="module")
def funding() -> pd.Series:
    return load_external("funding_8h")["funding_rate"]


def one_entry(bars: pd.DataFrame, at: pd.Timestamp) -> Signals:
    """A long entry signal at the close of the bar before ``at`` (it fills at ``at``'s open)."""
    flags = np.zeros(len(bars), dtype=bool)
    flags[bars.index.get_loc(at) - 1] = True
    off = pd.Series(np.zeros(len(bars), dtype=bool), index=bars.index)
    return Signals(pd.Series(flags, index=bars.index), off)


def test_10x_long_from_feb_4_is_liquidated_in_the_feb_5_crash(hourly, funding):
    bars, freq = hourly
    perp = ExecutionConfig(instrument="perp", leverage=10, fee_rate=0.0, funding=False)
    (trade,) = simulate(bars, one_entry(bars, ENTRY), perp, freq).trades.itertuples()
    # entry at the 2026-02-04 00:00 open 75,770.21; 100,000 x 10 = 1,000,000 notional -> tier 3
    # (800k-3M: rate 0.0065, amount 1,500): LP = (1,000,000 - 100,000 - 1,500) /
    # (13.1977986 units x 0.9935) = 75,770.21 x 0.8985 / 0.9935 = 68,524.9458
    entry = bars.loc[ENTRY, "open"]
    lp = entry * (1_000_000 - 100_000 - 1_500) / 1_000_000 / (1 - 0.0065)
    after = bars.loc[ENTRY:]
    first = after.index[(after["low"] <= lp).to_numpy().argmax()]
    print(f"10x long from {entry}: liquidated in the bar {trade.exit_time} at "
          f"{trade.exit_price:.4f} (first low <= LP: {first}, low {bars.loc[first, 'low']})")
    assert entry == 75770.21 and lp == pytest.approx(68524.9458, abs=1e-4)
    assert trade.exit_time == first == pd.Timestamp("2026-02-05 15:00", tz="UTC")
    assert (trade.exit_reason, trade.exit_price) == ("liquidation", pytest.approx(lp))
    assert bars.loc[first, "low"] == 66720.15  # the 15:00 bar fell from 69,404.75 to 66,720.15
    # with taker fees and the real funding (positive over these 40 hours) the margin is smaller
    # and LP a little higher, but it is still the 15:00 bar
    real = ExecutionConfig(instrument="perp", leverage=10, taker_fee_rate=0.0005, fee_rate=0.0)
    (paid,) = simulate(bars, one_entry(bars, ENTRY), real, freq, funding).trades.itertuples()
    assert paid.exit_time == first and paid.exit_reason == "liquidation"
    assert paid.exit_price > trade.exit_price and paid.funding_paid > 0


def random_signals(bars: pd.DataFrame, seed: int, p: float = 0.01) -> Signals:
    flags = np.random.default_rng(seed).random((4, len(bars))) < p
    return Signals(*(pd.Series(f, index=bars.index) for f in flags))


@pytest.mark.parametrize("seed", range(4))
def test_perp_at_1x_without_funding_equals_spot_exactly(hourly, seed):
    bars, freq = hourly
    sig = random_signals(bars, seed)
    stops = {"sl_stop": 0.05} if seed % 2 else {"tsl_stop": 0.04, "tp_stop": 0.1}
    spot = ExecutionConfig(fee_rate=0.001, slippage_rate=0.0005, **stops)
    perp = spot.model_copy(update={"instrument": "perp", "funding": False})
    a, b = simulate(bars, sig, spot, freq), simulate(bars, sig, perp, freq)
    assert len(a.trades) > 50
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_series_equal(a.equity, b.equity, check_exact=True)
    (spot_many,), (perp_many,) = (simulate_many(bars, [sig], [ex])["final_equity"]
                                  for ex in (spot, perp))
    assert spot_many == perp_many == a.equity.iloc[-1]


def test_funding_totals_match_an_independent_pandas_ledger(hourly, funding):
    bars, freq = hourly
    bars = bars.loc["2025-01-01":"2026-01-31"]
    sig = random_signals(bars, 7, p=0.004)
    perp = ExecutionConfig(instrument="perp", leverage=3, fee_rate=0.0004)
    res = simulate(bars, sig, perp, freq, funding)
    trades = res.trades
    assert len(trades) > 20 and (trades["exit_reason"] != "liquidation").all()
    # independent ledger: a position opened at the open of bar t_e and closed in bar t_x is
    # carried into every bar t_e < T <= t_x (an open trade: up to the last bar) and pays
    # signed size x open(T) x rate(T) at each settlement T at a bar open (hourly bars)
    rates = funding.loc[bars.index[0]:bars.index[-1]]
    opens = bars["open"].reindex(rates.index)
    expected = []
    for t in trades.itertuples():
        held = rates[(rates.index > t.entry_time) & (rates.index <= t.exit_time)]
        sign = 1.0 if t.direction == "long" else -1.0
        expected.append(float((sign * t.size * opens.loc[held.index] * held).sum()))
    assert trades["funding_paid"].to_numpy() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    total = float(trades["funding_paid"].sum())
    print(f"funding over {len(trades)} trades: {total:.2f} USDT")
    assert abs(total) > 1.0
    # the equity moved by exactly the trades' pnl (funding included; an open trade is marked at
    # the last close)
    assert res.equity.iloc[-1] == pytest.approx(perp.init_cash + trades["pnl"].sum())
