"""One backtest run, end to end: config -> data -> features -> signals -> engine -> metrics.

The strategy spec is passed in (the CLI resolves it from the registry), so this module never
imports ``strategies``. Features see all history before ``data.start`` (warm-up) and nothing
after ``data.end``; the simulation runs on ``[start, end]`` only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.common import parse_utc_now
from backtest.config.run import RunConfig
from backtest.data import bars as data
from backtest.data import external, regimes
from backtest.engine import simulate as engine
from backtest.errors import ConfigError, DataError, did_you_mean
from backtest.metrics import performance as metrics
from backtest.redact import mask_secrets
from backtest.report import files as report
from backtest.report import html
from backtest.strategy.contract import StrategySpec, params_dict
from backtest.types import Bars, SimResult

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
    start, end = run_range(cfg, source)
    history_cfg = cfg.data.model_copy(update={"start": None, "end": end, "window": None})
    history, info = data.load_bars(history_cfg, source)
    context = load_context(cfg, spec, source)
    feats = spec.features(history, params, context)
    sigs = spec.signals(history, feats, params)
    regime_labels = regimes.detect(history)
    first = int(history.index.searchsorted(start)) if start is not None else 0
    bars = history.iloc[first:]
    if bars.empty:
        until = f"{end:%Y-%m-%d %H:%M}" if end is not None else "the end of the data"
        raise DataError(f"{source}: data: expected bars between {start:%Y-%m-%d %H:%M} and "
                        f"{until}, found data from {info.first:%Y-%m-%d %H:%M} to "
                        f"{info.last:%Y-%m-%d %H:%M}")
    sigs = sigs.restrict(slice(first, None))
    funding = load_funding(cfg, info.symbol)
    derivatives = derivatives_sources(cfg, info.symbol, funding)  # refuses before simulating
    result = engine.simulate(bars, sigs, cfg.execution, info.freq,
                             None if funding is None else funding["funding_rate"])
    label = mask_secrets(cfg.strategy.label or cfg.name or spec.name)
    versions = package_versions()
    source_sha = strategy_source_sha256(spec)
    bench_equity = metrics.buy_and_hold_equity(bars, cfg.execution.init_cash,
                                               cfg.execution.fee_rate)
    rep: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "run_id": make_run_id(cfg, label, info.sha256, source_sha, versions),
        "config": json.loads(mask_secrets(cfg.canonical_json())),
        "dataset": {
            "name": info.name, "sha256": info.sha256, "symbol": info.symbol,
            "timeframe": info.timeframe, "freq": info.freq, "resample": info.resample_report(),
            "start": _iso(bars.index[0]), "end": _iso(bars.index[-1]), "bars": len(bars),
            "gaps": [{"first_missing": _iso(a), "last_missing": _iso(b), "missing_bars": n}
                     for a, b, n in info.gaps if bars.index[0] <= a <= bars.index[-1]],
        },
        "strategy": {
            "name": spec.name, "label": label, "params": params_dict(params),
            "source_sha256": source_sha, "levels": sigs.levels, "notes": sigs.notes,
            "external": {kind: {k: frame.attrs.get(k) for k in ("name", "lag", "sha256")}
                         for kind, frame in context.items()},
        },
        "engine": result.engine,
        **derivatives,
        "metrics": metrics.compute(result, info.freq)
        | (metrics.perp_metrics(result) if cfg.execution.instrument == "perp" else {}),
        "benchmark": metrics.buy_and_hold(bars, cfg.execution.init_cash,
                                          cfg.execution.fee_rate, info.freq),
        **segment_tables(result, bench_equity, regime_labels.iloc[first:],
                         cfg.execution.init_cash, info.freq),
        "files": {"trades": "trades.csv", "equity": "equity.csv"},
        "versions": versions,
        "timing": {"created_at": parse_utc_now(),
                   "duration_s": round(time.perf_counter() - started, 3)},
    }
    return RunOutcome(report=rep, result=result, bars=bars, benchmark_equity=bench_equity)


def load_context(cfg: RunConfig, spec: StrategySpec, source: str) -> dict[str, pd.DataFrame]:
    """The external series a strategy reads: every required kind (bundled unless the config
    names a file), and each optional kind the config supplies under ``[external.<kind>]``."""
    for kind in cfg.external:
        if kind not in external.KINDS:
            raise ConfigError(f"{source}: external.{kind}: unknown series kind"
                              f"{did_you_mean(kind, external.KINDS)}")
    wanted = [*spec.requires, *(k for k in spec.optional if k in cfg.external)]
    context = {}
    for kind in wanted:
        override = cfg.external.get(kind)
        context[kind] = external.load_external(
            kind, lag=override.lag if override else None,
            path=override.path if override else None)
    return context


def load_funding(cfg: RunConfig, symbol: str) -> pd.DataFrame | None:
    """The funding series of ``symbol`` for a perp run with funding on (else None)."""
    if cfg.execution.instrument != "perp" or not cfg.execution.funding:
        return None
    src = cfg.external.get("funding_8h")
    return external.funding_for(symbol, lag=src.lag if src else None,
                                path=src.path if src else None)


def derivatives_sources(cfg: RunConfig, symbol: str,
                        funding: pd.DataFrame | None) -> dict[str, Any]:
    """``{"derivatives": ...}`` naming a perp run's funding and tier sources ({} for spot)."""
    if cfg.execution.instrument != "perp":
        return {}
    tiers = external.tiers_for(symbol, cfg.execution.maintenance_tiers)
    paid = None if funding is None else {k: funding.attrs.get(k)
                                         for k in ("name", "sha256", "lag")}
    return {"derivatives": {"symbol": symbol, "funding": paid, "maintenance_tiers": tiers}}


