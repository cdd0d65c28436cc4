"""Signal building blocks: price-level events and small boolean-series helpers.

Everything returns a bool Series on the bar index, decided at each bar's CLOSE from data up to
that close. The engine (not this module) fills an event of bar ``t`` at bar ``t+1``'s OPEN, so a
gap through a level is decided at the close of the gap bar and filled at the next open, never
at the level price.

Levels (:func:`level_series`): an absolute price, :class:`AthFraction` (a fraction of the running
all-time HIGH up to and including the bar), :class:`EmaFraction` (a fraction of the EMA of weekly
closes known at the bar, e.g. the 200-week EMA), :class:`RefPrice` (a fraction of the close of a
reference bar; NaN before that bar closes) or a float Series on the bar index. A strategy
parameter chooses among the first three with :func:`anchored` (``LEVEL_MODES``), so one number
such as 0.59 means "59% of the ATH" on any asset and in any year.

Level events (:func:`cross_below`, :func:`cross_above`), per bar, in order:

* "beyond" the level: ``confirm="close"`` -> close < level (below) / close > level (above);
  ``confirm="wick"`` -> low < level / high > level. Strict: touching the level is not beyond.
* Armed state: an event needs a fresh crossing. The series starts DISARMED and arms on a bar
  whose close is on the other side by ``rearm_pct``: close >= level*(1+rearm_pct) for below,
  close <= level*(1-rearm_pct) for above. So a series that starts beyond the level does not fire
  until price has been back on the other side. After firing, it is disarmed again (hysteresis).
* ``hold=N``: while armed, count consecutive beyond bars; the event fires on the N-th. With
  ``volume_k`` it fires on the first bar of that run with count >= N whose volume is >=
  ``volume_k`` x the mean volume of the previous ``volume_window`` bars (NaN mean: no fire).
  A bar that is not beyond resets the count (the state stays armed).
* A bar either fires or (re-)arms, never both: in wick mode a bar that wicks through and closes
  back does not re-arm until a later close.
* A NaN level or price disarms and resets the count (no value, no crossing through it).

A search calls these helpers once per parameter set on the same bars: inside
:func:`unchanged` (the caller's promise that the bars are not modified in the block) what
depends only on the bars is computed once, not once per call: the price columns as arrays, the
running high, the weekly EMA of each span and the volume baseline of each window.

Imports numpy, pandas and crashbt's errors, native loader and indicators; the per-bar loops are
numba kernels of :mod:`backtest.features.kernels`. Never vectorbt, ta, optuna, engine.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from backtest import native
from backtest.errors import StrategyError, did_you_mean
from backtest.features.indicators import ema_weekly
from backtest.types import Bars

KERNELS = "backtest.features.kernels"
CONFIRMS = ("close", "wick")
#: how a strategy's level parameter is read: a price, or a fraction of the running ATH / EMA
LEVEL_MODES = ("absolute", "ath_fraction", "ema_200w")
#: the bars of the innermost :func:`unchanged` block and what was computed from them alone
_HELD: ContextVar[tuple[Bars, dict[Hashable, np.ndarray]] | None] = ContextVar(
    "held_bars", default=None)


@contextmanager
def unchanged(bars: Bars) -> Iterator[None]:
    """A block in which ``bars`` is not modified (the caller's promise, e.g. a search scoring
    many parameter sets on one history): what depends only on the bars is computed once
    (:func:`_once`). It is dropped when the block ends; other frames are read as usual."""
    token = _HELD.set((bars, {}))
    try:
        yield
    finally:
        _HELD.reset(token)


def _once(bars: Bars, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, a function of ``bars`` and ``key`` alone: once per :func:`unchanged`
    block of these bars, on every call outside one. Callers never write into the result."""
    held = _HELD.get()
    if held is None or held[0] is not bars:
        return compute()
    values = held[1]
    if key not in values:
        values[key] = compute()
    return values[key]


def price(bars: Bars, column: str) -> np.ndarray:
    """``bars[column]`` as float64 numpy values."""
    return _once(bars, column, lambda: bars[column].to_numpy(dtype="float64"))


@dataclass(frozen=True)
class AthFraction:
    """``fraction`` x the running all-time high (highest high up to and including the bar)."""

    fraction: float


@dataclass(frozen=True)
class EmaFraction:
    """``fraction`` x the EMA of ``weeks`` weekly closes known at the bar's close (NaN during
    its warm-up; :func:`backtest.features.indicators.ema_weekly`)."""

    fraction: float
    weeks: int = 200


