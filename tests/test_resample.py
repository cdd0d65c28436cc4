"""``data.resample`` (issue 16.4): open-time buckets pinned by a hand-computed candle table, the
real 1h bars summed into days equal the separately fetched daily bars, and external series stay
point in time on the resampled clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.config.data import DataConfig
from backtest.data.bars import load_bars
from backtest.data.external import align_to_bars, load_external
from backtest.data.resample import resample
from backtest.errors import ConfigError

# hour, open, high, low, close, volume (2026-01-01, UTC); the 09:00 bar is missing (a gap)
CANDLES = """\
timestamp,open,high,low,close,volume
2026-01-01T02:00:00Z,100,101,99,100.5,1
2026-01-01T03:00:00Z,100.5,102,100,101,2
2026-01-01T04:00:00Z,101,103,100,102,3
2026-01-01T05:00:00Z,102,106,101,105,4
2026-01-01T06:00:00Z,105,105.5,98,99,5
2026-01-01T07:00:00Z,99,100,97.5,99.5,6
2026-01-01T08:00:00Z,99.5,101,99,100,7
2026-01-01T10:00:00Z,100,104,100,103,8
2026-01-01T11:00:00Z,103,103.5,95,96,9
2026-01-01T12:00:00Z,96,97,95.5,96.5,10
2026-01-01T13:00:00Z,96.5,98,96,97,11
"""


def test_1h_to_4h_matches_the_hand_computed_table(tmp_path: Path) -> None:
    path = tmp_path / "candles_1h.csv"
    path.write_text(CANDLES)
    bars, info = load_bars(DataConfig(path=str(path), resample="4h"))
    # 00:00 bucket: only 02, 03 (data starts inside it) -> dropped; 12:00 bucket: only 12, 13
    # (data ends inside it) -> dropped. 04:00: open of 04, max high 106 (05), min low 97.5 (07),
    # close of 07, volume 3+4+5+6. 08:00: 08, 10, 11 (09 missing, kept): open 99.5, high 104,
    # low 95, close 96, volume 7+8+9.
    expected = pd.DataFrame(
        {"open": [101.0, 99.5], "high": [106.0, 104.0], "low": [97.5, 95.0],
         "close": [99.5, 96.0], "volume": [18.0, 24.0]},
        index=pd.DatetimeIndex(["2026-01-01T04:00", "2026-01-01T08:00"], tz="UTC",
                               name="timestamp").as_unit("ns"))
    pd.testing.assert_frame_equal(bars, expected, check_freq=False)
    assert (info.timeframe, info.freq, info.rows) == ("4h", "4h", 2)
    assert info.resample_report() == {
        "from": "1h", "to": "4h",
        "partial_buckets_dropped": ["2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z"],
        "buckets_with_gaps": ["2026-01-01T08:00:00Z"]}


def test_real_hourly_bars_summed_into_days_equal_the_daily_bars() -> None:
    # datasets/README: summing Binance's 1h bars into UTC days reproduces its 1d bars exactly
    cfg = {"start": "2026-01-01", "end": "2026-02-28"}
    days, info = load_bars(DataConfig(dataset="btcusdt_1h", resample="1d", **cfg))
    daily, _ = load_bars(DataConfig(dataset="btcusdt_1d", **cfg))
    # the file ends with the 2026-04-30T03:00 bar: that day is partial and dropped
    assert info.resampled is not None
    assert info.resampled.dropped_partial == (pd.Timestamp("2026-04-30", tz="UTC"),)
    assert days.index.equals(daily.index)
    pd.testing.assert_frame_equal(days[["open", "high", "low", "close"]],
                                  daily[["open", "high", "low", "close"]], check_freq=False)
    np.testing.assert_allclose(days["volume"], daily["volume"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(days["trades"], daily["trades"], rtol=0, atol=0)


def test_external_series_stay_point_in_time_on_resampled_bars() -> None:
    # a 4h bar closes when its last 1h bar closes, so it sees exactly what that hour saw
    cfg = {"start": "2026-02-01", "end": "2026-02-28T23:00:00Z"}
    hourly, _ = load_bars(DataConfig(dataset="btcusdt_1h", **cfg))
    four, info = load_bars(DataConfig(dataset="btcusdt_1h", resample="4h", **cfg))
    funding = load_external("funding_8h")
    on_four = align_to_bars(funding, four.index, ["funding_rate"], info.freq)
    on_hour = align_to_bars(funding, hourly.index, ["funding_rate"], "1h")
    last_hours = four.index + pd.Timedelta(hours=3)
    np.testing.assert_array_equal(on_four["funding_rate"].to_numpy(),
                                  on_hour.loc[last_hours, "funding_rate"].to_numpy())
    # the settlement at 08:00 is known by the 04:00-08:00 bar's close, not by the 00:00 bar's
    day = on_four.loc["2026-02-06"]
    rates = funding["funding_rate"]
    assert day.loc["2026-02-06T04:00", "funding_rate"] == rates.loc["2026-02-06T08:00"]
    assert day.loc["2026-02-06T00:00", "funding_rate"] == rates.loc["2026-02-06T00:00"]


@pytest.mark.parametrize("target", ["90m", "1h", "30m"])
def test_a_bucket_that_is_not_a_longer_multiple_is_refused(target: str) -> None:
    with pytest.raises(ConfigError, match=rf"data.resample: expected a whole multiple of the "
                                          rf"bars' 1h longer than it, found '{target}'"):
        load_bars(DataConfig(dataset="btcusdt_1h", resample=target, start="2026-02-01"))


def naive_buckets(rows: list[tuple[int, float, float, float, float, float]], size: int,
                  per: int) -> tuple[list[tuple[int, ...]], list[int], list[int]]:
    """A plain-Python re-implementation on hour numbers: buckets of ``size`` hours from hour 0
    (a Monday), kept unless partial at an edge; returns (bars, dropped, with_gaps)."""
    groups: dict[int, list[tuple[int, float, float, float, float, float]]] = {}
    for row in rows:
        groups.setdefault(row[0] // size * size, []).append(row)
    starts = sorted(groups)
    kept, dropped, gaps = [], [], []
    for i, start in enumerate(starts):
        g = groups[start]
        if len(g) < per and i in (0, len(starts) - 1):
            dropped.append(start)
            continue
        if len(g) < per:
            gaps.append(start)
        kept.append((start, g[0][1], max(r[2] for r in g), min(r[3] for r in g), g[-1][4],
                     sum(r[5] for r in g)))
    return kept, dropped, gaps


@settings(max_examples=40, deadline=None)
@given(hours=st.lists(st.booleans(), min_size=10, max_size=120), offset=st.integers(0, 23),
       size=st.sampled_from([2, 3, 4, 6, 12, 24]), seed=st.integers(0, 2**16))
def test_resample_equals_a_plain_python_aggregation(hours: list[bool], offset: int, size: int,
                                                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    present = [offset + h for h, keep in enumerate(hours) if keep or h in (0, len(hours) - 1)]
    rows = []
    for h in present:
        o, c = rng.uniform(90, 110, 2).round(2)
        up, down, volume = rng.uniform(0, 3, 3).round(2)
        rows.append((h, float(o), float(max(o, c) + up), float(min(o, c) - down), float(c),
                     float(volume)))
    monday = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday: hour 0 is a bucket start
    bars = pd.DataFrame([r[1:] for r in rows], columns=["open", "high", "low", "close", "volume"],
                        index=pd.DatetimeIndex([monday + pd.Timedelta(hours=r[0]) for r in rows],
                                               name="timestamp").as_unit("ns"))
    got, info = resample(bars, pd.Timedelta(hours=1), pd.Timedelta(hours=size), "1h",
                         f"{size}h", "test")
    kept, dropped, gaps = naive_buckets(rows, size, size)
    hour = pd.Timedelta(hours=1)
    assert [int((t - monday) / hour) for t in got.index] == [k[0] for k in kept]
    np.testing.assert_allclose(got.to_numpy(), np.array([k[1:] for k in kept]).reshape(-1, 5))
    assert [int((t - monday) / hour) for t in info.dropped_partial] == dropped
    assert [int((t - monday) / hour) for t in info.inner_incomplete] == gaps
