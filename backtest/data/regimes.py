"""Crash regimes: named windows from ``datasets/regimes.toml`` and a causal per-bar detector.

The detector labels each bar from what is known at its close: the drawdown from the running
all-time high, how fast that drawdown deepened over the last 7 days, and (optionally) long-side
liquidation intensity. Labels, in order of precedence:

    capitulation  drawdown <= -30% and fell >= 15 points in 7 days, or
                  drawdown <= -20% with liquidation intensity >= 3x its mean
    crash         drawdown <= -20% and fell >= 8 points in 7 days
    recovery      drawdown <= -20% but >= 15% above the 30-day low
    bear          drawdown <= -20% otherwise (deep, neither falling fast nor bouncing)
    correction    drawdown <= -10%
    calm          everything else

Imports from crashbt: errors, data (for the datasets folder). Never the engine.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from backtest.data.files import datasets_dir
from backtest.errors import ConfigError, DataError, did_you_mean

LABELS = ("calm", "correction", "bear", "crash", "capitulation", "recovery")
CODE = {name: code for code, name in enumerate(LABELS)}  # detect()'s int8 code of each label


@dataclass(frozen=True)
class Window:
    """A named crash window, inclusive of both ends (bar open times, UTC)."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    summary: str


@cache
def windows() -> dict[str, Window]:
    """All named windows from ``datasets/regimes.toml`` (the one reader of that file)."""
    path = datasets_dir() / "regimes.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["windows"]
    except FileNotFoundError:
        raise DataError(f"{path}: expected the named crash windows, found no file (set "
                        "CRASHBT_DATASETS to the datasets/ folder)") from None
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise DataError(f"{path}: expected a [windows] table in valid TOML, found {exc}") from None
    return {name: Window(name, pd.Timestamp(w["start"]).tz_convert("UTC"),
                         pd.Timestamp(w["end"]).tz_convert("UTC"), w.get("summary", ""))
            for name, w in raw.items()}


def window(name: str, where: str) -> Window:
    """The window called ``name``; ``where`` (file and key) starts the error of an unknown
    name, which gets a "did you mean" hint."""
    known = windows()
    if name not in known:
        hint = did_you_mean(name, known) or f" (known: {', '.join(known)})"
        raise ConfigError(f"{where}: unknown window '{name}'{hint}")
    return known[name]


def _bar_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The median bar spacing (one day for fewer than two bars)."""
    steps = np.diff(index.asi8)
    if not steps.size:
        return pd.Timedelta("1D")
    return pd.Timedelta(int(np.median(steps, overwrite_input=True)), unit=index.unit)


def _bars_per(days: float, step: pd.Timedelta) -> int:
    return max(1, round(pd.Timedelta(days=days) / step))


def detect(bars: pd.DataFrame, liquidation_intensity: pd.Series | None = None) -> pd.Series:
    """Label every bar with a regime, causally (uses only data up to each bar's close).

    The labels are int8 codes into :data:`LABELS` (``LABELS[code]`` is the name): 1 byte a bar
    instead of a string object, which at 10M bars was most of a run's time and memory.
    """
    close = bars["close"].to_numpy(dtype=float)
    drawdown = close / np.maximum.accumulate(bars["high"].to_numpy(dtype=float)) - 1.0
    step = _bar_step(bars.index)  # one median of the spacing (10M bars: 0.1 s each)
    week, month = _bars_per(7, step), _bars_per(30, step)
    fell = np.full(len(close), np.nan)  # NaN in the first week: no speed known
    fell[week:] = drawdown[week:] - drawdown[:-week]
    low_30d = pd.Series(bars["low"].to_numpy(dtype=float)).rolling(month, min_periods=1).min()
    bounce = close / low_30d.to_numpy() - 1.0
    del low_30d
    intense = np.zeros(len(bars), dtype=bool)
    if liquidation_intensity is not None:
        intense = (liquidation_intensity.reindex(bars.index).to_numpy(dtype=float) >= 3.0)
    deep = drawdown <= -0.20
    codes = np.where(drawdown <= -0.10, CODE["correction"], CODE["calm"]).astype(np.int8)
    for name, rule in (("bear", deep), ("recovery", deep & (bounce >= 0.15)),
                       ("crash", deep & (fell <= -0.08)),
                       ("capitulation", ((drawdown <= -0.30) & (fell <= -0.15))
                        | (deep & intense))):  # lowest precedence first: later rules win
        codes[rule] = CODE[name]
    return pd.Series(codes, index=bars.index, name="regime", copy=False)