@dataclass(frozen=True)
class RefPrice:
    """``fraction`` x the close of the reference bar: the first bar opening at or after
    ``date`` (UTC). NaN before that bar; defined from its close on."""

    date: str | pd.Timestamp
    fraction: float = 1.0


Level = float | int | AthFraction | EmaFraction | RefPrice | pd.Series


def anchored(mode: str, value: float, ema_weeks: int = 200) -> Level:
    """A level parameter read in ``mode`` (one of ``LEVEL_MODES``): the price ``value`` itself,
    or ``value`` x the running all-time high, or ``value`` x the ``ema_weeks``-week EMA."""
    if mode == "ath_fraction":
        return AthFraction(value)
    if mode == "ema_200w":
        return EmaFraction(value, ema_weeks)
    if mode != "absolute":
        raise StrategyError(f"signals: level_mode: expected one of {', '.join(LEVEL_MODES)}, "
                            f"found {mode!r}{did_you_mean(str(mode), LEVEL_MODES)}")
    return value


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not value > 0:
        raise StrategyError(f"signals: {name}: expected a number > 0, found {value!r}")


def _as_utc(date: str | pd.Timestamp, index: pd.DatetimeIndex) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(date)
    except (ValueError, TypeError):
        raise StrategyError(f"signals: RefPrice.date: expected an ISO date, found {date!r}") \
            from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp if index.tz is not None else stamp.tz_localize(None)


def level_series(bars: Bars, level: Level) -> pd.Series:
    """The level as a float Series on the bar index (NaN where it is not yet defined)."""
    index = bars.index
    if isinstance(level, AthFraction):
        _check_positive("AthFraction.fraction", level.fraction)
        high = _once(bars, "running_high", lambda: bars["high"].cummax().to_numpy())
        values = pd.Series(level.fraction * high, index=index, copy=False)
    elif isinstance(level, EmaFraction):
        _check_positive("EmaFraction.fraction", level.fraction)
        ema = _once(bars, ("ema_weekly", level.weeks),
                    lambda: ema_weekly(bars["close"], level.weeks).to_numpy())
        values = pd.Series(level.fraction * ema, index=index, copy=False)
    elif isinstance(level, RefPrice):
        _check_positive("RefPrice.fraction", level.fraction)
        stamp = _as_utc(level.date, index)
        if len(index) and stamp < index[0]:
            raise StrategyError(f"signals: RefPrice.date: expected a date on or after the first "
                                f"bar {index[0]}, found {level.date}")
        ref = index.searchsorted(stamp, side="left")
        values = pd.Series(np.nan, index=index)
        if ref < len(index):
            values.iloc[ref:] = level.fraction * bars["close"].iloc[ref]
    elif isinstance(level, pd.Series):
        if not level.index.equals(index):
            raise StrategyError(f"signals: level: expected a Series on the bar index, found "
                                f"{len(level)} rows on a different index")
        values = level
    else:
        _check_positive("level", level)
        return pd.Series(np.full(len(index), float(level)), index=index, name="level",
                         copy=False)
    return values.astype("float64").rename("level")


def unreachable_note(bars: Bars, level: pd.Series, name: str = "level") -> dict[str, str]:
    """``{name: warning}`` when ``level`` never lies within a bar's low..high (e.g. BTC's 74,400
    on ETH bars): such a rule can never fire, which a run would otherwise report as 0 trades
    without a word. Empty when the level is reached at least once or the bars are empty."""
    lvl = (level.to_numpy() if level.dtype == np.float64
           else level.to_numpy(dtype="float64", na_value=np.nan))
    low, high = price(bars, "low"), price(bars, "high")
    if native.kernel(KERNELS, "reached_or_undefined_nb")(lvl, low, high):
        return {}
    valid = ~(np.isnan(lvl) | np.isnan(low))
    low_level, high_level = lvl[valid].min(), lvl[valid].max()
    span = (f"{low_level:,.6g}" if low_level == high_level
            else f"{low_level:,.6g}..{high_level:,.6g}")
    return {name: f"never reached: {span} vs prices {np.nanmin(low):,.6g}.."
                  f"{np.nanmax(high):,.6g}; give a level for this asset or a relative "
                  f"level_mode"}


