"""``crashbt stress``: a strategy over many synthetic histories that keep crash structure.

Inputs come from :func:`backtest.inputs.prepare` (the one input builder). The run's bars
(``[data]``: dataset and window) fix the path length, the calendar and the starting price; the
source of bar shapes is the whole history up to the window's end (:mod:`backtest.lab.synthetic`).
For each path the strategy's own features and signals are computed on the synthetic bars (only
bars-only strategies: a synthetic path has no ETF flows or hash rate), then simulated by the
engine's numba kernel (:func:`simulate_paths` builds each path's kernel inputs with
``engine.kernel_inputs`` and runs ``simulate_column_nb``, recording the equity curve that
drawdown and time under water need; the engine's ``simulate_many`` shares one price path across
columns, which synthetic paths do not).
Funding for perps: ``shocks.funding_rate`` (default: the mean of the run's 8-hourly funding
series) at 00/08/16 UTC, ``funding_spike_rate`` with probability ``funding_spike_prob`` at
settlements inside crash regimes.

Per path: total return, max drawdown and time under water (share of bars below the running
equity peak), both measured from the initial cash, liquidation (any), ruin (equity at or below
``1 - ruin_pct / 100`` of the initial cash at any close). Reported: percentiles of each metric,
probabilities of liquidation and ruin with 95 % Wilson intervals, and the real history's metrics
(the same code on the real bars, real funding) with their percentile rank among the paths. Like
every synthetic path, the real one is seen by the strategy from the run's first bar only (no
warm-up history), so the rank compares like with like; it can differ from ``crashbt run``, which
gives the strategy the earlier history.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
import pandas as pd

from backtest import native
from backtest.config.common import iso, parse_utc_now
from backtest.config.execution import ExecutionConfig
from backtest.config.run import RunConfig
from backtest.engine import layout
from backtest.engine import simulate as engine
from backtest.errors import ConfigError
from backtest.inputs import prepare
from backtest.lab import bootstrap as bs
from backtest.lab import synthetic
from backtest.lab.config import StressConfig
from backtest.pipeline import strategy_source_sha256
from backtest.report import files
from backtest.strategy.contract import StrategySpec, params_dict
from backtest.types import Bars

SCHEMA_VERSION = 1
#: Paths generated and simulated together (bounds memory; part of the random stream's layout).
CHUNK = 100
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
METRICS = ("total_return_pct", "max_drawdown_pct", "time_under_water_pct")
SETTLEMENT_HOURS = (0, 8, 16)


#: Per-path summary columns of :func:`simulate_paths`.
(P_EQUITY, P_DRAWDOWN, P_UNDER_WATER, P_LOWEST, P_LIQUIDATIONS, P_TRADES) = range(6)


def simulate_paths(paths: list[Bars], spec: StrategySpec, params: Any, ex: ExecutionConfig,
                   freq: str, funding: list[pd.Series | None]) -> tuple[np.ndarray, float]:
    """Signals of ``spec`` on each path, then the engine's kernel on each: (paths, 6) rows of
    final equity, max drawdown, share of bars under water, lowest equity, liquidations and
    trades (``P_*`` columns), and the seconds spent in the kernel. ``funding``: each path's
    funding rates by settlement time (None: no funding)."""
    rows = np.empty((len(paths), 6))
    simulate = native.kernel("backtest.engine.kernels", "simulate_column_nb")
    max_drawdown = native.kernel("backtest.metrics.kernels", "max_drawdown_nb")
    kernel_s = 0.0
    for j, bars in enumerate(paths):
        sig = spec.signals(bars, spec.features(bars, params, {}), params)
        run = engine.kernel_inputs(bars, sig, ex, freq, funding[j])
        rec = engine.recorded(len(bars))
        started = time.perf_counter()
        st = simulate(run.market, run.signals, run.terms, run.tiers, rec)
        kernel_s += time.perf_counter() - started
        equity = rec.equity
        peak = np.maximum.accumulate(np.concatenate(([ex.init_cash], equity)))[1:]
        rows[j] = (st[layout.S_CASH], max_drawdown(equity, float(ex.init_cash)),
                   float(np.mean(equity < peak)), equity.min(), st[layout.S_LIQS],
                   st[layout.S_TRADES])
    return rows, kernel_s


def synthetic_funding(index: pd.DatetimeIndex, crash: np.ndarray, freq: str, base_rate: float,
                      cfg: StressConfig, rng: np.random.Generator) -> list[pd.Series]:
    """Per path, funding rates for settlements at 00/08/16 UTC: ``base_rate``, or
    the spike rate with ``funding_spike_prob`` at settlements inside a crash regime."""
    first, last = index[0].floor("1D"), index[-1] + pd.Timedelta(freq)
    times = pd.date_range(first, last, freq="8h")
    times = times[(times >= index[0]) & (times < last)]
    bar = np.searchsorted(index.asi8, times.as_unit(index.unit).asi8, side="right") - 1
    out = []
    for column in range(crash.shape[1]):
        spike = crash[bar, column] & (rng.random(len(times)) < cfg.shocks.funding_spike_prob)
        rates = np.where(spike, cfg.shocks.funding_spike_rate, base_rate)
        out.append(pd.Series(rates, index=times))
    return out


def _distribution(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    return {"mean": float(finite.mean()),
            "percentiles": {str(p): float(v) for p, v in
                            zip(PERCENTILES, np.percentile(finite, PERCENTILES), strict=True)},
            "values": np.round(values, 4).tolist()}


def path_metrics(raw: np.ndarray, init_cash: float, ruin_pct: float) -> dict[str, np.ndarray]:
    """Named per-path metrics from :func:`simulate_paths` rows."""
    return {"total_return_pct": 100.0 * (raw[:, P_EQUITY] / init_cash - 1.0),
            "max_drawdown_pct": 100.0 * raw[:, P_DRAWDOWN],
            "time_under_water_pct": 100.0 * raw[:, P_UNDER_WATER],
            "liquidated": raw[:, P_LIQUIDATIONS] > 0,
            "ruined": raw[:, P_LOWEST] <= init_cash * (1.0 - ruin_pct / 100.0),
            "n_trades": raw[:, P_TRADES]}


def _probability(flags: np.ndarray) -> dict[str, Any]:
    hits = int(np.sum(flags))
    low, high = bs.wilson(hits, flags.size)
    return {"paths": int(flags.size), "count": hits, "p": hits / flags.size, "ci": [low, high]}


def stress(run: RunConfig, cfg: StressConfig, spec: StrategySpec, source: str
           ) -> dict[str, Any]:
    """Run the stress test in memory and return its JSON-ready result."""
    started = time.perf_counter()
    if spec.requires:
        raise ConfigError(f"{source}: strategy.name: expected a strategy that reads bars only "
                          f"(synthetic paths have no {', '.join(spec.requires)} series), found "
                          f"{spec.name!r}")
    inp = prepare(run, spec, source)
    history, real, info, real_funding = inp.history, inp.bars, inp.info, inp.funding
    if len(real) < 2:
        raise ConfigError(f"{source}: data: expected at least 2 bars in the run range, found "
                          f"{len(real)}")
    src = synthetic.source_from(history)
    abs_block = bs.block_length(np.abs(src.log_return))
    block = abs_block if cfg.block == "auto" else float(cfg.block)
    with_funding = run.execution.instrument == "perp" and run.execution.funding
    base_rate = (cfg.shocks.funding_rate if cfg.shocks.funding_rate is not None
                 else float(real_funding.mean()) if real_funding is not None else 0.0)
    rng = np.random.default_rng(cfg.seed)
    anchor = float(real["open"].iloc[0])
    shocked = run.execution
    if cfg.shocks.slippage_vol_coef > 0:
        shocked = shocked.model_copy(update={"slippage_model": "sqrt_impact",
                                             "slippage_vol_coef": cfg.shocks.slippage_vol_coef})
    sim_started = time.perf_counter()
    raw, kernel_s = [], 0.0
    for first in range(0, cfg.paths, CHUNK):
        count = min(CHUNK, cfg.paths - first)
        crash = synthetic.regime_paths(rng, len(real), count, src.switch)
        idx = synthetic.sample_indices(rng, src, crash, block)
        first_bar = src.open_rel[idx[0]] * np.exp(src.log_return[idx[0]])
        paths = synthetic.build(src, idx, crash, anchor / first_bar, cfg.shocks, rng)
        funding = (synthetic_funding(real.index, crash, info.freq, base_rate, cfg, rng)
                   if with_funding else [None] * count)
        chunk, seconds = simulate_paths([paths.bars(j, real.index) for j in range(count)],
                                        spec, inp.params, shocked, info.freq, funding)
        raw.append(chunk)
        kernel_s += seconds
    sim_s = time.perf_counter() - sim_started
    metrics = path_metrics(np.vstack(raw), run.execution.init_cash, cfg.ruin_pct)
    real_raw = simulate_paths([real], spec, inp.params, run.execution, info.freq,
                              [real_funding if with_funding else None])[0]
    real_metrics = path_metrics(real_raw, run.execution.init_cash, cfg.ruin_pct)
    # a spot account cannot be liquidated: its probability is not reported
    outcomes = ({"liquidation": "liquidated"} if run.execution.instrument == "perp" else {}) \
        | {"ruin": "ruined"}
    config = {"run": run.model_dump(mode="json"), "stress": cfg.model_dump(mode="json")}
    blob = json.dumps({"config": config, "inputs": inp.input_hashes,
                       "strategy": strategy_source_sha256(spec)}, sort_keys=True)
    label = files.safe_name(f"stress-{run.name or spec.name}")
    return {
        "schema_version": SCHEMA_VERSION, "kind": "stress",
        "stress_id": f"{label}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}",
        "config": config, "seed": cfg.seed,
        "strategy": {"name": spec.name, "params": params_dict(inp.params)},
        "dataset": {"name": info.name, "sha256": info.sha256, "timeframe": info.timeframe,
                    "start": iso(real.index[0]), "end": iso(real.index[-1]), "bars": len(real),
                    "source_start": iso(history.index[0])},
        "bootstrap": {
            "block_length": block, "block_rule": ("Politis-White on |log returns|"
                                                  if cfg.block == "auto" else "configured"),
            "politis_white_abs_returns": abs_block,
            "politis_white_returns": bs.block_length(src.log_return),
            "crash_share_source": float(src.crash.mean()),
            "switch_calm_to_crash": src.switch[0], "switch_crash_to_calm": src.switch[1],
            "funding_rate": base_rate if with_funding else None},
        "distribution": {key: _distribution(metrics[key]) for key in METRICS},
        "probabilities": {name: _probability(metrics[flag]) for name, flag in outcomes.items()},
        "real": {"metrics": {key: float(real_metrics[key][0]) for key in METRICS},
                 "events": {name: bool(real_metrics[flag][0]) for name, flag in outcomes.items()},
                 "percentile_rank": {key: bs.percentile_rank(metrics[key],
                                                             float(real_metrics[key][0]))
                                     for key in METRICS}},
        "timing": {"created_at": parse_utc_now(), "paths_s": round(sim_s, 3),
                   "kernel_s": round(kernel_s, 3),
                   "duration_s": round(time.perf_counter() - started, 3)},
    }


def render_text(result: dict[str, Any]) -> str:
    """The terminal summary: probabilities with intervals, percentiles, the real history."""
    probs = result["probabilities"]
    lines = [f"stress {result['strategy']['name']}: {probs['ruin']['paths']} paths of "
             f"{result['dataset']['bars']} {result['dataset']['timeframe']} bars, seed "
             f"{result['seed']}, mean block {result['bootstrap']['block_length']:.0f} bars "
             f"({result['bootstrap']['block_rule']}); paths {result['timing']['paths_s']:.1f} s, "
             f"of which the engine kernel {result['timing']['kernel_s']:.1f} s"]
    for name, prob in probs.items():
        lines.append(f"  P({name}) = {100 * prob['p']:.1f}% ({prob['count']}/{prob['paths']}), "
                     f"95% CI {100 * prob['ci'][0]:.1f}%..{100 * prob['ci'][1]:.1f}%")
    for key, dist in result["distribution"].items():
        pct = dist["percentiles"]
        real = result["real"]["metrics"][key]
        lines.append(f"  {key}: p5 {pct['5']:.1f}  p50 {pct['50']:.1f}  p95 {pct['95']:.1f}; "
                     f"real {real:.1f} (rank {result['real']['percentile_rank'][key]:.0f})")
    return "\n".join(lines)
