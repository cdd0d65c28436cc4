"""One backtest run, end to end: config -> data -> features -> signals -> engine -> metrics.

The strategy spec is passed in (the CLI resolves it from the registry), so this module never
imports ``strategies``. Features see all history before ``data.start`` (warm-up) and nothing
after ``data.end``; the simulation runs on ``[start, end]`` only.
"""

from __future__ import annotations

import hashlib
import inspect
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from backtest import data, engine, html, metrics, report
from backtest.config import RunConfig, parse_utc_now
from backtest.errors import DataError
from backtest.types import Bars, SimResult
from strategies.base import StrategySpec, params_dict

ENGINE_PACKAGES = ("crashbt", "vectorbt", "vectorbt-rust", "numba", "pandas", "numpy", "ta",
                   "optuna")


@dataclass(frozen=True)
class RunOutcome:
    """What one run produced, in memory (the report dict plus the records behind it)."""

    report: dict[str, Any]
    result: SimResult
    bars: Bars
    benchmark_equity: pd.Series


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ENGINE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def strategy_source_sha256(spec: StrategySpec) -> str:
    """Hash of the strategy module's source, so an edited strategy gets a new run id."""
    return hashlib.sha256(Path(inspect.getfile(spec.signals)).read_bytes()).hexdigest()


def make_run_id(cfg: RunConfig, label: str, data_sha256: str, source_sha256: str,
                versions: dict[str, str]) -> str:
    """``<label>-<12 hex>``: a hash of config, data, strategy source and package versions."""
    blob = "\n".join([cfg.canonical_json(), data_sha256, source_sha256,
                      report.to_json(versions)])
    return f"{report.safe_name(label)}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def execute(cfg: RunConfig, spec: StrategySpec, source: str) -> RunOutcome:
    """Run one backtest in memory; nothing is written."""
    started = time.perf_counter()
    params = spec.make_params(cfg.strategy.params, source)
    history_cfg = cfg.data.model_copy(update={"start": None})
    history, info = data.load_bars(history_cfg, source)
    feats = spec.features(history, params, {})
    sigs = spec.signals(history, feats, params)
    window = history.index >= pd.Timestamp(cfg.data.start) if cfg.data.start else slice(None)
    bars = history.loc[window]
    if bars.empty:
        raise DataError(f"{source}: data.start: expected bars on or after "
                             f"{cfg.data.start:%Y-%m-%d}, found none (data ends {info.last})")
    sigs = sigs.restrict(window)
    result = engine.simulate(bars, sigs, cfg.execution, info.freq)
    label = cfg.strategy.label or cfg.name or spec.name
    versions = package_versions()
    source_sha = strategy_source_sha256(spec)
    bench_equity = metrics.buy_and_hold_equity(bars, cfg.execution.init_cash,
                                               cfg.execution.fee_rate)
    rep: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "run_id": make_run_id(cfg, label, info.sha256, source_sha, versions),
        "config": cfg.model_dump(mode="json"),
        "dataset": {
            "name": info.name, "sha256": info.sha256, "symbol": info.symbol,
            "timeframe": info.timeframe, "freq": info.freq,
            "start": _iso(bars.index[0]), "end": _iso(bars.index[-1]), "bars": len(bars),
            "gaps": len(info.gaps),
        },
        "strategy": {
            "name": spec.name, "label": label, "params": params_dict(params),
            "source_sha256": source_sha, "levels": sigs.levels, "notes": sigs.notes,
        },
        "engine": result.engine,
        "metrics": metrics.compute(result, info.freq),
        "benchmark": metrics.buy_and_hold(bars, cfg.execution.init_cash,
                                          cfg.execution.fee_rate, info.freq),
        "files": {"trades": "trades.csv", "equity": "equity.csv"},
        "versions": versions,
        "timing": {"created_at": parse_utc_now(),
                   "duration_s": round(time.perf_counter() - started, 3)},
    }
    return RunOutcome(report=rep, result=result, bars=bars, benchmark_equity=bench_equity)


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(outcome: RunOutcome, out_dir: Path, with_html: bool = True) -> Path:
    """Write the outcome's report directory atomically; return its path."""
    result = outcome.result
    equity = pd.DataFrame({"equity": result.equity, "position": result.position,
                           "buy_and_hold": outcome.benchmark_equity})
    trades = result.trades
    page = None
    if with_html:
        rows = report.trades_records(trades)
        page = html.render_run(outcome.report, rows)
    return report.write_run(out_dir, outcome.report, trades, equity, page)
