"""reclaim_80k: go long only after a confirmed, volume-backed reclaim of a resistance level.

From the February 2026 crash: "until BTC can reclaim and hold 80,000 on high volume, the path of
least resistance is down". The entry is a level event
(:func:`backtest.features.levels.cross_above`): a fresh crossing confirmed by ``confirm`` (close or
wick), ``hold`` consecutive bars beyond the level, and volume >= ``volume_k`` x its mean over the
previous ``volume_window`` bars (``volume_k = 0`` drops the volume condition). The level is absolute
(``level``) or, so that the rule means something for any asset and year, ``ath_fraction`` x the
running all-time high (``level_mode = "ath_fraction"``; 80,000 is 63.4% of the 126,200 ATH of
October 2025) or ``ema_fraction`` x the ``ema_weeks``-week EMA of weekly closes
(``level_mode = "ema_200w"``). The search space holds BTC prices: a default for ``optimize``, not a
limit on ``run``.

Exits: ``hold_bars`` bars after the entry fill (the engine's time exit), earlier on a close
below level x (1 - ``buffer_pct``), or by the stop at level x (1 - ``stop_pct``) set when the
position opens. A trailing stop is an execution setting (``[execution] tsl_stop``), not a
strategy parameter.
Imports only backtest.types, backtest.features.levels and backtest.strategy.contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.levels import (
    LEVEL_MODES,
    Level,
    anchored,
    cross_above,
    level_series,
    unreachable_note,
)
from backtest.strategy.contract import Choice, FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    level: float = 80_000.0
    level_mode: str = "absolute"
    ath_fraction: float = 0.634
    ema_fraction: float = 1.17
    ema_weeks: int = 200
    confirm: str = "close"
    hold: int = 1
    volume_k: float = 1.5
    volume_window: int = 20
    rearm_pct: float = 0.0
    hold_bars: int = 10
    buffer_pct: float = 0.02
    stop_pct: float = 0.05

    def __post_init__(self) -> None:
        for name in ("level", "ath_fraction", "ema_fraction"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a number > 0, found {getattr(self, name):g}")
        for name in ("buffer_pct", "stop_pct", "rearm_pct"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a fraction in [0, 1), found "
                                 f"{getattr(self, name):g}")


SPACE = {
    "level": FloatRange(60_000.0, 100_000.0),
    "level_mode": Choice(LEVEL_MODES),
    "ath_fraction": FloatRange(0.4, 0.95),
    "ema_fraction": FloatRange(0.6, 1.6),
    "ema_weeks": IntRange(50, 250),
    "confirm": Choice(("close", "wick")),
    "hold": IntRange(1, 5),
    "volume_k": FloatRange(0.0, 3.0),
    "volume_window": IntRange(5, 60),
    "rearm_pct": FloatRange(0.0, 0.05),
    "hold_bars": IntRange(1, 60),
    "buffer_pct": FloatRange(0.0, 0.1),
    "stop_pct": FloatRange(0.01, 0.2),
}


def the_level(params: Params) -> Level:
    """The level the rule watches: absolute, or a fraction of the running ATH or weekly EMA."""
    value = {"ath_fraction": params.ath_fraction, "ema_200w": params.ema_fraction}
    return anchored(params.level_mode, value.get(params.level_mode, params.level),
                    params.ema_weeks)


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The level on the bar clock (constant, or moving with the ATH known at each bar)."""
    return pd.DataFrame({"level": level_series(bars, the_level(params))})


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Long on a confirmed reclaim; exit on time, on a close back below the buffer, or by stop."""
    level = feats["level"]
    entries = cross_above(bars, level, confirm=params.confirm, hold=params.hold,
                          rearm_pct=params.rearm_pct,
                          volume_k=params.volume_k if params.volume_k > 0 else None,
                          volume_window=params.volume_window)
    lost = bars["close"] < level * (1.0 - params.buffer_pct)
    exits = lost.rename("long_exits")
    stop = (level * (1.0 - params.stop_pct)).rename("stop_price")
    last = float(level.iloc[-1]) if len(level) else float("nan")
    return Signals(
        long_entries=entries.rename("long_entries"), long_exits=exits, stop_price=stop,
        max_bars_held=params.hold_bars,
        levels={"level": last, "exit_below": last * (1.0 - params.buffer_pct),
                "stop": last * (1.0 - params.stop_pct)},
        notes=unreachable_note(bars, level) or {
            "level": "absolute" if params.level_mode == "absolute"
            else f"{params.level_mode}: {the_level(params)} (levels shown at the last bar)"},
    )


SPEC = StrategySpec(
    name="reclaim_80k",
    summary="Long after a confirmed, high-volume reclaim of 80,000 (or an ATH / 200w-EMA "
            "fraction)",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
)
