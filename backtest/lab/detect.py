"""Crash events, point in time: each detector is a pure function of (bars, context).

``bars`` are the detection bars (the event type's ``timeframe``); ``context`` maps an external
kind (``hash_rate``, ``fear_greed``, ``etf_flows``, ``liquidations``) to its raw frame with
``published_at``. An event is dated at the first detection bar at whose CLOSE it was known:

* price events (level break, fast drawdown) at the bar whose close confirms them, with the same
  level machinery the strategies use (:func:`backtest.features.levels.cross_below`);
* events of a daily external series at the first bar whose close is at or after the row's
  ``published_at`` (the as-of rule of :func:`backtest.data.external.align_to_bars`, applied row by
  row so that a series ending before the bars simply has no later events instead of being
  refused as stale).

Threshold events fire when a state turns on (fear & greed entering the zone, the N-th day of an
outflow streak, a liquidation spike, a hash-ribbon capitulation starting), not on every day it
stays on. A cooldown then keeps the first event and drops any later one known less than
``cooldown`` after it, so one crash is not counted fifty times. Both steps use only the past, so
removing the future never changes a past event: :func:`lookahead_offences` checks exactly that
with the truncation helpers of :mod:`backtest.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from backtest import checks
from backtest.data.external import parse_lag
from backtest.features.indicators import hash_ribbons, infer_bar_duration, liq_intensity
from backtest.features.levels import AthFraction, cross_above, cross_below, state_to_events
from backtest.lab.config import (
    EtfOutflowStreak,
    EventType,
    FastDrawdown,
    FearGreed,
    HashRibbon,
    LevelBreak,
    LiquidationSpike,
)
from backtest.types import Bars

#: The external series each external event kind reads.
SOURCES: dict[str, str] = {"liquidation_spike": "liquidations",
                           "etf_outflow_streak": "etf_flows", "hash_ribbon": "hash_rate",
                           "fear_greed": "fear_greed"}


def bar_duration(bars: Bars) -> pd.Timedelta:
    """The bar length: the smallest spacing of the index."""
    return infer_bar_duration(bars.index)


def duration(text: str, where: str = "events") -> pd.Timedelta:
    """A config duration ("4h", "1d", "2w") as a Timedelta."""
    return parse_lag(text, where)


def _daily_flags(etype: EventType, frame: pd.DataFrame) -> pd.Series:
    """Event flags on the external series' own rows."""
    if isinstance(etype, HashRibbon):
        ribbon = hash_ribbons(frame["hash_rate_ehs"], etype.fast, etype.slow)
        return (ribbon["recovery"] if etype.signal == "recovery"
                else state_to_events(ribbon["capitulation"]))
    if isinstance(etype, FearGreed):
        value = frame["value"]
        state = value <= etype.threshold if etype.op == "<=" else value >= etype.threshold
        return state_to_events(state.where(value.notna()))
    if isinstance(etype, EtfOutflowStreak):
        outflow = (frame["net_flow_usd"] < 0).astype(float)
        streak = outflow.rolling(etype.days, min_periods=etype.days).sum() == etype.days
        return state_to_events(streak)
    if isinstance(etype, LiquidationSpike):
        intensity = liq_intensity(frame["long_liq_usd"], etype.window)
        return state_to_events(intensity >= etype.k)
    raise TypeError(f"not an external event kind: {etype.kind}")


def _published_on_bars(flags: pd.Series, frame: pd.DataFrame, bars: Bars) -> pd.Series:
    """True at the first bar whose close is at or after a flagged row's ``published_at``."""
    closes = (bars.index + bar_duration(bars)).as_unit("ns").asi8
    published = pd.DatetimeIndex(frame["published_at"][flags.to_numpy(dtype=bool)])
    positions = np.searchsorted(closes, published.as_unit("ns").asi8, side="left")
    out = np.zeros(len(bars), dtype=bool)
    out[positions[positions < len(bars)]] = True
    return pd.Series(out, index=bars.index)


def raw_events(bars: Bars, context: Mapping[str, pd.DataFrame], etype: EventType) -> pd.Series:
    """Event flags on the detection bars, before the cooldown."""
    if isinstance(etype, LevelBreak):
        level = etype.level if etype.level is not None else AthFraction(etype.ath_fraction)
        cross = cross_below if etype.direction == "below" else cross_above
        return cross(bars, level, confirm=etype.confirm, hold=etype.hold)
    if isinstance(etype, FastDrawdown):
        window = max(1, round(duration(etype.within) / bar_duration(bars)))
        recent_high = bars["high"].rolling(window, min_periods=window).max()
        fell = bars["close"] / recent_high - 1.0 <= -etype.drop_pct / 100.0
        return state_to_events(fell.where(recent_high.notna()))
    frame = context[SOURCES[etype.kind]]
    return _published_on_bars(_daily_flags(etype, frame), frame, bars)


def apply_cooldown(events: pd.Series, cooldown: pd.Timedelta) -> pd.Series:
    """Keep an event only if the previous KEPT event is at least ``cooldown`` earlier."""
    kept = np.zeros(len(events), dtype=bool)
    last = None
    stamps = events.index.as_unit("ns").asi8
    span = cooldown.value
    for pos in np.flatnonzero(events.to_numpy(dtype=bool)):
        if last is None or stamps[pos] - last >= span:
            kept[pos] = True
            last = stamps[pos]
    return pd.Series(kept, index=events.index, name="event")


def detect(bars: Bars, context: Mapping[str, pd.DataFrame], etype: EventType,
           cooldown: pd.Timedelta) -> pd.Series:
    """The events of ``etype`` on ``bars`` after the cooldown (a bool Series on the bars)."""
    return apply_cooldown(raw_events(bars, context, etype), cooldown)


def lookahead_offences(bars: Bars, context: Mapping[str, pd.DataFrame],
                       lags: Mapping[str, pd.Timedelta], etype: EventType,
                       cooldown: pd.Timedelta, cuts: int = 30, seed: int = 0
                       ) -> list[pd.Timestamp]:
    """Bars whose event flag changes when everything after a cut is removed (bars beyond the
    cut, external rows not truly public by the cut bar's close); empty when the detector is
    point in time."""
    full = detect(bars, context, etype, cooldown).to_numpy()
    duration = bar_duration(bars)
    offending: set[pd.Timestamp] = set()
    for k in checks.cut_positions(bars.index, bars.index[0], cuts, seed):
        cut = bars.index[k]
        part = detect(bars.iloc[:k + 1], checks.truncate_context(context, lags, cut + duration),
                      etype, cooldown).to_numpy()
        offending.update(bars.index[np.flatnonzero(part != full[:k + 1])])
    return sorted(offending)
