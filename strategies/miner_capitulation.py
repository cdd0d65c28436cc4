"""miner_capitulation: buy when the hash ribbon recovers after a miner capitulation.

Hash ribbons (:func:`backtest.features.indicators.hash_ribbons`) on the daily hash rate
("hash_rate", bundled, derived from difficulty x blocks mined): a capitulation is the ``fast``-day
mean of the hash rate below the ``slow``-day mean; a recovery is the first day it is back at or
above after a capitulation of at least ``min_capitulation_days`` days (shorter dips are noise). The
daily ribbon goes onto the bar clock with :func:`backtest.features.indicators.point_in_time`, so a
recovery is seen on the first bar whose close is at or after its publication (day D is public at D+1
00:00 UTC by default: on daily bars that is the bar opening on D itself).

Entry: the first bar of a recovery episode (from the recovery until the next capitulation is
known) within ``max_wait_bars`` of it on which momentum agrees: ``momentum = "none"`` (the
recovery bar itself), ``"sma"`` (close > SMA(``momentum_window``)) or ``"rsi_rising"`` (RSI(14)
above its value ``momentum_window`` bars earlier). Exit: ``hold_bars`` bars after the entry fill
(the engine's time exit), or when a new capitulation becomes known (``exit_on_capitulation``). A
trailing stop is an execution setting (``[execution] tsl_stop``). Imports only backtest.types,
backtest.features and backtest.strategy.contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import hash_ribbons, point_in_time, rsi, sma
from backtest.features.levels import state_to_events
from backtest.strategy.contract import Choice, IntRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    fast: int = 30
    slow: int = 60
    min_capitulation_days: int = 7
    momentum: str = "none"
    momentum_window: int = 20
    max_wait_bars: int = 30
    hold_bars: int = 90
    exit_on_capitulation: bool = True

    def __post_init__(self) -> None:
        if not self.fast < self.slow:
            raise ValueError(f"expected fast < slow, found {self.fast} and {self.slow}")


SPACE = {
    "fast": IntRange(10, 40),
    "slow": IntRange(45, 120),
    "min_capitulation_days": IntRange(1, 60),
    "momentum": Choice(("none", "sma", "rsi_rising")),
    "momentum_window": IntRange(5, 100),
    "max_wait_bars": IntRange(1, 120),
    "hold_bars": IntRange(5, 365),
    "exit_on_capitulation": Choice((True, False)),
}


def daily_ribbon(hash_rate: pd.Series, params: Params) -> pd.DataFrame:
    """The ribbon on the daily clock, with ``recovery`` kept only after a run of at least
    ``min_capitulation_days`` capitulation days."""
    ribbon = hash_ribbons(hash_rate, params.fast, params.slow)
    cap = ribbon["capitulation"]
    run = cap.astype(int).groupby((~cap).cumsum()).cumsum()  # consecutive capitulation days
    before = run.shift(1, fill_value=0)
    ribbon["recovery"] = ribbon["recovery"] & (before >= params.min_capitulation_days)
    return ribbon


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Ribbon state as known at each bar's close, plus the momentum filter."""
    raw = context["hash_rate"]
    ribbon = daily_ribbon(raw["hash_rate_ehs"], params)
    known = point_in_time(ribbon, raw, bars.index)
    for state in ("capitulation", "recovery"):  # no published row yet: no state
        known[state] = known[state].astype("boolean").fillna(False).astype(bool)
    close = bars["close"]
    if params.momentum == "sma":
        momentum = close > sma(close, params.momentum_window)
    elif params.momentum == "rsi_rising":
        strength = rsi(close, 14)
        momentum = strength > strength.shift(params.momentum_window)
    else:
        momentum = pd.Series(True, index=bars.index)
    return known.assign(momentum_ok=momentum.astype(bool))


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Enter once per recovery episode; exit on time or on a newly known capitulation."""
    capitulating = feats["capitulation"]
    # the daily row in force is a recovery row: its first bar is the first to know it
    recovered = state_to_events(feats["recovery"])
    episode = recovered.cumsum()
    age = recovered.groupby(episode).cumcount()  # bars since the recovery became known
    ok = ((episode > 0) & ~capitulating & feats["momentum_ok"]
          & (age < params.max_wait_bars)).astype(bool)
    first_ok = ok.groupby(episode).cumsum() == 1
    entries = (ok & first_ok).rename("long_entries")
    exits = pd.Series(False, index=bars.index)
    if params.exit_on_capitulation:
        exits = state_to_events(capitulating)
    return Signals(
        long_entries=entries, long_exits=exits.rename("long_exits"),
        max_bars_held=params.hold_bars,
        notes={"hash_rate": "bundled difficulty x blocks mined -> EH/s; ribbon "
                            f"{params.fast}/{params.slow}-day means, point in time"},
    )


SPEC = StrategySpec(
    name="miner_capitulation",
    summary="Long when the hash ribbon recovers after a miner capitulation (30d > 60d again)",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
    requires=("hash_rate",),
)
