"""A whole run: ``[strategy]`` or ``[[strategies]]``, ``[external.<kind>]``, ``[report]``, an
optional ``[optimize]`` search, and the data and execution sections, as one frozen, validated
object (saved with the report)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, model_validator

from backtest.config.common import _Strict
from backtest.config.data import DataConfig
from backtest.config.execution import ExecutionConfig
from backtest.config.optimize import OptimizeConfig


class StrategyConfig(_Strict):
    """``[strategy]``: a registered strategy name and its parameters (checked against its space)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None



class ExternalSource(_Strict):
    """``[external.<kind>]``: a user file for an external series and/or its publication lag.

    ``lag`` overrides the manifest's publication rule (e.g. ``"1d"``); it may be longer, never
    negative. Kinds: funding_8h, funding_1d, etf_flows, fear_greed, hash_rate, open_interest,
    liquidations (see ``datasets/README.md`` for their schemas).
    """

    path: str | None = None
    lag: str | None = None



class ReportConfig(_Strict):
    """``[report]``: where reports go and what is written.

    ``equity_format`` picks the equity curve file: ``equity.csv`` (text any tool reads) or
    ``equity.parquet`` (Arrow; 10M bars: a third of the bytes, ~3.5 s less to write). It changes no
    result, so it is left out of the run id and of the config report.json records (its
    ``files.equity`` names the file): the same run in either format has the same report.json
    but for that name.
    """

    out: str = "reports"
    html: bool = True
    equity_format: Literal["csv", "parquet"] = "csv"



class RunConfig(_Strict):
    """A whole run: the resolved, validated config (saved with the report).

    A config names one ``[strategy]`` or several ``[[strategies]]`` (different strategies, or one
    strategy with several parameter sets); :meth:`runs` splits the latter into single runs on the
    same data. An ``[optimize]`` table (the search ``crashbt optimize`` runs) is part of the same
    model: ``run`` and ``check`` use the base ``[strategy.params]`` and ignore it.
    """

    name: str | None = None
    data: DataConfig
    strategy: StrategyConfig | None = None
    strategies: list[StrategyConfig] | None = Field(None, min_length=1)
    execution: ExecutionConfig = ExecutionConfig()
    external: dict[str, ExternalSource] = Field(default_factory=dict)
    report: ReportConfig = ReportConfig()
    optimize: OptimizeConfig | None = None

    @model_validator(mode="after")
    def _one_strategy_section(self) -> RunConfig:
        if (self.strategy is None) == (self.strategies is None):
            raise ValueError("exactly one of [strategy] or [[strategies]], found "
                             + ("both" if self.strategy else "neither"))
        labels = [entry.label or entry.name for entry in self.strategies or []]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"a distinct label per [[strategies]] entry, found '{repeated[0]}' "
                             f"{labels.count(repeated[0])} times (add label = \"...\")")
        return self

    def runs(self) -> list[RunConfig]:
        """One single-strategy config per strategy entry (itself when there is one)."""
        if self.strategies is None:
            return [self]
        return [self.model_copy(update={"strategy": entry, "strategies": None})
                for entry in self.strategies]

    def canonical_json(self) -> str:
        """Stable JSON of the resolved config: the input to run ids and hashes (a config
        without ``[optimize]`` hashes as it did before that table joined the model; the equity
        file's format is not part of it)."""
        leave_out: dict[str, Any] = {"report": {"equity_format"}}  # see ReportConfig
        if self.optimize is None:
            leave_out["optimize"] = True
        dump = self.model_dump(mode="json", exclude=leave_out)
        return json.dumps(dump, sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

