"""Level events and boolean helpers: small hand-written candle tables (one comment per row), a
property test for causality and hysteresis, and the 74,400 facts of DOMAIN.md on real bars."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.errors import StrategyError
from backtest.features import levels as S
from scripts.bundle_datasets import shared_data_dir

DATA = shared_data_dir()


def candles(rows: list[tuple[float, float, float, float, float]]) -> pd.DataFrame:
    """Daily bars from (open, high, low, close, volume) rows, starting 2026-01-01 UTC."""
    index = pd.date_range("2026-01-01", periods=len(rows), freq="D", tz="UTC", name="timestamp")
    return pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"],
                        dtype="float64")


def fired(events: pd.Series) -> list[int]:
    assert events.dtype == bool
    return [int(i) for i in np.flatnonzero(events.to_numpy())]


@cache
def load(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, index_col="timestamp", parse_dates=True)


# --- candle tables, level 100 unless said ---------------------------------------------------------

def test_close_versus_wick_confirmation() -> None:
    bars = candles([
        (105, 106, 104, 105, 1),  # 0: above: arms
        (105, 105, 99, 101, 1),   # 1: wick to 99, close 101: wick fires, close does not
        (101, 102, 98, 99, 1),    # 2: close 99: close fires; wick already fired and never re-armed
    ])
    assert fired(S.cross_below(bars, 100, confirm="close")) == [2]
    assert fired(S.cross_below(bars, 100, confirm="wick")) == [1]


def test_hold_counts_consecutive_closes_and_resets() -> None:
    bars = candles([
        (105, 105, 105, 105, 1),  # 0: arms
        (99, 99, 99, 99, 1),      # 1: below, count 1
        (98, 98, 98, 98, 1),      # 2: below, count 2
        (101, 101, 101, 101, 1),  # 3: back above: count reset, still armed
        (99, 99, 99, 99, 1),      # 4: count 1
        (98, 98, 98, 98, 1),      # 5: count 2
        (97, 97, 97, 97, 1),      # 6: count 3 -> hold=3 fires
        (96, 96, 96, 96, 1),      # 7: still below, disarmed: nothing
    ])
    assert fired(S.cross_below(bars, 100, hold=3)) == [6]
    assert fired(S.cross_below(bars, 100, hold=1)) == [1, 4]  # bar 3 re-armed it
    assert fired(S.cross_below(bars, 100, hold=2)) == [2, 5]


def test_hysteresis_rearms_only_beyond_rearm_pct() -> None:
    bars = candles([
        (105, 105, 105, 105, 1),      # 0: 105 >= 100*1.02: armed
        (99, 99, 99, 99, 1),          # 1: fires
        (101, 101, 101, 101, 1),      # 2: above 100 but below 102: not re-armed with 2%
        (99, 99, 99, 99, 1),          # 3: no event with 2%; an event with 0%
        (102.5, 102.5, 102.5, 102.5, 1),  # 4: 102.5 >= 102: re-armed
        (99, 99, 99, 99, 1),          # 5: fires again
    ])
    assert fired(S.cross_below(bars, 100, rearm_pct=0.02)) == [1, 5]
    assert fired(S.cross_below(bars, 100)) == [1, 3, 5]


def test_volume_confirmation_uses_the_previous_bars() -> None:
    bars = candles([
        (105, 105, 105, 105, 10),  # 0
        (105, 105, 105, 105, 10),  # 1
        (105, 105, 105, 105, 10),  # 2: armed
        (99, 99, 99, 99, 15),      # 3: below, but 15 < 2 x mean(10,10,10) = 20: no event
        (98, 98, 98, 98, 40),      # 4: 40 >= 2 x mean(10,10,15) = 23.3: fires (still armed)
    ])
    assert fired(S.cross_below(bars, 100, volume_k=2, volume_window=3)) == [4]
    assert fired(S.cross_below(bars, 100)) == [3]
    # window 5 has no full baseline anywhere: NaN mean never confirms
    assert fired(S.cross_below(bars, 100, volume_k=2, volume_window=5)) == []


def test_gap_through_the_level_fires_on_the_gap_bar() -> None:
    bars = candles([
        (104, 106, 103, 105, 1),  # 0: above: arms
        (95, 96, 94, 95, 1),      # 1: opens at 95, never trades at 100: the event bar
        (95, 97, 93, 96, 1),      # 2: the engine fills at this bar's open (95), not at 100
    ])
    assert fired(S.cross_below(bars, 100, confirm="close")) == [1]
    assert fired(S.cross_below(bars, 100, confirm="wick")) == [1]
    assert bars["high"].iloc[1] < 100  # the level itself was never a tradeable price


def test_starting_beyond_the_level_does_not_fire() -> None:
    bars = candles([
        (95, 95, 95, 95, 1),      # 0: already below: not armed, no event
        (94, 94, 94, 94, 1),      # 1: still below
        (101, 101, 101, 101, 1),  # 2: above: arms
        (99, 99, 99, 99, 1),      # 3: fresh break: fires
    ])
    assert fired(S.cross_below(bars, 100)) == [3]


def test_cross_above_is_symmetric() -> None:
    bars = candles([
        (95, 95, 95, 95, 10),       # 0: below: arms a reclaim
        (95, 101, 94, 96, 10),      # 1: wick above only
        (96, 102, 96, 101, 10),     # 2: close above, count 1
        (101, 103, 100, 102, 30),   # 3: count 2 -> hold=2 fires; volume 30 >= 2 x 10
    ])
    assert fired(S.cross_above(bars, 100, confirm="wick")) == [1]
    assert fired(S.cross_above(bars, 100)) == [2]
    assert fired(S.cross_above(bars, 100, hold=2, volume_k=2, volume_window=2)) == [3]


def test_level_relative_to_the_running_ath() -> None:
    bars = candles([
        (90, 100, 90, 90, 1),     # 0: ATH 100 -> level 50; close 90: armed
        (90, 200, 90, 190, 1),    # 1: new ATH 200 in this bar -> level 100
        (190, 190, 95, 95, 1),    # 2: close 95 < 100 (and > the old 50): fires
    ])
    level = S.level_series(bars, S.AthFraction(0.5))
    assert level.tolist() == [50.0, 100.0, 100.0]
    assert fired(S.cross_below(bars, S.AthFraction(0.5))) == [2]
    assert fired(S.cross_below(bars, 50.0)) == []


def test_reference_price_level() -> None:
    bars = candles([
        (100, 100, 100, 100, 1),  # 0: before the reference: level NaN
        (120, 120, 120, 120, 1),  # 1: reference bar 2026-01-02: level 0.9 x 120 = 108; arms
        (110, 110, 110, 110, 1),  # 2: 110 >= 108
        (107, 107, 107, 107, 1),  # 3: 107 < 108: fires
    ])
    ref = S.RefPrice("2026-01-02", 0.9)
    level = S.level_series(bars, ref)
    assert np.isnan(level.iloc[0]) and level.iloc[1:].tolist() == pytest.approx([108.0] * 3)
    assert fired(S.cross_below(bars, ref)) == [3]
    assert S.level_series(bars.iloc[:1], ref).isna().all()  # the reference bar is not there yet
    with pytest.raises(StrategyError, match=r"RefPrice\.date: expected a date on or after"):
        S.level_series(bars, S.RefPrice("2025-12-31"))


def test_nan_disarms() -> None:
    bars = candles([
        (105, 105, 105, 105, 1),  # 0: arms
        (np.nan,) * 4 + (1,),     # 1: missing price: disarms
        (99, 99, 99, 99, 1),      # 2: below, but not a crossing we saw: no event
    ])
    assert fired(S.cross_below(bars, 100)) == []
    filled = bars.fillna(101.0)   # same table with bar 1 at 101: the crossing is seen
    assert fired(S.cross_below(filled, 100)) == [2]
    level = pd.Series([100.0, np.nan, 100.0], index=bars.index)
    assert fired(S.cross_below(filled, level)) == []


def test_bad_parameters_are_strategy_errors() -> None:
    bars = candles([(1, 1, 1, 1, 1)])
    with pytest.raises(StrategyError, match=r"confirm: expected one of close, wick, found "
                                            r"'wik'; did you mean 'wick'\?"):
        S.cross_below(bars, 100, confirm="wik")
    with pytest.raises(StrategyError, match="hold: expected an integer >= 1, found 0"):
        S.cross_below(bars, 100, hold=0)
    with pytest.raises(StrategyError, match=r"rearm_pct: expected a number in \[0, 1\)"):
        S.cross_above(bars, 100, rearm_pct=-0.1)


# --- causality and hysteresis as properties ------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.floats(-0.06, 0.06), min_size=5, max_size=120),
       hold=st.integers(1, 4), rearm=st.sampled_from([0.0, 0.01, 0.05]),
       confirm=st.sampled_from(S.CONFIRMS), k=st.integers(1, 120))
def test_events_are_causal_and_rearmed(steps: list[float], hold: int, rearm: float,
                                       confirm: str, k: int) -> None:
    close = 100 * np.exp(np.cumsum(steps))
    bars = candles([(c, c * 1.01, c * 0.99, c, 1.0) for c in close])
    level = S.AthFraction(0.9)
    events = S.cross_below(bars, level, confirm=confirm, hold=hold, rearm_pct=rearm)
    k = min(k, len(bars))
    pd.testing.assert_series_equal(
        S.cross_below(bars.iloc[:k], level, confirm=confirm, hold=hold, rearm_pct=rearm),
        events.iloc[:k])
    lvl = S.level_series(bars, level).to_numpy()
    probe = bars["close" if confirm == "close" else "low"].to_numpy()
    armed_by = close >= lvl * (1 + rearm)
    previous = -1
    for t in np.flatnonzero(events.to_numpy()):
        assert (probe[t - hold + 1:t + 1] < lvl[t - hold + 1:t + 1]).all()  # held N bars
        assert armed_by[previous + 1:t - hold + 1].any()  # re-armed since the last event
        previous = t


# --- helpers ----------------------------------------------------------------------------------

def test_crossed_helpers_with_nan() -> None:
    idx = pd.date_range("2026-01-01", periods=6, freq="D", tz="UTC")
    a = pd.Series([1.0, 3.0, np.nan, 3.0, 1.0, 3.0], index=idx)
    b = pd.Series([2.0, 2.0, 2.0, 2.0, 2.0, np.nan], index=idx)
    assert fired(S.crossed_above(a, b)) == [1]  # row 3 follows a NaN, row 5 has b NaN
    assert fired(S.crossed_below(a, b)) == [4]
    assert fired(S.crossed_above(a, 2.0)) == [1, 5]


def test_state_to_events() -> None:
    idx = pd.date_range("2026-01-01", periods=6, freq="D", tz="UTC")
    state = pd.Series([True, True, False, True, True, False], index=idx)
    assert fired(S.state_to_events(state)) == [3]  # on at row 0 was not seen turning on



def test_latch_holds_from_on_until_off() -> None:
    idx = pd.date_range("2026-01-01", periods=7, freq="D", tz="UTC")
    on = pd.Series([False, True, False, False, True, False, False], index=idx)
    off = pd.Series([True, False, False, True, True, False, True], index=idx)
    # row 0: off before any on; 1: on; 2: still on; 3: off; 4: both, on wins; 6: off
    assert fired(S.latch(on, off)) == [1, 2, 4, 5]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60))
def test_latch_matches_a_forward_filled_state(rows: list[tuple[bool, bool]]) -> None:
    """Against the formula break_below_74k used before: 1.0 on ``on``, 0.0 on ``off``, NaN
    elsewhere, forward-filled from 0.0."""
    idx = pd.date_range("2026-01-01", periods=len(rows), freq="h", tz="UTC")
    on = pd.Series([a for a, _ in rows], index=idx, dtype=bool)
    off = pd.Series([b for _, b in rows], index=idx, dtype=bool)
    state = pd.Series(np.where(on, 1.0, np.where(off, 0.0, np.nan)), index=idx)
    expected = state.ffill().fillna(0.0).eq(1.0)
    assert S.latch(on, off).equals(expected.rename(None))


# --- DOMAIN.md facts on real bars -----------------------------------------------------------------

def first_2026(events: pd.Series) -> pd.Timestamp:
    events = events.loc["2026":]
    return events.index[events.to_numpy()][0]


def test_break_of_74400_on_hourly_and_daily_bars() -> None:
    hourly, daily = load("btcusdt_1h.csv"), load("btcusdt_1d.csv")
    assert first_2026(S.cross_below(hourly, 74_400)) == pd.Timestamp("2026-02-03T18:00Z")
    assert first_2026(S.cross_below(daily, 74_400)) == pd.Timestamp("2026-02-04", tz="UTC")
    # hold=2: 02-03 18:00 is a single close below (19:00 closes 74,935); the first two in a row
    # are 02-04 14:00 (74,359.53) and 15:00 (74,136.36): fires at 15:00, filled at 16:00's open.
    held = first_2026(S.cross_below(hourly, 74_400, hold=2))
    assert held == pd.Timestamp("2026-02-04T15:00Z")
    assert hourly["open"].iloc[hourly.index.get_loc(held) + 1] == 74_136.48


def test_the_66000_flush_is_volume_confirmed() -> None:
    # 2026-02-05: close 62,909.86 < 66,000 on 106,299 BTC, 2.66x the mean of the 3 days before
    daily = load("btcusdt_1d.csv")
    assert S.cross_below(daily, 66_000, volume_k=2.5, volume_window=3).loc["2026-02-05"]
    assert not S.cross_below(daily, 66_000, volume_k=2.7, volume_window=3).loc["2026-02-05"]


def test_ath_fraction_reproduces_the_fixed_level() -> None:
    # 0.59 x the 126,199.63 ATH = 74,457.78: the daily break is the same 2026-02-04 bar
    daily = load("btcusdt_1d.csv")
    assert S.level_series(daily, S.AthFraction(0.59)).loc["2026-02-04"] == pytest.approx(
        0.59 * 126_199.63)
    assert first_2026(S.cross_below(daily, S.AthFraction(0.59))) == pd.Timestamp(
        "2026-02-04", tz="UTC")


def test_causal_on_real_hourly_bars() -> None:
    hourly = load("btcusdt_1h.csv").loc["2025-06":]
    full = S.cross_below(hourly, S.AthFraction(0.62), hold=2, rearm_pct=0.01, volume_k=1.2)
    for k in (100, 2_000, len(hourly) - 5):
        part = S.cross_below(hourly.iloc[:k], S.AthFraction(0.62), hold=2, rearm_pct=0.01,
                             volume_k=1.2)
        pd.testing.assert_series_equal(part, full.iloc[:k])
    assert full.any()


def test_unchanged_bars_computed_once_give_the_same_events() -> None:
    """Inside ``unchanged`` the prices, the running high, the weekly EMA and the volume
    baseline are computed once per block; every result equals the one computed outside, to the
    last bit, and nothing is held for another frame or after the block."""
    hourly = load("btcusdt_1h.csv").loc["2021-06":]

    def results(bars: pd.DataFrame) -> list[pd.Series]:
        return [S.cross_below(bars, S.AthFraction(0.62), confirm="wick", hold=2),
                S.cross_above(bars, S.EmaFraction(1.1, 50), volume_k=1.3, volume_window=7),
                S.level_series(bars, S.AthFraction(0.5)),
                S.level_series(bars, S.EmaFraction(0.9, 20)),
                S.volume_confirmed(bars, 2.0, 7)]

    outside = results(hourly)
    moved = hourly.assign(low=hourly["low"] * 0.9, high=hourly["high"] * 1.1,
                          volume=hourly["volume"] * 3)
    moved_outside = results(moved)
    with S.unchanged(hourly):
        for _ in range(2):  # the second pass reads what the first computed
            for got, want in zip(results(hourly), outside, strict=True):
                pd.testing.assert_series_equal(got, want)
        assert S.price(hourly, "low") is S.price(hourly, "low")  # read once
        for got, want in zip(results(moved), moved_outside, strict=True):
            pd.testing.assert_series_equal(got, want)  # another frame: read as itself
        assert S.price(moved, "low") is not S.price(hourly, "low")
    changed = hourly.copy()
    with S.unchanged(changed):
        results(changed)
    changed["high"] = changed["high"] * 1.1  # after its block nothing is held: the new highs count
    changed["low"], changed["volume"] = moved["low"], moved["volume"]
    for got, want in zip(results(changed), moved_outside, strict=True):
        pd.testing.assert_series_equal(got, want)