def volume_confirmed(bars: Bars, volume_k: float, volume_window: int = 20) -> pd.Series:
    """volume >= volume_k x mean volume of the previous ``volume_window`` bars (NaN -> False)."""
    _check_positive("volume_k", volume_k)
    _check_int("volume_window", volume_window)

    def baseline() -> np.ndarray:
        volume = bars["volume"]
        return volume.shift(1).rolling(volume_window, min_periods=volume_window).mean() \
            .to_numpy(dtype="float64", na_value=np.nan)

    mean = _once(bars, ("volume_baseline", volume_window), baseline)
    return pd.Series(price(bars, "volume") >= volume_k * mean, index=bars.index,
                     name="volume_confirmed", copy=False)


def _check_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise StrategyError(f"signals: {name}: expected an integer >= 1, found {value!r}")


def _cross(bars: Bars, level: Level, direction: Literal["below", "above"], confirm: str,
           hold: int, rearm_pct: float, volume_k: float | None, volume_window: int) -> pd.Series:
    if confirm not in CONFIRMS:
        raise StrategyError(f"signals: confirm: expected one of {', '.join(CONFIRMS)}, found "
                            f"{confirm!r}{did_you_mean(str(confirm), CONFIRMS)}")
    _check_int("hold", hold)
    if isinstance(rearm_pct, bool) or not isinstance(rearm_pct, int | float) \
            or not 0 <= rearm_pct < 1:
        raise StrategyError(f"signals: rearm_pct: expected a number in [0, 1), found "
                            f"{rearm_pct!r}")
    on_bars = isinstance(level, pd.Series) and level.dtype == np.float64 and (
        level.index is bars.index or level.index.equals(bars.index))
    lvl = level.to_numpy() if on_bars else level_series(bars, level).to_numpy()
    close = price(bars, "close")
    below = direction == "below"
    probe = close if confirm == "close" else price(bars, "low" if below else "high")
    volume_ok = (np.empty(0, dtype=bool) if volume_k is None
                 else volume_confirmed(bars, volume_k, volume_window).to_numpy())
    events = native.kernel(KERNELS, "level_events_nb")(close, probe, lvl, below, float(rearm_pct),
                                                       volume_ok, hold)
    return pd.Series(events, index=bars.index, name=f"cross_{direction}")


def cross_below(bars: Bars, level: Level, confirm: str = "close", hold: int = 1,
                rearm_pct: float = 0.0, volume_k: float | None = None,
                volume_window: int = 20) -> pd.Series:
    """True on the bar whose close confirms a fresh break below ``level`` (module docstring)."""
    return _cross(bars, level, "below", confirm, hold, rearm_pct, volume_k, volume_window)


def cross_above(bars: Bars, level: Level, confirm: str = "close", hold: int = 1,
                rearm_pct: float = 0.0, volume_k: float | None = None,
                volume_window: int = 20) -> pd.Series:
    """True on the bar whose close confirms a fresh reclaim above ``level`` (module docstring)."""
    return _cross(bars, level, "above", confirm, hold, rearm_pct, volume_k, volume_window)


def _as_series(b: pd.Series | float, index: pd.Index) -> pd.Series:
    return b if isinstance(b, pd.Series) else pd.Series(float(b), index=index)


def crossed_above(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """a > b now and a <= b on the previous row; False where any of the four values is NaN."""
    b = _as_series(b, a.index)
    now, before = a > b, a.shift(1) <= b.shift(1)
    return (now & before).astype(bool).rename("crossed_above")


def crossed_below(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """a < b now and a >= b on the previous row; False where any of the four values is NaN."""
    b = _as_series(b, a.index)
    now, before = a < b, a.shift(1) >= b.shift(1)
    return (now & before).astype(bool).rename("crossed_below")


def state_to_events(state: pd.Series) -> pd.Series:
    """True where a boolean state turns on (False -> True). NaN counts as False; a state already
    on at the first row is not an event, as with the level crossings (it was not seen turning on).
    """
    on = state.fillna(False).astype(bool)
    return (on & ~on.shift(1, fill_value=True)).rename("event")


def latch(on: pd.Series, off: pd.Series) -> pd.Series:
    """A state from two event series: True from each ``on`` event until the next ``off`` event
    (``on`` wins a bar with both), False before the first ``on``. One pass, no float or
    forward-filled temporaries (10M bars: ~0.5 s less than where/ffill)."""
    return pd.Series(native.kernel(KERNELS, "latch_nb")(on.to_numpy(dtype=bool),
                                                         off.to_numpy(dtype=bool)),
                     index=on.index, copy=False)
