"""The feature library: causal indicators on bars and on daily market data.

Every function takes pandas Series on a UTC DatetimeIndex and returns a float64 Series named
``{indicator}_{window}`` (or a DataFrame of such columns) on the same index. Rules:

* Causal: the value at row ``t`` uses rows ``<= t`` only, so ``f(x[:k]) == f(x)[:k]``.
* Warm-up rows are NaN, never 0 and never back-filled. ``ta`` zero-fills ATR and back-fills
  with ``fillna=True``: we never pass ``fillna=True`` and mask each warm-up explicitly.
* "Current vs baseline" features (volume ratio and z-score, liquidation intensity, funding
  z-score) compare row ``t`` with the rolling statistics of the PREVIOUS ``window`` rows
  (``t-window .. t-1``): a spike is not diluted by itself, and the same baseline is used by
  :mod:`backtest.features.levels` for volume confirmation. Their warm-up is ``window`` rows. A
  baseline with zero mean (ratio) or zero spread (z-score) has no defined value: NaN.
* Daily on-chain / ETF / derivatives series are computed on their own daily index (e.g. ETF
  sums over trading-day rows); publication lag and alignment onto bars happen elsewhere.

:data:`FEATURES` lists every feature with its input and warm-up length, for contract tests.
This is the ONLY crashbt module that imports ``ta``. It imports from crashbt only
:mod:`backtest.errors` and :mod:`backtest.data.external` (bar alignment, the hash-rate formula);
never vectorbt, optuna, signals, engine or strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import ta
from pandas.api.typing import Rolling

from backtest.data.external import align_to_bars, derive_hash_rate_ehs
from backtest.errors import StrategyError


def _check_window(name: str, window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise StrategyError(f"features: {name}: expected an integer >= 1, found {window!r}")


def _named(values: pd.Series, name: str) -> pd.Series:
    """float64, inf -> NaN (an undefined ratio is not a number), and the canonical name."""
    out = values.astype("float64").replace([np.inf, -np.inf], np.nan)
    out.name = name
    return out


def _mask_head(values: pd.Series, rows: int) -> pd.Series:
    """Set the first ``rows`` values to NaN (the warm-up)."""
    out = values.copy()
    out.iloc[:rows] = np.nan
    return out


def _baseline(x: pd.Series, window: int) -> Rolling:
    """Rolling window over the previous ``window`` rows (excludes the current row)."""
    return x.shift(1).rolling(window, min_periods=window)


def _ratio_to_baseline(x: pd.Series, window: int, name: str) -> pd.Series:
    mean = _baseline(x, window).mean()
    return _named(x / mean.where(mean != 0), name)


def _zscore_to_baseline(x: pd.Series, window: int, name: str) -> pd.Series:
    roll = _baseline(x, window)
    std = roll.std(ddof=0)
    return _named((x - roll.mean()) / std.where(std > 0), name)


# --- price indicators -------------------------------------------------------------------------

def rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder RSI (``ta``). The first ``window`` rows are NaN: ``ta`` counts the undefined first
    price change as 0 and emits a value at row ``window-1``; a real RSI needs ``window`` changes."""
    _check_window("rsi.window", window)
    raw = ta.momentum.RSIIndicator(close, window=window, fillna=False).rsi()
    return _named(_mask_head(raw, window), f"rsi_{window}")


def ema(close: pd.Series, window: int = 20) -> pd.Series:
    """EMA with span ``window``, recursion from the first value (``adjust=False``); NaN for the
    first ``window-1`` rows."""
    _check_window("ema.window", window)
    raw = ta.trend.EMAIndicator(close, window=window, fillna=False).ema_indicator()
    return _named(raw, f"ema_{window}")


