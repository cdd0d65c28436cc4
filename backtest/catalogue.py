"""The metric catalogue: every metric crashbt reports, with its label, unit, direction and format.

One table read by the metrics (which keys exist), the optimizer (default objective directions),
the HTML pages and ``crashbt compare`` (labels, precision, which value is "best"). Plain data:
imports only pandas, so every layer may read it. Annualization uses a 365-day year (crypto trades
24/7) and the real bar frequency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

SECONDS_PER_YEAR = 365 * 86_400


@dataclass(frozen=True)
class Metric:
    """One metric: ``direction`` +1 higher is better, -1 lower is better, 0 neither."""

    key: str
    label: str
    unit: Literal["%", "ratio", "count", "quote"]
    direction: int
    digits: int


CATALOGUE: dict[str, Metric] = {m.key: m for m in (
    Metric("total_return_pct", "Total return", "%", 1, 2),
    Metric("cagr_pct", "CAGR", "%", 1, 2),
    Metric("sharpe", "Sharpe ratio", "ratio", 1, 2),
    Metric("sortino", "Sortino ratio", "ratio", 1, 2),
    Metric("calmar", "Calmar ratio", "ratio", 1, 2),
    Metric("max_drawdown_pct", "Max drawdown", "%", -1, 2),
    Metric("n_trades", "Trades", "count", 0, 0),
    Metric("n_closed_trades", "Closed trades", "count", 0, 0),
    Metric("n_open_trades", "Open trades", "count", 0, 0),
    Metric("win_rate_pct", "Win rate", "%", 1, 1),
    Metric("exposure_pct", "Exposure", "%", 0, 1),
    Metric("profit_factor", "Profit factor", "ratio", 1, 2),
    Metric("fees_paid", "Fees paid", "quote", -1, 2),
    Metric("funding_paid", "Funding paid", "quote", -1, 2),
    Metric("liquidations", "Liquidations", "count", -1, 0),
    Metric("liquidation_losses", "Liquidation losses", "quote", -1, 2),
    Metric("bars", "Bars", "count", 0, 0),
)}

#: Metrics every run reports (perp runs add funding and liquidation metrics).
METRIC_KEYS: tuple[str, ...] = (
    "total_return_pct", "cagr_pct", "sharpe", "sortino", "calmar", "max_drawdown_pct",
    "n_trades", "n_closed_trades", "n_open_trades", "win_rate_pct", "exposure_pct",
    "profit_factor", "fees_paid",
)


def direction(key: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when neither (or unknown)."""
    metric = CATALOGUE.get(key)
    return metric.direction if metric else 0


def periods_per_year(freq: str) -> float:
    """Bars per 365-day year for a pandas frequency string such as ``"1h"`` or ``"1D"``."""
    return SECONDS_PER_YEAR / pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds()
