"""Sizing kinds of ``[execution] size``: a hand-computed ledger per kind (spot and perp), the
caps (free cash, leverage, tiers), and a differential test against an independent bar-by-bar
implementation on real hourly bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from backtest.config.execution import ExecutionConfig
from backtest.engine.simulate import simulate
from backtest.types import Signals
from scripts.bundle_datasets import shared_data_dir
from tests.scenarios import candles, signals

HOURLY = shared_data_dir() / "btcusdt_1h.csv"

FLAT = candles([
    (100, 100, 100, 100),  # 0 entry signal
    (100, 100, 100, 100),  # 1 fill at 100
    (120, 120, 120, 120),  # 2 exit signal
    (120, 120, 120, 120),  # 3 sold at 120; entry signal again
    (110, 110, 110, 110),  # 4 fill at 110
    (110, 110, 110, 110),  # 5
])


def run(bars, sig, size, freq="1h", **kwargs):
    kwargs = {"init_cash": 1000.0, "fee_rate": 0.0, **kwargs}
    return simulate(bars, sig, ExecutionConfig(size=size, **kwargs), freq)


def test_fraction_commits_a_share_of_the_current_equity():
    res = run(FLAT, signals(FLAT, long_entries=[0, 3], long_exits=[2]),
              {"kind": "fraction", "fraction": 0.5})
    # 500 at 100 -> 5 units; sold at 120 -> cash 500 + 600 = 1100; then 550 at 110 -> 5 units
    assert res.orders["size"].tolist() == pytest.approx([5.0, 5.0, 5.0])
    assert res.equity.tolist() == pytest.approx([1000, 1000, 1100, 1100, 1100, 1100])


def test_fraction_pays_the_fee_out_of_the_share():
    res = run(FLAT, signals(FLAT, long_entries=[0]), {"kind": "fraction", "fraction": 0.5},
              fee_rate=0.001)
    # spend 500 incl. fee: 500 / (100 x 1.001) units, fee 0.4995005
    assert res.orders["size"].iloc[0] == pytest.approx(500 / 100.1)
    assert res.orders["fees"].iloc[0] == pytest.approx(500 / 100.1 * 0.1)
    assert res.equity.iloc[1] == pytest.approx(1000 - 500 / 100.1 * 0.1)


def test_notional_buys_a_fixed_quote_amount():
    res = run(FLAT, signals(FLAT, long_entries=[0, 3], long_exits=[2]),
              {"kind": "notional", "notional": 300.0}, fee_rate=0.001)
    # 300 quote: 3 units at 100 (fee 0.3), then 300 / 110 units at 110
    assert res.orders["size"].tolist() == pytest.approx([3.0, 3.0, 300 / 110])
    assert res.orders["fees"].tolist() == pytest.approx([0.3, 0.36, 0.3])
    # more than the cash allows: all-in instead
    res = run(FLAT, signals(FLAT, long_entries=[0]), {"kind": "notional", "notional": 5000.0})
    assert res.orders["size"].tolist() == pytest.approx([10.0])


def test_risk_loses_the_risk_share_at_the_stop():
    bars = candles([
        (100, 100, 100, 100),  # 0 entry signal, stop level 95
        (100, 101, 99, 100),   # 1 fill at 100
        (100, 100, 94, 96),    # 2 stop at 95
    ])
    sig = signals(bars, long_entries=[0], stop_price={0: 95.0})
    res = run(bars, sig, {"kind": "risk", "risk": 0.02})
    # 2 % of 1000 over a 5-point stop distance: 4 units (400 quote); the stop loses 20
    assert res.orders["size"].tolist() == pytest.approx([4.0, 4.0])
    assert res.equity.iloc[-1] == pytest.approx(980.0)
    # a fractional stop 10 % below the fill: 20 / 10 = 2 units
    res = run(bars, signals(bars, long_entries=[0]), {"kind": "risk", "risk": 0.02},
              sl_stop=0.1)
    assert res.orders["size"].iloc[0] == pytest.approx(2.0)
    # a tight stop asks for more than the cash: all-in (10 units)
    sig = signals(bars, long_entries=[0], stop_price={0: 99.9})
    assert run(bars, sig, {"kind": "risk", "risk": 0.2}).orders["size"].iloc[0] == 10.0
    # no stop, no size: the entry is not taken
    assert run(bars, signals(bars, long_entries=[0]), {"kind": "risk", "risk": 0.02}).orders.empty


def test_vol_target_scales_by_the_realized_volatility_known_at_the_signal():
    bars = candles([
        (100, 100, 100, 100),
        (100, 110, 100, 110),
        (110, 110, 99, 99),
        (99, 109, 99, 108.9),  # 3 entry signal: three log returns known
        (108.9, 109, 108, 108.9),  # 4 fill at 108.9
    ])
    sig = signals(bars, long_entries=[3])
    res = run(bars, sig, {"kind": "vol_target", "target": 0.5, "lookback": 3}, freq="1D")
    logs = [math.log(1.1), math.log(0.9), math.log(1.1)]
    mean = sum(logs) / 3
    sigma = math.sqrt(sum((x - mean) ** 2 for x in logs) / 2) * math.sqrt(365)
    # notional = 0.5 / sigma x 1000 (sigma is about 2.2 a year: about 227 quote)
    assert res.orders["size"].iloc[0] == pytest.approx(0.5 / sigma * 1000 / 108.9)
    # a signal before two returns exist is not taken
    early = run(bars, signals(bars, long_entries=[0]),
                {"kind": "vol_target", "target": 0.5, "lookback": 3}, freq="1D")
    assert early.orders.empty


def test_perp_sizes_are_margin_times_leverage():
    sig = signals(FLAT, long_entries=[0])
    perp = {"instrument": "perp", "leverage": 5.0, "funding": False}
    # fraction 0.5: 500 of margin x 5 = 2500 notional = 25 units at 100
    res = run(FLAT, sig, {"kind": "fraction", "fraction": 0.5}, **perp)
    assert res.orders["size"].iloc[0] == pytest.approx(25.0)
    # notional 3000: 30 units on 600 of margin; 10000 is more than 5 x 1000: capped at 50 units
    res = run(FLAT, sig, {"kind": "notional", "notional": 3000.0}, **perp)
    assert res.orders["size"].iloc[0] == pytest.approx(30.0)
    res = run(FLAT, sig, {"kind": "notional", "notional": 10_000.0}, **perp)
    assert res.orders["size"].iloc[0] == pytest.approx(50.0)
    # the tier table's notional cap still binds: a 2000 cap at 5x
    res = run(FLAT, sig, {"kind": "notional", "notional": 3000.0},
              maintenance_tiers=[[2000.0, 0.01, 0.0, 10.0]], **perp)
    assert res.orders["size"].iloc[0] == pytest.approx(20.0)


@pytest.mark.parametrize(("size", "message"), [
    ({"kind": "fraction", "fraction": 1.5}, "less than or equal to 1"),
    ({"kind": "risk"}, "Field required"),
    ({"kind": "kelly"}, "kelly"),
    ({"kind": "notional", "notional": 10.0, "fraction": 0.5}, "Extra inputs"),
])
def test_bad_sizes_are_refused(size, message):
    with pytest.raises(ValidationError, match=message):
        ExecutionConfig(size=size)


def reference(bars: pd.DataFrame, entries: np.ndarray, exits: np.ndarray, kind: str,
              value: float, fee: float, sl: float, hold: int) -> np.ndarray:
    """Equity at each close of a long-only next-open strategy, written from the documented
    rules alone: sized entries, a fractional stop checked from the fill bar, a time exit."""
    o, lo, c = (bars[k].to_numpy() for k in ("open", "low", "close"))
    cash, pos, entry_bar, stop = 1000.0, 0.0, -1, math.nan
    out = []
    for i in range(len(c)):
        if i >= 1:
            if pos and i - entry_bar >= hold:
                cash, pos = cash + pos * o[i] * (1 - fee), 0.0
            enter, leave = bool(entries[i - 1]), bool(exits[i - 1])
            if enter and leave:
                enter = leave = False
            if pos and leave:
                cash, pos = cash + pos * o[i] * (1 - fee), 0.0
            elif not pos and enter:
                px = o[i]
                stop = px * (1 - sl)
                want = {"all_in": cash, "fraction": value * cash,
                        "notional": value * (1 + fee),
                        "risk": value * cash / (px - stop) * px * (1 + fee)}[kind]
                spend = min(want, cash)
                pos = spend / (px * (1 + fee))
                cash -= spend
                entry_bar = i
        if pos and lo[i] <= stop:
            cash, pos = cash + pos * min(o[i], stop) * (1 - fee), 0.0
        out.append(cash + pos * c[i])
    return np.array(out)


@pytest.mark.parametrize(("kind", "value"), [("all_in", 0.0), ("fraction", 0.3),
                                             ("notional", 300.0), ("risk", 0.01)])
@pytest.mark.parametrize("seed", [1, 2])
def test_sizing_agrees_with_an_independent_bar_by_bar_ledger(kind: str, value: float,
                                                             seed: int) -> None:
    bars = pd.read_csv(HOURLY, index_col="timestamp", nrows=1500)
    bars.index = pd.to_datetime(bars.index, utc=True)
    bars = bars.astype("float64")
    rng = np.random.default_rng(seed)
    entries, exits = rng.random((2, len(bars))) < 0.04
    size = {"kind": kind} | ({kind: value} if kind != "all_in" else {})
    sig = Signals(pd.Series(entries, index=bars.index), pd.Series(exits, index=bars.index),
                  max_bars_held=24)
    ex = ExecutionConfig(init_cash=1000.0, fee_rate=0.001, sl_stop=0.02, direction="long",
                         size=size)
    got = simulate(bars, sig, ex, "1h").equity.to_numpy()
    want = reference(bars, entries, exits, kind, value, 0.001, 0.02, 24)
    np.testing.assert_allclose(got, want, rtol=1e-9)