def sma(close: pd.Series, window: int = 50) -> pd.Series:
    """Simple moving average; NaN for the first ``window-1`` rows."""
    _check_window("sma.window", window)
    raw = ta.trend.SMAIndicator(close, window=window, fillna=False).sma_indicator()
    return _named(raw, f"sma_{window}")


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """max(high-low, |high-prev close|, |low-prev close|); row 0 is high-low (as ``ta``)."""
    prev = close.shift(1)
    ranges = np.fmax(high - low, np.fmax((high - prev).abs(), (low - prev).abs()))
    return _named(pd.Series(ranges, index=close.index), "true_range")


def atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 14) -> pd.Series:
    """Wilder ATR, vectorized: seeded at row ``window-1`` with the mean of the first ``window``
    true ranges, then ``atr_t = atr_{t-1} + (tr_t - atr_{t-1}) / window`` (an EWM with
    ``alpha=1/window``). Equals ``ta``'s loop after warm-up; NaN (not ``ta``'s 0) before."""
    _check_window("atr.window", window)
    tr = true_range(high, low, close)
    seeded = _mask_head(tr, window - 1)
    if len(tr) >= window:
        seeded.iloc[window - 1] = tr.iloc[:window].mean()
    return _named(seeded.ewm(alpha=1.0 / window, adjust=False).mean(), f"atr_{window}")


def bollinger(close: pd.Series, window: int = 20, k: float = 2.0) -> pd.DataFrame:
    """Bollinger bands (population std, ``ta``): ``bb_mid/upper/lower/pctb_{window}``.
    %b = (close - lower) / (upper - lower), NaN where the bands coincide."""
    _check_window("bollinger.window", window)
    bands = ta.volatility.BollingerBands(close, window=window, window_dev=k, fillna=False)
    columns = {
        "mid": bands.bollinger_mavg(),
        "upper": bands.bollinger_hband(),
        "lower": bands.bollinger_lband(),
        "pctb": bands.bollinger_pband(),
    }
    return pd.DataFrame({f"bb_{key}_{window}": _named(col, f"bb_{key}_{window}")
                         for key, col in columns.items()}, index=close.index)


def volume_zscore(volume: pd.Series, window: int = 20) -> pd.Series:
    """(volume - mean) / std of the previous ``window`` bars' volume."""
    _check_window("volume_zscore.window", window)
    return _zscore_to_baseline(volume, window, f"volume_z_{window}")


def volume_ratio(volume: pd.Series, window: int = 20) -> pd.Series:
    """volume / mean volume of the previous ``window`` bars (the current bar is excluded)."""
    _check_window("volume_ratio.window", window)
    return _ratio_to_baseline(volume, window, f"volume_ratio_{window}")


def drawdown(close: pd.Series, high: pd.Series) -> pd.Series:
    """close / running all-time high - 1 (<= 0). The ATH is the highest high of the history
    available up to and including the bar, so on a truncated history it is that history's."""
    return _named(close / high.cummax() - 1.0, "drawdown_ath")


