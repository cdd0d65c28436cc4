"""A strategy outside the registry, for ``strategies/flows_reader.py:SPEC`` tests: it reads the
ETF-flow series (so a short flows file meets the bars) and holds BTC after a net inflow day."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from backtest.features.indicators import point_in_time
from backtest.strategy.contract import FloatRange, StrategySpec
from backtest.types import Bars, Signals


@dataclass(frozen=True)
class Params:
    min_flow_usd: float = 0.0


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The latest published net flow, on the bar clock."""
    flows = context["etf_flows"]
    return point_in_time(flows[["net_flow_usd"]], flows, bars.index)


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Long while the latest published net flow exceeds ``min_flow_usd``."""
    inflow = feats["net_flow_usd"] > params.min_flow_usd
    return Signals(long_entries=inflow, long_exits=~inflow)


SPEC = StrategySpec(name="flows_reader", summary="Long after a net ETF inflow day",
                    params=Params, space={"min_flow_usd": FloatRange(-1e10, 1e10)},
                    features=features, signals=signals, requires=("etf_flows",))
