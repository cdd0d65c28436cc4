"""break_below_74k: de-risk or short on a confirmed break of a support level.

From the February 2026 crash: "watch 74,400 like a hawk; if that fails, we're looking at 66,000".
``mode = "derisk"`` holds the asset and steps to cash on a confirmed break (re-entering on a
confirmed reclaim); ``mode = "short"`` shorts the break with a take-profit at ``target`` and a stop
above ``stop_level``. Confirmation is ``confirm_bars`` consecutive closes beyond the level.

``level_mode`` says how ``level``, ``target`` and ``stop_level`` are read
(:data:`backtest.features.levels.LEVEL_MODES`): prices (``"absolute"``, the default: 74,400 /
66,000 / 76,000 on BTC, 2,200 / 1,800 / 2,400 on ETH), or fractions of the running all-time high
(``"ath_fraction"``: 0.59 / 0.523 / 0.602 of the 126,200 ATH of October 2025) or of the
``ema_weeks``-week EMA of weekly closes (``"ema_200w"``). ``level_mode`` and ``ema_weeks`` are
fixed (not searched): the scale of the three levels depends on them, so a search over one range of
levels across modes would mostly sample levels that mean nothing. The search space holds BTC
prices: a default for ``optimize``, not a limit on ``run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.levels import (
    LEVEL_MODES,
    anchored,
    cross_above,
    cross_below,
    latch,
    level_series,
    unreachable_note,
)
from backtest.strategy.contract import Choice, FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    level: float = 74_400.0
    confirm_bars: int = 1
    target: float = 66_000.0
    stop_level: float = 76_000.0
    mode: str = "short"
    level_mode: str = "absolute"
    ema_weeks: int = 200

    def __post_init__(self) -> None:
        if self.level_mode not in LEVEL_MODES:
            raise ValueError(f"level_mode: expected one of {', '.join(LEVEL_MODES)}, found "
                             f"{self.level_mode!r}")
        for name in ("level", "target", "stop_level"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a price (or fraction) > 0, found "
                                 f"{getattr(self, name):g}")
        if self.confirm_bars < 1 or self.ema_weeks < 1:
            raise ValueError(f"confirm_bars, ema_weeks: expected integers >= 1, found "
                             f"{self.confirm_bars}, {self.ema_weeks}")
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
    """What ``level``, ``target`` and ``stop_level`` are multiples of at each bar (``anchor``):
    1.0 for prices, the running ATH or the weekly EMA for fractions. It reads only
    ``level_mode`` and ``ema_weeks``, so a search computes it once for all its sets (the
    optimizer's feature cache) and each set's levels are one multiplication in :func:`signals`
    (the same values as ``level_series`` of each level: ``value * (1.0 * anchor)``)."""
    return pd.DataFrame({"anchor": level_series(bars, anchored(params.level_mode, 1.0,
                                                               params.ema_weeks))})


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Decide at each close; fills follow the engine's convention (next bar's open)."""
    anchor = feats["anchor"].to_numpy()

    def on_clock(value: float, name: str) -> pd.Series:
        return pd.Series(value * anchor, index=bars.index, name=name, copy=False)

    def at_last_bar(value: float) -> float:
        return float(value * anchor[-1]) if len(anchor) else float("nan")

    level = on_clock(params.level, "level")
    broke = cross_below(bars, level, confirm="close", hold=params.confirm_bars)
    no = pd.Series(False, index=bars.index)
    levels = {"level": at_last_bar(params.level)}
    notes = unreachable_note(bars, level) or ({} if params.level_mode == "absolute" else {
        "level": f"{params.level_mode}: fractions of the anchor (levels shown at the last bar)"})
    if params.mode == "derisk":
        reclaimed = cross_above(bars, level, confirm="close", hold=params.confirm_bars)
        # holding is a state: out from a confirmed break until a confirmed reclaim, in otherwise,
        # so a run that starts at any bar holds unless the level is broken at that moment
        holding = ~latch(broke, reclaimed)
        return Signals(long_entries=holding, long_exits=broke, levels=levels, notes=notes)
    target = on_clock(params.target, "target_price")
    stop = on_clock(params.stop_level, "stop_price")
    levels |= {"target": at_last_bar(params.target), "stop": at_last_bar(params.stop_level)}
    return Signals(
        long_entries=no, long_exits=no, short_entries=broke, short_exits=no,
        stop_price=stop, target_price=target, levels=levels, notes=notes,
    )


SPEC = StrategySpec(
    name="break_below_74k",
    summary="Short (or step to cash) on a confirmed close below 74,400 (or an ATH / 200w-EMA "
            "fraction); target 66,000, stop 76,000",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
)
