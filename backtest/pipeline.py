"""One backtest run, end to end: inputs -> features -> signals -> engine -> metrics -> report.

The inputs come from :func:`backtest.inputs.prepare` (the one builder every command uses), so
features see all history before the run start (warm-up) and nothing after its end; the
simulation runs on the run range only. The strategy spec is passed in (the CLI resolves it),
so this module never imports ``strategies``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import inspect
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.common import ISO_FORMAT, iso, parse_utc_now
from backtest.config.run import RunConfig
from backtest.data import regimes
from backtest.inputs import RunInputs, prepare
from backtest.metrics import performance as metrics
from backtest.redact import mask_secrets
from backtest.report import equity as equity_file
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


def make_run_id(cfg: RunConfig, label: str, input_hashes: dict[str, str], source_sha256: str,
                versions: dict[str, str]) -> str:
    """``<label>-<12 hex>``: a hash of the config (without its ``[optimize]`` search, which
    changes no result), every input file (bars, external series, funding, tiers: see
    :attr:`RunInputs.input_hashes`), the strategy source and the package versions."""
    run_cfg = cfg.model_copy(update={"optimize": None})
    blob = "\n".join([run_cfg.canonical_json(), report.to_json(input_hashes), source_sha256,
                      report.to_json(versions)])
    return f"{report.safe_name(label)}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def execute(cfg: RunConfig, spec: StrategySpec, source: str,
            inputs: RunInputs | None = None) -> RunOutcome:
    """Run one backtest in memory; nothing is written. ``inputs`` (from
    :func:`backtest.inputs.prepare`) skips loading when the caller already has them."""
    started = time.perf_counter()
    inp = inputs or prepare(cfg, spec, source)
    info, bars, params = inp.info, inp.bars, inp.params
    fee = cfg.execution.market_fee_rate  # buy-and-hold buys at market like every engine fill
    with ThreadPoolExecutor(1, thread_name_prefix="benchmark") as beside:
        # what needs only the bars runs beside the strategy and the engine (numpy and the
        # regime pass release the GIL; 10M bars: ~0.8 s of wall time)
        benchmark = beside.submit(Benchmark.of, inp, cfg.execution.init_cash, fee)
        sigs = inp.signals()
        result = inp.simulate(sigs)
        bench = benchmark.result()
    sigs = sigs.restrict(slice(inp.first, None))
    label = mask_secrets(cfg.strategy.label or cfg.name or spec.name)
    versions = package_versions()
    source_sha = strategy_source_sha256(spec)
    rep: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "run_id": make_run_id(cfg, label, inp.input_hashes, source_sha, versions),
        "config": json.loads(mask_secrets(cfg.canonical_json())),
        "dataset": {
            "name": info.name, "sha256": info.sha256, "symbol": info.symbol,
            "timeframe": info.timeframe, "freq": info.freq, "resample": info.resample_report(),
            "start": iso(bars.index[0]), "end": iso(bars.index[-1]), "bars": len(bars),
            "gaps": [{"first_missing": iso(a), "last_missing": iso(b), "missing_bars": n}
                     for a, b, n in info.gaps if bars.index[0] <= a <= bars.index[-1]],
        },
        "strategy": {
            "name": spec.name, "label": label, "params": params_dict(params),
            "source_sha256": source_sha, "levels": sigs.levels, "notes": sigs.notes,
            "external": {kind: {k: frame.attrs.get(k) for k in ("name", "lag", "sha256")}
                         for kind, frame in inp.context.items()},
        },
        "engine": result.engine,
        **derivatives_sources(inp),
        "metrics": metrics.compute(result, info.freq)
        | (metrics.perp_metrics(result) if cfg.execution.instrument == "perp" else {}),
        "benchmark": bench.metrics,
        **segment_tables(result, bench, cfg.execution.init_cash, info.freq),
        "files": {"trades": "trades.csv", "orders": "orders.csv",
                  "equity": equity_file.FILES[cfg.report.equity_format]},
        "versions": versions,
        "timing": {"created_at": parse_utc_now(),
                   "duration_s": round(time.perf_counter() - started, 3)},
    }
    outcome = RunOutcome(report=rep, result=result, bars=bars, benchmark_equity=bench.equity)
    del bench  # its regime masks were allocated on the thread: hand their pages back
    _trim_heap()
    return outcome


def _trim_heap() -> None:
    """Give the C heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op on other
    C libraries). Arrays freed on another thread stay in that thread's malloc arena otherwise:
    at 10M bars ~40 MB of the report writer's peak."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def derivatives_sources(inp: RunInputs) -> dict[str, Any]:
    """``{"derivatives": ...}`` naming a perp run's funding and tier sources ({} for spot)."""
    if inp.cfg.execution.instrument != "perp":
        return {}
    paid = None if inp.funding is None else {k: inp.funding.attrs.get(k)
                                             for k in ("name", "sha256", "lag")}
    return {"derivatives": {"symbol": inp.info.symbol, "funding": paid,
                            "maintenance_tiers": inp.tiers_source}}


