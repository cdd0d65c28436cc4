"""etf_outflow_derisk: hold the asset, step to cash while spot-ETF outflows persist.

The rolling sum of US spot-ETF net flows over the last ``days`` trading days ("etf_flows",
bundled from Farside; a trading day is public at D+1 00:00 UTC) goes onto the bar clock with
:func:`backtest.features.indicators.point_in_time`. Hysteresis: the strategy is out (cash) from the
first bar on which the sum is below ``exit_below_bn`` (USD billions) until the first bar on which it
is back at or above ``reenter_above_bn``; otherwise it is invested. Before the first published sum
(the US ETFs started in January 2024) there is no evidence of outflows and it holds.

The long entry is the invested STATE, not an event: the engine ignores a long entry while long,
so the asset is bought on the first bar of any run (whatever window the run starts in) and again
on the first invested bar after each step to cash. With an execution stop that fires while
invested, the position is re-bought at the next open. Imports only backtest.types/features and
backtest.strategy.contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import etf_flow_sum, point_in_time
from backtest.strategy.contract import FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals

BILLION = 1e9


@dataclass(frozen=True)
class Params:
    days: int = 12
    exit_below_bn: float = -2.0
    reenter_above_bn: float = 0.0

    def __post_init__(self) -> None:
        if not self.exit_below_bn <= self.reenter_above_bn:
            raise ValueError(f"expected exit_below_bn <= reenter_above_bn, found "
                             f"{self.exit_below_bn:g} and {self.reenter_above_bn:g}")


SPACE = {
    "days": IntRange(3, 30),
    "exit_below_bn": FloatRange(-5.0, 0.0),
    "reenter_above_bn": FloatRange(-2.0, 2.0),
}


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``flow_sum_bn``: the N-trading-day net flow sum in USD billions, as known at each close."""
    flows = context["etf_flows"]
    daily = (etf_flow_sum(flows["net_flow_usd"], params.days) / BILLION).to_frame("flow_sum_bn")
    return point_in_time(daily, flows, bars.index).astype("float64")


def invested(flow_sum_bn: pd.Series, params: Params) -> pd.Series:
    """The hysteresis state: False from a sum below the exit threshold until a sum at or above
    the re-entry threshold; True before any sum is known."""
    decided = pd.Series(float("nan"), index=flow_sum_bn.index)
    decided[flow_sum_bn >= params.reenter_above_bn] = 1.0
    decided[flow_sum_bn < params.exit_below_bn] = 0.0
    return decided.ffill().fillna(1.0) > 0


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Long while invested, flat while outflows persist."""
    state = invested(feats["flow_sum_bn"], params)
    return Signals(
        long_entries=state.rename("long_entries"), long_exits=(~state).rename("long_exits"),
        notes={"etf_flows": f"{params.days}-trading-day net flow sum: cash below "
                            f"{params.exit_below_bn:g}bn, back in at >= "
                            f"{params.reenter_above_bn:g}bn; held before the first sum"},
    )


SPEC = StrategySpec(
    name="etf_outflow_derisk",
    summary="Hold; step to cash while the rolling N-day spot-ETF net flow is below a threshold",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
    requires=("etf_flows",),
)
