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

Imports from crashbt: errors, data (for the datasets folder), native (its kernel). Never the
engine.
The per-bar rules run in one numba pass (:func:`backtest.data.kernels.regime_codes_nb`): no
10M-bar temporaries.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from backtest import native
from backtest.data.files import datasets_dir
from backtest.errors import ConfigError, DataError, did_you_mean

LABELS = ("calm", "correction", "bear", "crash", "capitulation", "recovery")
CODE = {name: code for code, name in enumerate(LABELS)}  # detect()'s int8 code of each label
CORRECTION, BEAR, CRASH, CAPITULATION, RECOVERY = (CODE[name] for name in LABELS[1:])


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
    step = _bar_step(bars.index)  # one median of the spacing (10M bars: 0.1 s each)
    intense = np.zeros(0, dtype=np.bool_)  # empty: no liquidation data
    if liquidation_intensity is not None:
        intense = (liquidation_intensity.reindex(bars.index).to_numpy(dtype=float) >= 3.0)
    codes = native.kernel("backtest.data.kernels", "regime_codes_nb")(
        bars["close"].to_numpy(dtype=float), bars["high"].to_numpy(dtype=float),
        bars["low"].to_numpy(dtype=float), _bars_per(7, step), _bars_per(30, step), intense)
    return pd.Series(codes, index=bars.index, name="regime", copy=False)