@dataclass(frozen=True)
class Benchmark:
    """What a run's report needs from its bars alone: buy-and-hold's equity, metrics and segment
    tables, and the regime codes (with their masks) and named windows that segment both."""

    equity: pd.Series
    metrics: dict[str, Any]
    labels: pd.Series  # regimes.detect's int8 codes on the run's bars
    segments: dict[str, dict[str, np.ndarray | slice]]  # by_regime / by_window: rows of each
    tables: dict[str, dict[str, Any]]  # buy-and-hold's metrics per segment, by the same keys

    @classmethod
    def of(cls, inp: RunInputs, init_cash: float, fee_rate: float) -> Benchmark:
        bars, freq = inp.bars, inp.freq
        labels = regimes.detect(inp.history).iloc[inp.first:]  # decided with the warm-up
        codes = labels.to_numpy()
        segments: dict[str, dict[str, np.ndarray | slice]] = {
            "by_regime": {name: codes == code for code, name in enumerate(regimes.LABELS)},
            "by_window": {w.name: _between(bars.index, w.start, w.end)
                          for w in regimes.windows().values()},
        }
        equity = metrics.buy_and_hold_equity(bars, init_cash, fee_rate)
        hold = pd.Series(True, index=bars.index)  # buy-and-hold is always invested
        return cls(equity=equity, metrics=metrics.buy_and_hold(bars, init_cash, fee_rate, freq),
                   labels=labels, segments=segments,
                   tables={key: metrics.by_segment(equity, hold, init_cash, freq, rows)
                           for key, rows in segments.items()})


def segment_tables(result: SimResult, bench: Benchmark, init_cash: float,
                   freq: str) -> dict[str, Any]:
    """``by_regime`` and ``by_window`` metric tables for the strategy and buy-and-hold, and the
    regime spans."""
    return {key: {"strategy": metrics.by_segment(result.equity, result.position, init_cash, freq,
                                                 rows),
                  "buy_and_hold": bench.tables[key]}
            for key, rows in bench.segments.items()} | {"regime_spans": regime_spans(bench.labels)}


def _between(index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp) -> slice:
    """The rows of the (ascending) index inside [start, end], by two binary searches: a slice,
    so a window's metrics read views of the curves (no 10M-bar mask or copy)."""
    return slice(index.searchsorted(start, "left"), index.searchsorted(end, "right"))


def regime_spans(labels: pd.Series) -> list[dict[str, str]]:
    """Consecutive runs of one regime code as ``{regime, start, end}`` (for chart shading)."""
    if labels.empty:
        return []
    codes = labels.to_numpy()
    starts = np.flatnonzero(np.diff(codes, prepend=codes[0] - 1))
    ends = np.append(starts[1:] - 1, len(codes) - 1)
    first, last = (labels.index[rows].strftime(ISO_FORMAT) for rows in (starts, ends))
    return [{"regime": regimes.LABELS[code], "start": a, "end": b}
            for code, a, b in zip(codes[starts], first, last, strict=True)]


def equity_frame(outcome: RunOutcome) -> pd.DataFrame:
    """The equity file's table: equity, position, buy-and-hold equity and close per bar."""
    result = outcome.result
    return pd.DataFrame({"equity": result.equity, "position": result.position,
                         "buy_and_hold": outcome.benchmark_equity,
                         "close": outcome.bars["close"]}, copy=False)  # 10M bars: 320 MB less


def write(outcome: RunOutcome, out_dir: Path, with_html: bool = True) -> Path:
    """Write the outcome's report directory atomically; return its path."""
    equity = equity_frame(outcome)
    trades = outcome.result.trades

    def page() -> str:
        return html.render_run(outcome.report, report.trades_records(trades), equity,
                               outcome.bars["close"])

    return report.write_run(out_dir, outcome.report, trades, outcome.result.orders, equity,
                            page if with_html else None)
