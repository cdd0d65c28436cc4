"""fear_greed_contrarian: scale in at extreme fear, scale out at greed.

The Crypto Fear & Greed index ("fear_greed", bundled from Alternative.me; day D is public at D+1
00:00 UTC) goes onto the bar clock with :func:`backtest.features.indicators.point_in_time`. While
the index is at or below ``fear_max`` the strategy buys a tranche of ``tranche_fraction`` x initial
cash on the first bar of the fear spell and again every ``spacing_bars`` bars while it lasts (the
engine caps each tranche by the cash left). Every bar with the index at or above ``greed_min`` exits
the whole position. No index (before February 2018): no signal. Imports only
backtest.types/features and backtest.strategy.contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import point_in_time
from backtest.strategy.contract import FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    fear_max: float = 15.0
    greed_min: float = 70.0
    tranche_fraction: float = 0.25
    spacing_bars: int = 7

    def __post_init__(self) -> None:
        if not self.fear_max < self.greed_min:
            raise ValueError(f"expected fear_max < greed_min, found {self.fear_max:g} and "
                             f"{self.greed_min:g}")


SPACE = {
    "fear_max": FloatRange(5.0, 35.0),
    "greed_min": FloatRange(50.0, 95.0),
    "tranche_fraction": FloatRange(0.05, 1.0),
    "spacing_bars": IntRange(1, 60),
}


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``fear_greed``: the latest index value published by each bar's close (NaN before)."""
    index = context["fear_greed"]
    return point_in_time(index[["value"]], index, bars.index).astype("float64").rename(
        columns={"value": "fear_greed"})


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Tranches every ``spacing_bars`` bars of a fear spell; exit on greed."""
    value = feats["fear_greed"]
    fear = (value <= params.fear_max).to_numpy()
    spell = (~fear).cumsum()  # constant through a fear spell; age 0 on its first bar
    age = pd.Series(fear.astype(int), index=bars.index).groupby(spell).cumsum() - 1
    entries = pd.Series(fear & (age % params.spacing_bars == 0).to_numpy(), index=bars.index)
    return Signals(
        long_entries=entries.rename("long_entries"),
        long_exits=(value >= params.greed_min).rename("long_exits"),
        entry_fraction=pd.Series(params.tranche_fraction, index=bars.index).where(entries),
        notes={"fear_greed": f"Alternative.me index: tranche at <= {params.fear_max:g}, exit at "
                             f">= {params.greed_min:g}"},
    )


SPEC = StrategySpec(
    name="fear_greed_contrarian",
    summary="Scale in at extreme fear (index <= 15), scale out at greed (>= 70)",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
    requires=("fear_greed",),
)
