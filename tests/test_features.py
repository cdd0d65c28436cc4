"""The feature library: the warm-up/causality contract for every registered feature, hand-computed
small cases, and the real-data facts of DOMAIN.md (read straight from ../shared/data)."""

from __future__ import annotations

import ast
import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ta

from backtest.data.external import derive_hash_rate_ehs
from backtest.errors import StrategyError
from backtest.features import indicators as F
from scripts.bundle_datasets import shared_data_dir

DATA = shared_data_dir()
SOURCE_FILES = {
    "bars": "btcusdt_1d.csv",
    "hashrate": "btc_hashrate_1d.csv",
    "etf_flows": "btc_etf_flows_1d.csv",
    "open_interest": "btc_open_interest_1d.csv",
    "liquidations": "btc_liquidations_1d.csv",
    "funding": "btc_funding_8h.csv",
}


@cache
def load(name: str) -> pd.DataFrame:
    frame = pd.read_csv(DATA / name, index_col="timestamp", parse_dates=True)
    assert str(frame.index.tz) == "UTC"
    return frame


def source(kind: str) -> pd.DataFrame:
    frame = load(SOURCE_FILES[kind])
    # Hash rate is empty on a few 2009 days without blocks; start where the series is complete.
    return frame.loc["2010":] if kind == "hashrate" else frame


def as_frame(out: pd.Series | pd.DataFrame) -> pd.DataFrame:
    return out.to_frame() if isinstance(out, pd.Series) else out


def series(values: list[float]) -> pd.Series:
    return pd.Series(values, dtype="float64",
                     index=pd.date_range("2026-01-01", periods=len(values), freq="D", tz="UTC"))


# --- the contract, for every feature in the registry ------------------------------------------

@pytest.mark.parametrize("name", sorted(F.FEATURES))
def test_warmup_is_nan_then_finite(name: str) -> None:
    feature = F.FEATURES[name]
    frame = source(feature.source)
    out = as_frame(feature.compute(frame, **feature.params))
    warmup = feature.warmup(frame, **feature.params)
    assert out.index.equals(frame.index)
    assert 0 <= warmup < len(frame)
    for column in out:
        values = out[column]
        if values.dtype == bool:  # hash-ribbon states: False while the SMAs warm up
            assert not values.iloc[:warmup].any(), column
            continue
        assert values.dtype == "float64", column
        assert values.iloc[:warmup].isna().all(), f"{column}: a warm-up value is not NaN"
        after = values.iloc[warmup:]
        if name == "funding_zscore":
            # Undefined (NaN) exactly where the previous 30 rates are all equal.
            rates = frame["funding_rate"].shift(1).rolling(30)
            flat = (rates.max() == rates.min()).iloc[warmup:]
            assert flat.sum() > 0 and after.isna().equals(flat)
            after = after[~flat]
        assert np.isfinite(after).all(), f"{column}: non-finite value after warm-up"
        assert warmup == 0 or not math.isnan(values.iloc[warmup]), f"{column}: warm-up too short"


def test_zero_only_where_the_true_value_is_zero() -> None:
    """No feature emits 0 as a placeholder: zeros appear only where the value really is 0."""
    for name, feature in F.FEATURES.items():
        frame = source(feature.source)
        out = as_frame(feature.compute(frame, **feature.params)).select_dtypes("float64")
        zeros = (out == 0).any(axis=1)
        if name == "drawdown":  # the close IS the all-time high so far
            expected = (frame["close"] == frame["high"].cummax()).copy()
        elif name == "liq_intensity":  # a day without long liquidations
            expected = (frame["long_liq_usd"] == 0).copy()
        else:
            expected = pd.Series(False, index=frame.index)
        expected.iloc[:feature.warmup(frame, **feature.params)] = False  # NaN there
        assert zeros.equals(expected), name


