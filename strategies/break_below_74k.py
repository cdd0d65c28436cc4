"""break_below_74k: de-risk or short on a confirmed break of a support level.

From the February 2026 crash: "watch 74,400 like a hawk; if that fails, we're looking at 66,000".
``mode = "derisk"`` holds the asset and steps to cash on a confirmed break (re-entering on a
confirmed reclaim); ``mode = "short"`` shorts the break with a take-profit at ``target`` and a stop
above ``stop_level``. Confirmation is ``confirm_bars`` consecutive closes beyond the level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.features.levels import cross_above, cross_below
from backtest.strategy.contract import Choice, FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    level: float = 74_400.0
    confirm_bars: int = 1
    target: float = 66_000.0
    stop_level: float = 76_000.0
    mode: str = "short"

    def __post_init__(self) -> None:
        if self.mode == "short" and not self.target < self.level < self.stop_level:
            raise ValueError(f"expected target < level < stop_level, found {self.target:g}, "
                             f"{self.level:g}, {self.stop_level:g}")


SPACE = {
    "level": FloatRange(60_000.0, 90_000.0),
    "confirm_bars": IntRange(1, 12),
    "target": FloatRange(40_000.0, 74_000.0),
    "stop_level": FloatRange(70_000.0, 95_000.0),
    "mode": Choice(("derisk", "short")),
}


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """No indicator is needed: the rule reads closes against fixed levels."""
    return pd.DataFrame(index=bars.index)


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Decide at each close; fills follow the engine's convention (next bar's open)."""
    broke = cross_below(bars, params.level, confirm="close", hold=params.confirm_bars)
    no = pd.Series(False, index=bars.index)
    levels = {"level": params.level}
    if params.mode == "derisk":
        reclaimed = cross_above(bars, params.level, confirm="close", hold=params.confirm_bars)
        # holding is a state: out from a confirmed break until a confirmed reclaim, in otherwise,
        # so a run that starts at any bar holds unless the level is broken at that moment
        out = pd.Series(np.where(broke, 1.0, np.where(reclaimed, 0.0, np.nan)), index=bars.index)
        holding = out.ffill().fillna(0.0).eq(0.0) & ~broke
        return Signals(long_entries=holding, long_exits=broke, levels=levels)
    levels |= {"target": params.target, "stop": params.stop_level}
    return Signals(
        long_entries=no, long_exits=no, short_entries=broke, short_exits=no,
        stop_price=pd.Series(params.stop_level, index=bars.index),
        target_price=pd.Series(params.target, index=bars.index),
        levels=levels,
    )


SPEC = StrategySpec(
    name="break_below_74k",
    summary="Short (or step to cash) on a confirmed close below 74,400; target 66,000, stop 76,000",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
)
