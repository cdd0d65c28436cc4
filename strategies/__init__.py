"""The strategy registry: every strategy crashbt can run, listed by hand (no folder scanning)."""

from __future__ import annotations

from backtest.errors import StrategyError, did_you_mean
from backtest.strategy.contract import StrategySpec
from strategies import (
    break_below_74k,
    etf_outflow_derisk,
    fear_greed_contrarian,
    liquidation_flush,
    miner_capitulation,
    reclaim_80k,
    support_ladder,
)

REGISTRY: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        break_below_74k.SPEC,
        reclaim_80k.SPEC,
        miner_capitulation.SPEC,
        liquidation_flush.SPEC,
        etf_outflow_derisk.SPEC,
        support_ladder.SPEC,
        fear_greed_contrarian.SPEC,
    )
}


def get(name: str, source: str = "config") -> StrategySpec:
    """The registered strategy called ``name``; a typo gets a "did you mean" hint."""
    try:
        return REGISTRY[name]
    except KeyError:
        hint = did_you_mean(name, REGISTRY) or f" (known: {', '.join(sorted(REGISTRY))})"
        raise StrategyError(f"{source}: strategy.name: unknown strategy '{name}'{hint}") from None