@pytest.mark.parametrize("name", sorted(F.FEATURES))
def test_causal_truncation_equality(name: str) -> None:
    """feature(x[:k]) == feature(x)[:k]: nothing at row t depends on rows after t."""
    feature = F.FEATURES[name]
    frame = source(feature.source)
    full = as_frame(feature.compute(frame, **feature.params))
    for k in (40, 333, len(frame) // 2, len(frame) - 3):
        part = as_frame(feature.compute(frame.iloc[:k], **feature.params))
        pd.testing.assert_frame_equal(part, full.iloc[:k], check_exact=False, rtol=1e-12)


# --- hand-computed cases ----------------------------------------------------------------------

def test_rsi_masks_the_first_window_rows() -> None:
    # closes 10 11 12 11 13, window 2: gains 1 1 0 2, losses 0 0 1 0; Wilder EWM alpha 1/2 from
    # the first row (ta counts row 0 as a 0 change): avg gain .5 .75 .375 1.1875, loss 0 0 .5 .25.
    # row 3: RS .375/.5 = .75 -> 100 - 100/1.75 = 42.857; row 4: 4.75 -> 100 - 100/5.75 = 82.609.
    out = F.rsi(series([10, 11, 12, 11, 13]), window=2)
    assert out.name == "rsi_2"
    assert out.iloc[:2].isna().all()  # ta would emit 100 at row 1 from one real change
    assert out.iloc[2] == 100.0  # no loss yet
    assert out.iloc[3] == pytest.approx(42.857142857)
    assert out.iloc[4] == pytest.approx(82.608695652)


def test_volume_ratio_and_zscore_use_the_previous_bars_only() -> None:
    # volume 1 2 3 6, window 3: baseline of row 3 = rows 0..2: mean 2, population std sqrt(2/3).
    volume = series([1, 2, 3, 6])
    assert F.volume_ratio(volume, 3).iloc[3] == pytest.approx(3.0)  # 6/2 (with itself: 6/3)
    assert F.volume_zscore(volume, 3).iloc[3] == pytest.approx(4 / math.sqrt(2 / 3))  # 4.899
    assert F.volume_ratio(volume, 3).iloc[:3].isna().all()


def test_volume_ratio_on_the_flush_day() -> None:
    # DOMAIN.md: 2026-02-05 volume 106,299 BTC is about 2.7x the mean of the three days before.
    bars = load("btcusdt_1d.csv")
    ratio = F.volume_ratio(bars["volume"], 3).loc["2026-02-05"]
    before = bars["volume"].loc["2026-02-02":"2026-02-04"].mean()
    expected = bars["volume"].loc["2026-02-05"] / before
    assert ratio == pytest.approx(expected) and ratio == pytest.approx(2.66, abs=0.01)


def test_bollinger_bands_by_hand() -> None:
    # closes 1 2 3, window 3: mid 2, population std sqrt(2/3) = 0.8165; upper 3.633, lower 0.367;
    # %b of the last close = (3 - 0.367) / (3.633 - 0.367) = 0.806.
    out = F.bollinger(series([1, 2, 3]), window=3)
    assert list(out.columns) == ["bb_mid_3", "bb_upper_3", "bb_lower_3", "bb_pctb_3"]
    std = math.sqrt(2 / 3)
    assert out.iloc[2].tolist() == pytest.approx([2, 2 + 2 * std, 2 - 2 * std,
                                                  (1 + 2 * std) / (4 * std)])
    assert out.iloc[:2].isna().all().all()


def test_funding_zscore_is_nan_for_a_flat_baseline() -> None:
    out = F.funding_zscore(series([1e-4] * 5 + [2e-4, 3e-4]), window=5)
    assert out.iloc[:6].isna().all()  # rows 0-4 warm-up; row 5's baseline is flat
    # row 6: baseline 1,1,1,1,2 (e-4): mean 1.2e-4, std 0.4e-4 -> (3 - 1.2) / 0.4 = 4.5
    assert out.iloc[6] == pytest.approx(4.5)


def test_liquidation_intensity_by_hand() -> None:
    # long liquidations 10 20 30 120, window 3: 120 / mean(10, 20, 30) = 6
    assert F.liq_intensity(series([10, 20, 30, 120]), 3).iloc[3] == pytest.approx(6.0)


def test_drawdown_uses_the_ath_known_at_each_bar() -> None:
    bars = load("btcusdt_1d.csv")
    dd = F.drawdown(bars["close"], bars["high"])
    assert (dd <= 0).all()
    # 2026-02-05 close 62,909.86 vs ATH high 126,199.63 (2025-10-06): 62909.86/126199.63 - 1
    assert dd.loc["2026-02-05"] == pytest.approx(62909.86 / 126199.63 - 1)
    # before the 2025 ATH existed, the drawdown is measured from the ATH of that time
    assert dd.loc["2025-01-01"] == pytest.approx(
        bars["close"].loc["2025-01-01"] / bars["high"].loc[:"2025-01-01"].max() - 1)


def test_atr_equals_ta_after_warmup_and_is_nan_before() -> None:
    bars = load("btcusdt_1d.csv")
    ours = F.atr(bars["high"], bars["low"], bars["close"], 14)
    theirs = ta.volatility.AverageTrueRange(bars["high"], bars["low"], bars["close"],
                                            window=14).average_true_range()
    assert (theirs.iloc[:13] == 0).all()  # why we do not use ta's: warm-up written as 0
    assert ours.iloc[:13].isna().all()
    np.testing.assert_allclose(ours.iloc[13:], theirs.iloc[13:], rtol=1e-12)


def test_bad_window_is_a_strategy_error() -> None:
    with pytest.raises(StrategyError, match=r"features: sma.window: expected an integer >= 1, "
                                            r"found 0"):
        F.sma(series([1.0, 2.0]), 0)


def test_ta_is_never_asked_to_fill() -> None:
    """Every call that passes ``fillna`` passes the literal False (ta back-fills otherwise)."""
    tree = ast.parse(Path(F.__file__).read_text())
    values = [kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
              for kw in node.keywords if kw.arg == "fillna"]
    assert len(values) >= 4
    assert all(isinstance(v, ast.Constant) and v.value is False for v in values)


# --- the 200-week EMA ---------------------------------------------------------------------------

def test_ema_weekly_pin_and_weekly_visibility() -> None:
    close = load("btcusdt_1d.csv")["close"]
    ema200 = F.ema_weekly(close, 200)
    assert ema200.name == "ema_weekly_200"
    # DOMAIN.md pin: 68,356 at 2026-02-01 (adjust=False from the first weekly close);
    # SMA-seeded would be 68,037 and the 200-week SMA about 57,943.
    assert ema200.loc["2026-02-01"] == pytest.approx(68_356, rel=0.005)
    assert ema200.loc["2026-02-01"] == pytest.approx(68_356.11, abs=0.01)
    weekly = close.resample("W-SUN").last()  # daily bars: labelled by their Sunday
    assert weekly.rolling(200).mean().loc["2026-02-01"] == pytest.approx(57_943, abs=1)
    # The Sunday 2026-02-01 bar closes at the week's end and sees it; Saturday does not, and
    # Monday to Saturday of the next week repeat Sunday's value.
    assert ema200.loc["2026-01-31"] != ema200.loc["2026-02-01"]
    assert (ema200.loc["2026-02-02":"2026-02-07"] == ema200.loc["2026-02-01"]).all()


def test_ema_weekly_is_the_same_on_hourly_bars() -> None:
    """Hourly bars see a week at the close of Sunday 23:00, like the daily Sunday bar (both
    histories start on Monday 2018-01-01, so the recursions start from the same week)."""
    hourly = F.ema_weekly(load("btcusdt_1h.csv")["close"], 200)
    daily = F.ema_weekly(load("btcusdt_1d.csv")["close"].loc["2018":], 200)
    assert hourly.loc["2026-02-01T23:00"] == daily.loc["2026-02-01"]
    assert hourly.loc["2026-02-01T22:00"] == daily.loc["2026-01-31"]


# --- daily on-chain, ETF and derivatives facts (DOMAIN.md) --------------------------------------

def ribbon_dates(hash_rate: pd.Series) -> tuple[list[str], str]:
    """Capitulation starts in Dec 2025 - Mar 2026, and the first recovery after the first one."""
    ribbons = F.hash_ribbons(hash_rate.loc["2025-06":], 30, 60)
    starts = ribbons.index[(ribbons["capitulation"] & ~ribbons["capitulation"].shift(1)
                            .astype(bool)).to_numpy()]
    starts = starts[(starts >= "2025-12-15") & (starts <= "2026-03-15")]
    after = ribbons.loc[starts[0]:]
    recovery = after.index[after["recovery"].to_numpy()][0]
    # the state holds every day in between: one capitulation, not several short ones
    assert after.loc[:recovery, "capitulation"].iloc[:-1].all()
    return [d.strftime("%Y-%m-%d") for d in starts], recovery.strftime("%Y-%m-%d")


def test_hash_ribbon_dates_from_the_file() -> None:
    # DOMAIN.md: the 30-day mean falls below the 60-day mean on 2026-01-06, back above 2026-02-26
    assert ribbon_dates(load("btc_hashrate_1d.csv")["hash_rate_ehs"]) == (["2026-01-06"],
                                                                         "2026-02-26")


def test_hash_ribbon_dates_from_blocks_and_difficulty() -> None:
    frame = load("btc_hashrate_1d.csv")
    derived = derive_hash_rate_ehs(frame["difficulty"], frame["blocks_mined"])
    # SOURCES.md: 2026-04-09 with 144 blocks gives 994.76 EH/s
    assert derived.loc["2026-04-09"] == pytest.approx(994.76, abs=0.01)
    assert ribbon_dates(derived) == (["2026-01-06"], "2026-02-26")


def test_etf_flow_sum_over_twelve_trading_days() -> None:
    flows = load("btc_etf_flows_1d.csv")["net_flow_usd"]
    total = F.etf_flow_sum(flows, 12)
    assert total.name == "etf_flow_12"
    assert total.loc["2026-02-04"] == pytest.approx(-3.0669e9)  # DOMAIN.md: about -3.07B
    assert total.loc["2026-02-04"] == flows.loc[:"2026-02-04"].iloc[-12:].sum()


def test_open_interest_drop_of_2025_10_10() -> None:
    oi = load("btc_open_interest_1d.csv")["open_interest_usd"]
    # 45,609,087,217 -> 34,233,796,846: 34233796846 / 45609087217 - 1 = -0.2494
    assert F.oi_change(oi, 1).loc["2025-10-10"] == pytest.approx(-0.24941, abs=1e-5)
