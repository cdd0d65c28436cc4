"""my_strategy: buy fear at a support, with a stop below it and a holding limit.

The rule (docs/strategies.md walks through every line): go long at the close of a bar that
(1) closes within ``band_pct`` above a support level, (2) has RSI(``rsi_window``) at or below
``rsi_max`` (oversold), and (3) sees a fear & greed index at or below ``fear_max`` (extreme fear,
the index as published by that bar's close). The position is closed ``hold_bars`` bars after its
entry fill, earlier on a close ``take_pct`` above the level, or by the stop ``stop_pct`` below the
level.

The support is ``level`` x the running all-time high (``level_mode = "ath_fraction"``, the
default: 0.555 x 126,200 = 70,000 for BTC in February 2026), x the ``ema_weeks``-week EMA
(``"ema_200w"``), or a price (``"absolute"``: ``level = 70000`` for BTC, ``2000`` for ETH; a value
outside the search space is fine for a run). One parameter makes the rule work on any asset and
in any year. ``level_mode`` and ``ema_weeks`` are fixed (not searched): the scale of ``level``
depends on them, and the space's ``level`` range is a fraction of the ATH.

Run it:  crashbt run docs/examples/my_strategy.toml --allow-external-strategies
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import point_in_time, rsi
from backtest.features.levels import LEVEL_MODES, anchored, level_series
from backtest.strategy.contract import FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    """Frozen: a run's parameters never change. ``__post_init__`` checks only what must hold for
    the rule to mean anything; how far ``optimize`` searches is the SPACE's business."""

    level_mode: str = "ath_fraction"
    level: float = 0.555
    ema_weeks: int = 200
    band_pct: float = 0.03
    rsi_window: int = 14
    rsi_max: float = 35.0
    fear_max: float = 25.0
    hold_bars: int = 10
    take_pct: float = 0.08
    stop_pct: float = 0.05

    def __post_init__(self) -> None:
        if self.level_mode not in LEVEL_MODES:
            raise ValueError(f"level_mode: expected one of {', '.join(LEVEL_MODES)}, found "
                             f"{self.level_mode!r}")
        if not self.level > 0:
            raise ValueError(f"level: expected a price (or fraction) > 0, found {self.level:g}")
        if not 0 < self.stop_pct < 1:
            raise ValueError(f"stop_pct: expected a fraction in (0, 1), found {self.stop_pct:g}")
        if not 0 <= self.rsi_max <= 100 or not 0 <= self.fear_max <= 100:
            raise ValueError(f"rsi_max, fear_max: expected values in 0..100, found "
                             f"{self.rsi_max:g}, {self.fear_max:g}")


#: the default search space of `crashbt optimize` (a config's [optimize.params] narrows it)
SPACE = {
    "level": FloatRange(0.3, 0.9),  # a fraction of the ATH, the default level_mode
    "band_pct": FloatRange(0.0, 0.1),
    "rsi_window": IntRange(7, 28),
    "rsi_max": FloatRange(15.0, 50.0),
    "fear_max": FloatRange(5.0, 50.0),
    "hold_bars": IntRange(1, 60),
    "take_pct": FloatRange(0.01, 0.3),
    "stop_pct": FloatRange(0.01, 0.2),
}


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Everything the rule reads, on the bar index, each value known at that bar's close."""
    index = context["fear_greed"]  # the raw series with its `published_at` column
    fear = point_in_time(index[["value"]], index, bars.index)["value"].astype("float64")
    return pd.DataFrame({
        "level": level_series(bars, anchored(params.level_mode, params.level, params.ema_weeks)),
        "rsi": rsi(bars["close"], params.rsi_window),
        "fear_greed": fear,
    })


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Decisions at each close; the engine fills them at the next bar's open."""
    close, level = bars["close"], feats["level"]
    near_support = (close >= level) & (close <= level * (1.0 + params.band_pct))
    entries = near_support & (feats["rsi"] <= params.rsi_max) & (
        feats["fear_greed"] <= params.fear_max)  # NaN compares False: no value, no signal
    exits = close >= level * (1.0 + params.take_pct)
    last = float(level.iloc[-1]) if len(level) else float("nan")
    return Signals(
        long_entries=entries.rename("long_entries"),
        long_exits=exits.rename("long_exits"),
        stop_price=(level * (1.0 - params.stop_pct)).rename("stop_price"),
        max_bars_held=params.hold_bars,  # the engine closes the position hold_bars after its fill
        levels={"support": last, "stop": last * (1.0 - params.stop_pct)},
        notes={"level": f"{params.level_mode} {params.level:g} (levels shown at the last bar)"},
    )


SPEC = StrategySpec(
    name="my_strategy",
    summary="Buy oversold extreme fear within a band above a support; stop below it",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
    requires=("fear_greed",),
)
