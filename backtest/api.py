"""The Python API for notebooks and scripts: the same road and the same objects as the CLI.

    from backtest import api
    cfg = api.load_config("configs/break_below_74k.toml")
    cfg = api.override(cfg, "strategy.params.confirm_bars=2", "data.window=feb-2026")
    result = api.run(cfg)
    result.metrics        # metric x (strategy, buy_and_hold), as in report.json
    result.trades         # trades.csv as a DataFrame; result.orders: every fill
    result.equity         # the equity file: equity, position, buy_and_hold, close per bar
    result.write("reports")   # the report directory `crashbt run` writes
    done = api.read_run("reports/<run_id>")   # a finished run read back (checked)
    done.report, done.trades, done.equity     # equity from equity.csv or equity.parquet

A config is built from a TOML file (:func:`load_config`) or a dict (:func:`config_from_dict`),
changed with ``--set``-style overrides (:func:`override`, same ``extends`` rules), and run with
:func:`run` (one strategy) or :func:`run_all` (each ``[[strategies]]`` entry). Errors are the
CLI's: :class:`backtest.errors.UserError` with one line naming the key and what was expected.

Imports from crashbt: config, errors, inputs, pipeline, plugins (which loads ``strategies``),
report (reading a run directory back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from backtest import pipeline, plugins
from backtest.config import loader
from backtest.config.run import RunConfig
from backtest.errors import ConfigError
from backtest.inputs import RunInputs, prepare
from backtest.report.pages.run import RunRecords, read_run_dir

__all__ = ["RunConfig", "RunInputs", "RunRecords", "RunResult", "config_from_dict", "load_config",
           "override", "prepare_inputs", "read_run", "run", "run_all"]


@dataclass(frozen=True)
class RunResult:
    """One finished run in memory: what ``crashbt run`` writes, as Python objects."""

    config: RunConfig
    outcome: pipeline.RunOutcome

    @property
    def report(self) -> dict[str, Any]:
        """``report.json`` as a dict (metrics, benchmark, by_regime, by_window, run_id, ...)."""
        return self.outcome.report

    @property
    def run_id(self) -> str:
        return self.outcome.report["run_id"]

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per metric: the strategy's value and buy-and-hold's on the same bars."""
        rep = self.outcome.report
        return pd.DataFrame({"strategy": pd.Series(rep["metrics"], dtype=object),
                             "buy_and_hold": pd.Series(rep["benchmark"], dtype=object)})

    @property
    def trades(self) -> pd.DataFrame:
        """``trades.csv``: one row per trade (columns in :class:`backtest.types.SimResult`)."""
        return self.outcome.result.trades

    @property
    def orders(self) -> pd.DataFrame:
        """Every fill: time, side, size, price, fees, reason."""
        return self.outcome.result.orders

    @property
    def equity(self) -> pd.DataFrame:
        """The equity file's table (equity.csv or equity.parquet, ``[report] equity_format``):
        equity, position, buy-and-hold equity and close per bar."""
        return pipeline.equity_frame(self.outcome)

    def write(self, out_dir: str | Path = "reports", html: bool | None = None) -> Path:
        """Write the report directory (report.json, CSVs, report.html unless ``html=False``;
        default: the config's ``report.html``); return its path."""
        with_html = self.config.report.html if html is None else html
        return pipeline.write(self.outcome, Path(out_dir), with_html=with_html)


def load_config(path: str | Path, *overrides: str) -> RunConfig:
    """A TOML config (``extends`` followed, paths relative to its folder) with overrides."""
    return loader.load_config(path, list(overrides))


def config_from_dict(raw: dict[str, Any], folder: str | Path = ".") -> RunConfig:
    """A config from plain data shaped like the TOML file; relative paths from ``folder``."""
    return loader.relative_to(loader.parse_config(raw, "config"), Path(folder))


def override(cfg: RunConfig, *overrides: str) -> RunConfig:
    """``cfg`` with ``KEY=VALUE`` overrides, exactly as ``--set`` applies them."""
    raw = cfg.model_dump(mode="json", exclude_none=True)
    return loader.parse_config(loader.apply_overrides(raw, list(overrides)), "override")


def prepare_inputs(cfg: RunConfig, source: str = "config",
                   allow_external: bool = False) -> RunInputs:
    """The inputs every command builds for ``cfg`` (one strategy): bars with warm-up history,
    external series, funding, params; ``.signals()`` and ``.simulate()`` run them."""
    one = _single(cfg)
    return prepare(one, plugins.resolve(one.strategy.name, source, allow_external), source)


def run(cfg: RunConfig, source: str = "config", allow_external: bool = False) -> RunResult:
    """Run a one-strategy config in memory (nothing is written until :meth:`RunResult.write`).
    ``source`` names the config in errors and anchors ``file.py:SPEC`` strategy paths."""
    one = _single(cfg)
    spec = plugins.resolve(one.strategy.name, source, allow_external)
    return RunResult(one, pipeline.execute(one, spec, source))


def run_all(cfg: RunConfig, source: str = "config",
            allow_external: bool = False) -> list[RunResult]:
    """One :class:`RunResult` per strategy entry of ``cfg`` (a ``[[strategies]]`` config)."""
    return [run(one, source, allow_external) for one in cfg.runs()]


def read_run(path: str | Path) -> RunRecords:
    """A finished run read back from its directory (or its ``report.json``): the report dict,
    trades and the equity curve (equity.csv or equity.parquet, as ``files.equity`` names it),
    each checked as ``crashbt report`` checks them (a tampered file: one :class:`UserError`)."""
    return read_run_dir(Path(path))


def _single(cfg: RunConfig) -> RunConfig:
    if cfg.strategy is None:
        raise ConfigError(f"config: strategy: expected one [strategy] for run(), found "
                          f"{len(cfg.strategies or [])} [[strategies]] entries (use run_all)")
    return cfg