def infer_bar_duration(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The bar length: the smallest spacing of the index (gaps only make spacings larger)."""
    if len(index) < 2:
        raise StrategyError(f"features: bar_duration: expected >= 2 bars to infer it, "
                            f"found {len(index)}; pass bar_duration")
    return pd.Timedelta(np.diff(index.asi8).min(), unit=index.unit)


def _week_start(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Monday 00:00 UTC of each timestamp's ISO week (weeks run Monday..Sunday)."""
    return index.normalize() - pd.to_timedelta(index.day_of_week, unit="D")


def ema_weekly(close: pd.Series, weeks: int = 200,
               bar_duration: pd.Timedelta | None = None) -> pd.Series:
    """EMA (span ``weeks``) of WEEKLY closes mapped back onto the bars.

    A week runs Monday 00:00 to Sunday 24:00 UTC; its close is the close of its last bar and is
    known only at the end of Sunday, so a bar sees the weeks that ended by its own close
    (open + ``bar_duration``, inferred from the index by default). The EMA recursion starts from
    the first weekly close (``adjust=False``) and the first ``weeks-1`` weekly values are masked
    as warm-up. This reproduces 68,356 at 2026-02-01 on Binance daily BTCUSDT; seeding with the
    SMA of the first ``weeks`` closes gives 68,037 instead, the 200-week SMA is about 57,943.
    """
    _check_window("ema_weekly.weeks", weeks)
    index = close.index
    duration = infer_bar_duration(index) if bar_duration is None else bar_duration
    weekly = close.groupby(_week_start(index)).last().dropna()
    weekly_ema = _mask_head(weekly.ewm(span=weeks, adjust=False).mean(), weeks - 1)
    week_end = weekly.index + pd.Timedelta(days=7)
    seen = week_end.searchsorted(index + duration, side="right") - 1
    values = np.where(seen >= 0, weekly_ema.to_numpy()[np.maximum(seen, 0)], np.nan)
    return _named(pd.Series(values, index=index), f"ema_weekly_{weeks}")


def _ema_weekly_warmup(index: pd.DatetimeIndex, weeks: int) -> int:
    """Bars that close before the end of the ``weeks``-th week of data (no whole-week gaps)."""
    first_end = _week_start(index[:1])[0] + pd.Timedelta(days=7 * weeks)
    return int(np.sum(index + infer_bar_duration(index) < first_end))


# --- daily on-chain, ETF and derivatives series ----------------------------------------------

def hash_ribbons(hash_rate: pd.Series, fast: int = 30, slow: int = 60) -> pd.DataFrame:
    """Hash ribbons on a daily hash-rate series: ``hash_sma_{fast}``, ``hash_sma_{slow}``,
    ``capitulation`` (state: fast SMA < slow SMA) and ``recovery`` (event: the first day the fast
    SMA is back at or above the slow one after a capitulation). The ribbon is complete or absent:
    both SMAs are NaN for the first ``max(fast, slow) - 1`` rows, and both booleans are False
    where either SMA is NaN. Dates are those of the daily value; publication lag is applied
    elsewhere.
    """
    _check_window("hash_ribbons.fast", fast)
    _check_window("hash_ribbons.slow", slow)
    fast_sma = hash_rate.rolling(fast, min_periods=fast).mean()
    fast_sma = _named(_mask_head(fast_sma, max(fast, slow) - 1), f"hash_sma_{fast}")
    slow_sma = _named(hash_rate.rolling(slow, min_periods=slow).mean(), f"hash_sma_{slow}")
    capitulation = (fast_sma < slow_sma).to_numpy()
    valid = (fast_sma.notna() & slow_sma.notna()).to_numpy()
    was_capitulating = np.concatenate([[False], capitulation[:-1]])
    recovery = valid & ~capitulation & was_capitulating
    return pd.DataFrame({fast_sma.name: fast_sma, slow_sma.name: slow_sma,
                         "capitulation": capitulation, "recovery": recovery},
                        index=hash_rate.index)


def etf_flow_sum(net_flow: pd.Series, days: int = 12) -> pd.Series:
    """Sum of net ETF flows over the last ``days`` trading-day rows (daily series only)."""
    _check_window("etf_flow_sum.days", days)
    return _named(net_flow.rolling(days, min_periods=days).sum(), f"etf_flow_{days}")


def oi_change(open_interest: pd.Series, n: int = 1) -> pd.Series:
    """Fractional change of open interest over ``n`` rows (-0.249 = -24.9%)."""
    _check_window("oi_change.n", n)
    return _named(open_interest.pct_change(n, fill_method=None), f"oi_change_{n}")


def liq_intensity(long_liquidations: pd.Series, window: int = 30) -> pd.Series:
    """Long liquidations / their mean over the previous ``window`` rows."""
    _check_window("liq_intensity.window", window)
    return _ratio_to_baseline(long_liquidations, window, f"liq_intensity_{window}")


def funding_zscore(funding_rate: pd.Series, window: int = 30) -> pd.Series:
    """(funding - mean) / std of the previous ``window`` funding values; NaN where that
    baseline is constant (Binance often sits at exactly 0.0001 for weeks)."""
    _check_window("funding_zscore.window", window)
    return _zscore_to_baseline(funding_rate, window, f"funding_z_{window}")


# --- registry ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Feature:
    """A registry entry: ``compute(frame, **params)`` on a frame of kind ``source`` (``bars`` or
    a daily data set: ``hashrate``, ``etf_flows``, ``open_interest``, ``liquidations``,
    ``funding``), and ``warmup(frame, **params)``: how many leading rows are NaN by design."""

    compute: Callable[..., pd.Series | pd.DataFrame]
    warmup: Callable[..., int]
    source: str
    params: Mapping[str, Any] = field(default_factory=dict)


def point_in_time(daily: pd.DataFrame, series: pd.DataFrame, bars_index: pd.DatetimeIndex,
                  freq: str | None = None) -> pd.DataFrame:
    """Put features computed on an external series' own clock onto the bar clock.

    ``series`` is the raw external frame (with ``published_at``) the features in ``daily`` were
    computed from, on the same index. Bar ``t`` sees a row only once it was published by the
    bar's close; earlier bars get NaN (see :func:`backtest.external.align_to_bars`).
    """
    frame = daily.assign(published_at=series["published_at"].reindex(daily.index))
    frame.attrs.update(series.attrs)  # provenance, so a stale file is named in the error
    return align_to_bars(frame, bars_index, list(daily.columns), freq)


def _window_minus_one(frame: pd.DataFrame, window: int, **_: Any) -> int:
    return window - 1


def _window_rows(frame: pd.DataFrame, window: int, **_: Any) -> int:
    return window


FEATURES: dict[str, Feature] = {
    "rsi": Feature(lambda f, window: rsi(f["close"], window), _window_rows, "bars",
                   {"window": 14}),
    "ema": Feature(lambda f, window: ema(f["close"], window), _window_minus_one, "bars",
                   {"window": 20}),
    "sma": Feature(lambda f, window: sma(f["close"], window), _window_minus_one, "bars",
                   {"window": 50}),
    "atr": Feature(lambda f, window: atr(f["high"], f["low"], f["close"], window),
                   _window_minus_one, "bars", {"window": 14}),
    "bollinger": Feature(lambda f, window: bollinger(f["close"], window), _window_minus_one,
                         "bars", {"window": 20}),
    "volume_zscore": Feature(lambda f, window: volume_zscore(f["volume"], window), _window_rows,
                             "bars", {"window": 20}),
    "volume_ratio": Feature(lambda f, window: volume_ratio(f["volume"], window), _window_rows,
                            "bars", {"window": 20}),
    "drawdown": Feature(lambda f: drawdown(f["close"], f["high"]), lambda f: 0, "bars"),
    "ema_weekly": Feature(lambda f, weeks: ema_weekly(f["close"], weeks),
                          lambda f, weeks: _ema_weekly_warmup(f.index, weeks), "bars",
                          {"weeks": 200}),
    "hash_rate": Feature(lambda f: _named(derive_hash_rate_ehs(f["difficulty"], f["blocks_mined"]),
                                          "hash_rate_ehs"),
                         lambda f: 0, "hashrate"),
    "hash_ribbons": Feature(lambda f, fast, slow: hash_ribbons(f["hash_rate_ehs"], fast, slow),
                            lambda f, fast, slow: max(fast, slow) - 1, "hashrate",
                            {"fast": 30, "slow": 60}),
    "etf_flow_sum": Feature(lambda f, window: etf_flow_sum(f["net_flow_usd"], window),
                            _window_minus_one, "etf_flows", {"window": 12}),
    "oi_change": Feature(lambda f, window: oi_change(f["open_interest_usd"], window),
                         _window_rows, "open_interest", {"window": 1}),
    "liq_intensity": Feature(lambda f, window: liq_intensity(f["long_liq_usd"], window),
                             _window_rows, "liquidations", {"window": 30}),
    "funding_zscore": Feature(lambda f, window: funding_zscore(f["funding_rate"], window),
                              _window_rows, "funding", {"window": 30}),
}
