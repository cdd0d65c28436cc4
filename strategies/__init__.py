"""The strategy registry: every strategy crashbt can run, listed by hand (no folder scanning).

Each name is its module's name in this package. :func:`get` loads just the module it is asked
for (a run needs one strategy, not all seven); :data:`REGISTRY` (every spec by name, for
listings and tests) loads them all on first use.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from backtest.errors import StrategyError, did_you_mean
from backtest.strategy.contract import StrategySpec

NAMES = (
    "break_below_74k",
    "reclaim_80k",
    "miner_capitulation",
    "liquidation_flush",
    "etf_outflow_derisk",
    "support_ladder",
    "fear_greed_contrarian",
)
REGISTRY: dict[str, StrategySpec]  # set by __getattr__ on first use


def get(name: str, source: str = "config") -> StrategySpec:
    """The registered strategy called ``name``; a typo gets a "did you mean" hint."""
    if name not in NAMES:
        hint = did_you_mean(name, NAMES) or f" (known: {', '.join(sorted(NAMES))})"
        raise StrategyError(f"{source}: strategy.name: unknown strategy '{name}'{hint}")
    return _module(name).SPEC


def _module(name: str) -> ModuleType:
    """The module of a registered name, by a plain import (no name is ever evaluated)."""
    match name:
        case "break_below_74k":
            from strategies import break_below_74k as module
        case "reclaim_80k":
            from strategies import reclaim_80k as module
        case "miner_capitulation":
            from strategies import miner_capitulation as module
        case "liquidation_flush":
            from strategies import liquidation_flush as module
        case "etf_outflow_derisk":
            from strategies import etf_outflow_derisk as module
        case "support_ladder":
            from strategies import support_ladder as module
        case "fear_greed_contrarian":
            from strategies import fear_greed_contrarian as module
        case _:
            raise AssertionError(f"{name} is in NAMES but has no import here")
    return module


def __getattr__(attribute: str) -> Any:
    """``REGISTRY``: every registered spec by name, built (and kept) on first use."""
    if attribute != "REGISTRY":
        raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
    registry: dict[str, StrategySpec] = {name: get(name) for name in NAMES}
    globals()["REGISTRY"] = registry
    return registry