def run_range(cfg: RunConfig, source: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The run's [start, end] from ``data.window`` or ``data.start`` / ``data.end``."""
    if cfg.data.window:
        win = regimes.window(cfg.data.window, source)
        return win.start, win.end
    as_ts = [pd.Timestamp(t) if t is not None else None for t in (cfg.data.start, cfg.data.end)]
    return as_ts[0], as_ts[1]


def segment_tables(result: SimResult, bench_equity: pd.Series, labels: pd.Series,
                   init_cash: float, freq: str) -> dict[str, Any]:
    """``by_regime`` and ``by_window`` metric tables for the strategy and buy-and-hold."""
    index = result.equity.index
    by_regime = {name: (labels == name).to_numpy() for name in regimes.LABELS}
    by_window = {w.name: np.asarray((index >= w.start) & (index <= w.end))
                 for w in regimes.windows().values()}
    hold = pd.Series(1.0, index=index)  # buy-and-hold is always invested

    def table(segments: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "strategy": metrics.by_segment(result.equity, result.position, init_cash, freq,
                                           segments),
            "buy_and_hold": metrics.by_segment(bench_equity, hold, init_cash, freq, segments),
        }

    return {"by_regime": table(by_regime), "by_window": table(by_window),
            "regime_spans": regime_spans(labels)}


def regime_spans(labels: pd.Series) -> list[dict[str, str]]:
    """Consecutive runs of one regime label as ``{regime, start, end}`` (for chart shading)."""
    if labels.empty:
        return []
    change = labels.ne(labels.shift()).to_numpy()
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:] - 1, len(labels) - 1)
    return [{"regime": str(labels.iloc[a]), "start": _iso(labels.index[a]),
             "end": _iso(labels.index[b])} for a, b in zip(starts, ends, strict=True)]


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(outcome: RunOutcome, out_dir: Path, with_html: bool = True) -> Path:
    """Write the outcome's report directory atomically; return its path."""
    result = outcome.result
    equity = pd.DataFrame({"equity": result.equity, "position": result.position,
                           "buy_and_hold": outcome.benchmark_equity,
                           "close": outcome.bars["close"]})
    trades = result.trades
    page = None
    if with_html:
        rows = report.trades_records(trades)
        page = html.render_run(outcome.report, rows, equity, outcome.bars["close"])
    return report.write_run(out_dir, outcome.report, trades, equity, page)
