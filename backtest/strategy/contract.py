"""The strategy protocol: a frozen Params type, a search space as data, two pure functions.

A strategy module defines ``SPEC = StrategySpec(...)`` and is listed by hand in
:data:`strategies.REGISTRY`. ``features(bars, params, context)`` returns a DataFrame on the bar
index; ``signals(bars, features, params)`` returns :class:`backtest.types.Signals` decided at
each bar's close. ``context`` maps an external-series kind (``"etf_flows"``, ``"hash_rate"``...)
to its raw frame with a ``published_at`` column: every kind in ``requires`` is present, kinds in
``optional`` only when the config supplies them. Strategies put such a series on the bar clock
with :func:`backtest.features.indicators.point_in_time` and nothing else. Neither function may shift
data backwards in time, mutate its inputs, or read the clock.

Search-space dimensions are plain data here; only :mod:`backtest.optimize` turns them into Optuna
distributions, so importing a strategy never imports Optuna.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from backtest.errors import StrategyError, did_you_mean
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class IntRange:
    """Integers ``low..high`` inclusive, every ``step``."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high and (value - self.low) % self.step == 0)

    def describe(self) -> str:
        return f"int {self.low}..{self.high}" + (f" step {self.step}" if self.step != 1 else "")


@dataclass(frozen=True)
class FloatRange:
    """Floats in ``[low, high]`` (log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def contains(self, value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value) and self.low <= value <= self.high)

    def describe(self) -> str:
        return f"float {self.low:g}..{self.high:g}" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values."""

    options: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) for o in self.options)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


Dimension = IntRange | FloatRange | Choice
FeatureFn = Callable[[Bars, Any, Mapping[str, pd.DataFrame]], pd.DataFrame]
SignalFn = Callable[[Bars, pd.DataFrame, Any], Signals]


@dataclass(frozen=True)
class StrategySpec:
    """Everything crashbt needs to know about one strategy."""

    name: str
    summary: str
    params: type
    space: Mapping[str, Dimension]
    features: FeatureFn
    signals: SignalFn
    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def defaults(self) -> Any:
        return self.params()

    def make_params(self, values: Mapping[str, Any], source: str = "config") -> Any:
        """Build Params from defaults plus ``values``; errors name ``strategy.params.<key>``.

        The search space is a default for ``optimize``, never a limit on a run: a value outside
        it is accepted when it has the parameter's kind (:func:`fits`). What a value must be
        physically (a positive price, target < level < stop...) is checked by the strategy's
        Params (``__post_init__``)."""
        known = [f.name for f in dataclasses.fields(self.params)]
        defaults = self.defaults()
        for key, value in values.items():
            where = f"{source}: strategy.params.{key}"
            if key not in known:
                raise StrategyError(f"{where}: unknown parameter of '{self.name}'"
                                    f"{did_you_mean(key, known) or f' (known: {known})'}")
            dim = self.space.get(key)
            problem = fits(dim, value) if dim is not None else None
            if dim is None and not _same_kind(getattr(defaults, key), value):
                default = getattr(defaults, key)
                problem = f"{type(default).__name__}, found {value!r} ({type(value).__name__})"
            if problem:
                raise StrategyError(f"{where}: expected {problem}")
        try:
            return dataclasses.replace(defaults, **values)  # the defaults, ``values`` changed
        except (TypeError, ValueError) as exc:
            raise StrategyError(f"{source}: strategy.params: {exc}") from None


def fits(dim: Dimension, value: Any) -> str | None:
    """Why ``value`` cannot be used for a parameter searched over ``dim`` (None: it can).

    Ranges ask for the kind (an integer for IntRange, a finite number for FloatRange) and the
    sign their bounds imply (a range starting at 0 or above takes no negative value, one above
    0 no zero); a Choice of names asks for one of them. Anything else is the Params' business.
    """
    if isinstance(dim, Choice):
        if all(isinstance(o, str) for o in dim.options) and not dim.contains(value):
            return f"{dim.describe()}, found {value!r}"
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(dim, IntRange) and not is_int:
        return f"an integer, found {value!r}"
    if not (is_int or isinstance(value, float)) or not math.isfinite(value):
        return f"a finite number, found {value!r}"
    if dim.low > 0 and value <= 0:
        return f"a number > 0, found {value!r}"
    if dim.low >= 0 and value < 0:
        return f"a number >= 0, found {value!r}"
    return None


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(default) is type(value)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return default is None or isinstance(value, type(default))


def params_dict(params: Any) -> dict[str, Any]:
    """Params as a plain dict (for reports and hashing)."""
    return dataclasses.asdict(params)
