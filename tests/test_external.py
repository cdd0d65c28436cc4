"""backtest.external: point-in-time external series on real data (bundled + ../shared/data),
publication lags, and the as-of join that never lets a bar see an unpublished value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.config.data import DataConfig
from backtest.data.bars import load_bars
from backtest.data.external import align_to_bars, derive_hash_rate_ehs, load_external
from backtest.errors import ConfigError, DataError
from scripts.bundle_datasets import shared_data_dir


def shared_file(name: str) -> Path:
    """A research file from ../shared/data; missing means a broken checkout, so fail loudly."""
    path = shared_data_dir() / name
    assert path.is_file(), f"{path} not found: put ../shared beside the repo or set CRASHBT_SHARED"
    return path


@pytest.fixture(scope="module")
def bars_2026() -> pd.DatetimeIndex:
    bars, _ = load_bars(DataConfig(dataset="btcusdt_1h", start="2026-01-01", end="2026-03-01"))
    return bars.index


def test_etf_flow_of_feb_4_first_visible_at_the_bar_closing_feb_5(bars_2026) -> None:
    flows = load_external("etf_flows")
    assert flows.attrs["name"] == "btc_etf_flows_1d"
    assert flows.loc["2026-02-04", "net_flow_usd"] == -544_900_000
    assert flows.loc["2026-02-04", "published_at"] == pd.Timestamp("2026-02-05T00:00Z")
    # rolling sum on the daily (trading-day) series, before aligning. The 12 trading days
    # 2026-01-20 .. 2026-02-04 in US$m: -479.7 -708.7 -32.2 -103.5 +6.8 -147.4 -19.6 -817.8
    # -509.7 +561.8 -272.0 -544.9 = -3066.9
    flows["net_12d"] = flows["net_flow_usd"].rolling(12).sum()
    seen = align_to_bars(flows, bars_2026, ["net_flow_usd", "net_12d"])
    at_23 = seen.loc[pd.Timestamp("2026-02-04T23:00Z")]
    at_22 = seen.loc[pd.Timestamp("2026-02-04T22:00Z")]
    assert at_23["net_flow_usd"] == -544_900_000
    assert at_23["net_12d"] == pytest.approx(-3_066_900_000, abs=1.0)
    assert at_22["net_flow_usd"] == -272_000_000  # still 2026-02-03's flow
    assert list(seen.columns) == ["net_flow_usd", "net_12d"] and seen.index.equals(bars_2026)


def test_funding_visible_at_the_bar_closing_on_the_settlement(bars_2026) -> None:
    funding = load_external("btc_funding_8h")
    seen = align_to_bars(funding, bars_2026, ["funding_rate"])["funding_rate"]
    assert seen[pd.Timestamp("2026-02-06T07:00Z")] == -0.00013688  # closes 08:00 = settlement
    assert seen[pd.Timestamp("2026-02-06T06:00Z")] == -0.00001597  # the 00:00 settlement
    assert seen[pd.Timestamp("2026-02-06T15:00Z")] == -0.00013478  # closes at 16:00


def test_derived_hash_rate_reproduces_the_research_file() -> None:
    derived = load_external("hash_rate")
    assert list(derived.columns) == ["difficulty", "blocks_mined", "hash_rate_ehs",
                                     "published_at"]
    full = pd.read_csv(shared_file("btc_hashrate_1d.csv"), index_col="timestamp")
    full.index = pd.to_datetime(full.index, utc=True).as_unit("ns")
    # 144 blocks x 138,966,872,071,213.2 x 2^32 / 86,400 s = 9.9476e20 H/s... x1e-18 = 994.76 EH/s
    assert derived.loc["2026-04-09", "hash_rate_ehs"] == pytest.approx(994.76, abs=0.005)
    # On days without a difficulty adjustment (difficulty equal to the day before) the research
    # file matches to its printed precision (5-6 significant digits in 2009). On adjustment days
    # the source weights blocks by their own difficulty, so the daily-difficulty estimate differs.
    steady = derived["difficulty"].eq(derived["difficulty"].shift()) & full["hash_rate_ehs"].notna()
    assert steady.sum() > 5000
    np.testing.assert_allclose(derived.loc[steady, "hash_rate_ehs"],
                               full.loc[steady, "hash_rate_ehs"], rtol=1e-5)
    for day in ("2026-02-01", "2026-02-05", "2025-10-10"):
        assert derived.loc[day, "hash_rate_ehs"] == pytest.approx(full.loc[day, "hash_rate_ehs"])
    assert derive_hash_rate_ehs(pd.Series([1e12]), pd.Series([144.0]))[0] == pytest.approx(
        144 * 1e12 * 2**32 / 86_400 / 1e18)


def test_user_series_from_the_research_copies() -> None:
    oi = load_external("open_interest", path=str(shared_file("btc_open_interest_1d.csv")))
    assert oi.loc["2026-02-04", "open_interest_usd"] == pytest.approx(24_410_849_114, abs=1)
    assert oi.loc["2026-02-04", "published_at"] == pd.Timestamp("2026-02-05T00:00Z")
    assert np.isnan(oi.loc["2026-04-11", "estimated_leverage_ratio"])  # empty cell stays NaN
    liq = load_external("liquidations", path=str(shared_file("btc_liquidations_1d.csv")))
    assert liq.loc["2025-10-10", ["long_liq_usd", "short_liq_usd"]].tolist() == pytest.approx(
        [1_050_483_641, 133_692_786], abs=1)
    daily = load_external("funding_1d", path=str(shared_file("btc_funding_1d_cryptoquant.csv")))
    assert daily.loc["2026-02-06", "funding_rate_pct"] == pytest.approx(-0.0209677333)
    full = load_external("hash_rate", path=str(shared_file("btc_hashrate_1d.csv")))
    assert full.loc["2026-04-09", "hash_rate_ehs"] == pytest.approx(994.76, abs=0.005)
    fear = load_external("fear_greed")
    assert fear.loc["2026-02-05", ["value", "classification"]].tolist() == [12, "Extreme Fear"]


def test_lag_override_moves_first_visibility(bars_2026) -> None:
    flows = load_external("etf_flows", lag="2d")
    seen = align_to_bars(flows, bars_2026, ["net_flow_usd"])["net_flow_usd"]
    assert seen[pd.Timestamp("2026-02-05T22:00Z")] == -272_000_000
    assert seen[pd.Timestamp("2026-02-05T23:00Z")] == -544_900_000  # closes 02-06 = 02-04 + 2d
    funding = load_external("funding_8h", lag="1h",
                            path=str(shared_file("btc_funding_8h.csv")))
    seen = align_to_bars(funding, bars_2026, ["funding_rate"])["funding_rate"]
    assert seen[pd.Timestamp("2026-02-06T07:00Z")] == -0.00001597  # 08:00 + 1h not yet public
    assert seen[pd.Timestamp("2026-02-06T08:00Z")] == -0.00013688


@pytest.mark.parametrize(("lag", "pattern"), [
    ("-1h", r"external btc_etf_flows_1d: lag: expected a lag >= 0 .* found '-1h'"),
    ("soon", r"external btc_etf_flows_1d: lag: expected a duration like .* found 'soon'"),
])
def test_bad_lag_is_refused(lag: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_external("btc_etf_flows_1d", lag=lag)


def test_no_back_fill_before_the_first_value() -> None:
    bars, _ = load_bars(DataConfig(dataset="btcusdt_1h", start="2024-01-08", end="2024-01-15"))
    seen = align_to_bars(load_external("etf_flows"), bars.index, ["net_flow_usd"])["net_flow_usd"]
    # the first flow day is 2024-01-11 (+655.3M), public at 2024-01-12 00:00 = close of 01-11 23:00
    first = seen.first_valid_index()
    assert first == pd.Timestamp("2024-01-11T23:00Z") and seen[first] == 655_300_000
    assert seen[:first].iloc[:-1].isna().all() and len(seen[:first]) == 3 * 24 + 24


def test_unknown_names_and_columns() -> None:
    with pytest.raises(DataError, match=r"found 'etf_flow'; did you mean 'etf_flows'\?"):
        load_external("etf_flow")
    with pytest.raises(ConfigError, match=r"kind: expected one of .* found 'liquidation'; did you"
                                          r" mean 'liquidations'\?"):
        load_external("liquidation", path=str(shared_file("btc_liquidations_1d.csv")))
    flows = load_external("etf_flows")
    index = pd.date_range("2026-02-01", periods=3, freq="1h", tz="UTC")
    with pytest.raises(DataError, match=r"column 'net_flows_usd': .*did you mean 'net_flow_usd'"):
        align_to_bars(flows, index, ["net_flows_usd"])


def test_user_file_of_the_wrong_kind_names_the_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "oi.csv"
    path.write_text("timestamp,open_interest\n2026-02-04T00:00:00Z,1\n")
    with pytest.raises(DataError, match=r"oi.csv: column 'open_interest_usd': expected a column "
                                        r"named 'open_interest_usd'.*did you mean"):
        load_external("open_interest", path=str(path))
    path.write_text("timestamp,difficulty\n2026-02-04T00:00:00Z,1\n")
    with pytest.raises(DataError, match=r"oi.csv: column 'blocks_mined': expected 'hash_rate_ehs'"):
        load_external("hash_rate", path=str(path))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 200), min_size=1, max_size=30, unique=True),
       st.integers(0, 30), st.integers(1, 120))
def test_align_matches_a_brute_force_reference(hours: list[int], lag_h: int, n_bars: int) -> None:
    """Every bar sees exactly the last value published by its close, or NaN."""
    stamps = pd.DatetimeIndex(sorted(pd.Timestamp("2026-01-01T00:00Z") + pd.Timedelta(hours=h)
                                     for h in hours)).as_unit("ns")
    series = pd.DataFrame({"v": np.arange(len(stamps), dtype=float)}, index=stamps)
    series["published_at"] = stamps + pd.Timedelta(hours=lag_h)
    bars = pd.date_range("2026-01-01", periods=n_bars, freq="2h", tz="UTC")
    got = align_to_bars(series, bars, ["v"])["v"].to_numpy()
    closes = bars + pd.Timedelta("2h")
    for i, close in enumerate(closes):
        visible = series["v"][series["published_at"] <= close]
        expected = visible.iloc[-1] if len(visible) else np.nan
        assert got[i] == expected or (np.isnan(got[i]) and np.isnan(expected))
