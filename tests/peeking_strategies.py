"""Test-only strategies for the look-ahead check: two that peek and one honest reference.

* ``peek_one_bar``: reads ``close.shift(-1)``, the next bar's close, at the current close.
* ``zero_lag_external``: reads the fear & greed value at its own timestamp (publication lag
  ignored), so the daily bar of day D sees the value of day D+1 at its close (D+1 00:00 UTC),
  a day before that value is public.
* ``by_date_external``: the naive join, fear & greed reindexed onto the bars by calendar date.
  On daily bars that is honest (day D's value is public at D+1 00:00, the close of bar D); on
  hourly bars every bar of day D sees a value that is only public at its end.
* ``honest_external``: the same rule through :func:`backtest.features.point_in_time`; clean with
  the default lag, caught when a config sets ``[external.fear_greed] lag = "0s"``.
* ``sma_trend``: honest, long while the close is above its 50-bar SMA (NaN warm-up).
* ``bfill_sma``: the same with the warm-up back-filled (a value from the future).
* ``zero_fill_sma``: the same with the warm-up filled with 0.0 (a placeholder).

Not registered in ``strategies.REGISTRY``: tests hand the specs to ``backtest.checks`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import point_in_time, sma
from backtest.strategy.contract import FloatRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    fear: float = 25.0


SPACE = {"fear": FloatRange(0.0, 50.0)}


def _long_when(condition: pd.Series, exit_when: pd.Series) -> Signals:
    return Signals(long_entries=condition.fillna(False).astype(bool),
                   long_exits=exit_when.fillna(False).astype(bool))


def _peek_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                   ) -> pd.DataFrame:
    return pd.DataFrame({"next_close": bars["close"].shift(-1)}, index=bars.index)


def _peek_signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    return _long_when(feats["next_close"] > bars["close"], feats["next_close"] < bars["close"])


def _fear_signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    value = feats["fear_greed"]
    return _long_when(value < params.fear, value > 100 - params.fear)


def _zero_lag_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                       ) -> pd.DataFrame:
    raw = context["fear_greed"]
    at_timestamp = raw.assign(published_at=raw.index)
    return point_in_time(raw[["value"]].rename(columns={"value": "fear_greed"}), at_timestamp,
                         bars.index)


def _by_date_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                      ) -> pd.DataFrame:
    values = context["fear_greed"]["value"].reindex(bars.index.normalize()).to_numpy()
    return pd.DataFrame({"fear_greed": values}, index=bars.index)


def _honest_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                     ) -> pd.DataFrame:
    raw = context["fear_greed"]
    return point_in_time(raw[["value"]].rename(columns={"value": "fear_greed"}), raw, bars.index)


def _sma_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                  ) -> pd.DataFrame:
    return pd.DataFrame({"sma_50": sma(bars["close"], 50)}, index=bars.index)


def _bfill_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                    ) -> pd.DataFrame:
    return _sma_features(bars, params, context).bfill()


def _zero_fill_features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]
                        ) -> pd.DataFrame:
    return _sma_features(bars, params, context).fillna(0.0)


def _sma_signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    return _long_when(bars["close"] > feats["sma_50"], bars["close"] < feats["sma_50"])


def _spec(name: str, features: object, signals: object, requires: tuple[str, ...] = ()
          ) -> StrategySpec:
    return StrategySpec(name=name, summary=f"test strategy {name}", params=Params, space=SPACE,
                        features=features, signals=signals, requires=requires)  # type: ignore


PEEK_ONE_BAR = _spec("peek_one_bar", _peek_features, _peek_signals)
ZERO_LAG_EXTERNAL = _spec("zero_lag_external", _zero_lag_features, _fear_signals, ("fear_greed",))
BY_DATE_EXTERNAL = _spec("by_date_external", _by_date_features, _fear_signals, ("fear_greed",))
HONEST_EXTERNAL = _spec("honest_external", _honest_features, _fear_signals, ("fear_greed",))
SMA_TREND = _spec("sma_trend", _sma_features, _sma_signals)
BFILL_SMA = _spec("bfill_sma", _bfill_features, _sma_signals)
ZERO_FILL_SMA = _spec("zero_fill_sma", _zero_fill_features, _sma_signals)
