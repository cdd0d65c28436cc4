"""Time exits owned by the engine (``Signals.max_bars_held``): candle tables for the cases the
old signal-shifting helper got wrong, and a property test over random signals.
init_cash 1000, fees and slippage 0 unless stated; ``ramp`` bars open at 100 + i."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.config.execution import ExecutionConfig
from backtest.engine.simulate import ENGINE_KERNEL, simulate
from backtest.errors import StrategyError
from tests.scenarios import candles, ramp, signals
from tests.test_engine_properties import market


def run(bars, sig, **kwargs):
    kwargs = {"init_cash": 1000.0, "fee_rate": 0.0, **kwargs}
    return simulate(bars, sig, ExecutionConfig(**kwargs), "1h")


def spans(res) -> list[tuple[int, int, str]]:
    """(entry bar, exit bar, exit reason) of each trade."""
    index = res.equity.index
    return [(index.get_loc(t.entry_time), index.get_loc(t.exit_time), t.exit_reason)
            for t in res.trades.itertuples()]


def test_time_exit_counts_from_the_fill_not_the_signal():
    bars = ramp(6)
    for engine in ("rust", "numba"):
        res = run(bars, signals(bars, long_entries=[0], max_bars_held=3), engine=engine)
        assert res.engine == ENGINE_KERNEL  # vectorbt has no time exit: the kernel runs it
        # signal at 0's close, fill at 1's open (101), three bars held: out at 4's open (104)
        assert spans(res) == [(1, 4, "time")]
        assert res.trades["exit_price"].tolist() == [104.0]
        assert res.equity.iloc[-1] == pytest.approx(1000 / 101 * 104)


def test_a_repeated_entry_signal_while_in_a_position_does_not_cut_the_next_one_short():
    bars = ramp(10)
    # entries at 0, 2, 4: fill 1 -> out at 4; the entry at 2 is ignored (in a position); the
    # entry at 4 fills at 5 and is held its full 3 bars. (Shifted entry signals put an exit at
    # 5, from the ignored entry, and closed the second position after one bar.)
    res = run(bars, signals(bars, long_entries=[0, 2, 4], max_bars_held=3))
    assert spans(res) == [(1, 4, "time"), (5, 8, "time")]


def test_a_leftover_exit_does_not_cancel_a_new_entry():
    bars = ramp(8)
    # entries at 0, 1, 3 with a 2-bar hold: fill 1 -> out at 3; the entry at 3 opens at 4.
    # (Shifted signals put an exit at 3, from the ignored entry at 1, which cancelled it.)
    res = run(bars, signals(bars, long_entries=[0, 1, 3], max_bars_held=2))
    assert spans(res) == [(1, 3, "time"), (4, 6, "time")]


def test_an_entry_signal_at_the_time_exit_fill_reopens_at_the_same_price():
    bars = ramp(7)
    res = run(bars, signals(bars, long_entries=[0, 3], max_bars_held=3))
    assert spans(res) == [(1, 4, "time"), (4, 6, "end")]  # still open at the last bar
    assert res.orders["side"].tolist() == ["buy", "sell", "buy"]
    assert res.orders["price"].tolist() == [101.0, 104.0, 104.0]


def test_close_fills_hold_from_the_entry_close():
    bars = ramp(6)
    res = run(bars, signals(bars, long_entries=[0], max_bars_held=2), fill="close")
    assert spans(res) == [(0, 2, "time")]
    assert res.trades["exit_price"].tolist() == [102.5]


def test_a_stop_before_the_time_exit_wins_and_a_signal_exit_is_earlier():
    bars = candles([
        (100, 101, 99, 100),  # 0 signal
        (100, 101, 99, 100),  # 1 fill at 100, stop 95
        (100, 101, 94, 96),   # 2 stop at 95
        (96, 97, 95, 96),     # 3
        (96, 97, 95, 96),     # 4 (time exit would be here)
    ])
    res = run(bars, signals(bars, long_entries=[0], stop_price={0: 95.0}, max_bars_held=3))
    assert spans(res) == [(1, 2, "stop")]
    res = run(bars, signals(bars, long_entries=[0], long_exits=[1], max_bars_held=3))
    assert spans(res) == [(1, 2, "signal")]


def test_tranches_do_not_restart_the_clock():
    bars = ramp(8)
    sig = signals(bars, long_entries=[0, 1], entry_fraction={0: 0.5, 1: 0.5}, max_bars_held=3)
    res = run(bars, sig)
    assert spans(res) == [(1, 4, "time")]
    assert res.orders["side"].tolist() == ["buy", "buy", "sell"]
    assert res.trades["size"].iloc[0] == pytest.approx(500 / 101 + 500 / 102)


def test_a_perp_position_is_time_exited_too():
    bars = ramp(6)
    res = run(bars, signals(bars, short_entries=[0], max_bars_held=2), instrument="perp",
              leverage=2, funding=False)
    assert spans(res) == [(1, 3, "time")]


def test_max_bars_held_must_be_a_positive_integer():
    bars = ramp(3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(StrategyError, match="signals: max_bars_held: expected an integer"):
            signals(bars, long_entries=[0], max_bars_held=bad)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(market(), st.integers(1, 8))
def test_no_exit_closes_a_position_opened_after_its_signal(case, hold):
    bars, sig, execution = case
    sig = dataclasses.replace(sig, max_bars_held=hold)
    res = simulate(bars, sig, execution, "1h")
    n = len(bars)
    next_open = execution.fill == "next_open"
    le, lx, se, sx = sig.bool_arrays()
    for entry, exit_, reason in spans(res):
        if reason == "time":  # exactly the hold, from the fill
            assert exit_ - entry == hold
        elif reason == "end":
            assert n - 1 - entry < hold
        else:
            assert exit_ - entry <= hold
        if reason == "signal":
            # the closing signal was decided at or after the fill: never before the entry
            decided = exit_ - 1 if next_open else exit_
            assert decided >= entry + (0 if next_open else 1)
            assert lx[decided] or sx[decided] or le[decided] or se[decided]
