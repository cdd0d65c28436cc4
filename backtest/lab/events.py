"""``crashbt events``: what usually happened after a crash event, and how sure we can be.

Conventions (stated once, here):

* An event is dated at the first detection bar at whose CLOSE it was known (see
  :mod:`backtest.lab.detect`: price events at the confirming close, external series after their
  publication lag). ``decided_at`` is that bar's open-time label; ``known_at`` its close.
* Outcomes are measured on the study's bars (``[events] timeframe``, 1h by default) from the
  OPEN of the first bar opening at or after ``known_at`` (the engine's next-open fill): the
  forward return at horizon h is ``close(entry + h - 1 bar) / open(entry) - 1``; the maximum
  adverse / favourable excursion is the lowest low / highest high over the same bars relative
  to that open; the hit rate is the share of positive forward returns. Horizons shorter than
  the bar are skipped; an event whose horizon runs past the data is left out of that horizon.
* The unconditional distribution is the same measurement started at EVERY bar of the same data.
* Intervals are 95 % stationary-bootstrap percentile intervals. Events are resampled in time
  order with mean block length = events / independent events, where independent events are
  those whose horizon windows do not overlap (counted greedily); the unconditional series with
  mean block length max(h in bars, Politis-White length of 1-bar returns). ``excess`` is the
  event mean minus the unconditional mean, its interval from the event draws.
* Named crash windows (``datasets/regimes.toml``) list the events decided inside them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from backtest import checks
from backtest.config.common import iso, parse_utc_now
from backtest.config.data import DataConfig
from backtest.data import bars as data
from backtest.data import external, regimes
from backtest.data import files as data_files
from backtest.errors import ConfigError
from backtest.lab import bootstrap as bs
from backtest.lab.config import EventStudyConfig, EventType
from backtest.lab.detect import SOURCES, bar_duration, detect, duration, lookahead_offences
from backtest.report import files
from backtest.types import Bars

SCHEMA_VERSION = 1
STATS = ("return_pct", "mae_pct", "mfe_pct", "hit_rate_pct")


@dataclass(frozen=True)
class Outcomes:
    """Per-bar outcomes of one horizon, started at every bar (the unconditional sample)."""

    bars: int
    values: np.ndarray  # (starts, 4): return, MAE, MFE, hit (1/0), in percent


def outcomes(bars: Bars, k: int) -> Outcomes:
    """Forward return, MAE, MFE and hit over ``k`` bars from each bar's open."""
    o, h, lo, c = (bars[col].to_numpy(dtype=float) for col in ("open", "high", "low", "close"))
    starts = len(bars) - k + 1
    if starts <= 0:
        return Outcomes(k, np.empty((0, 4)))
    entry = o[:starts]
    ret = c[k - 1:] / entry - 1.0
    mae = sliding_window_view(lo, k).min(axis=1) / entry - 1.0
    mfe = sliding_window_view(h, k).max(axis=1) / entry - 1.0
    return Outcomes(k, 100.0 * np.column_stack((ret, mae, mfe, ret > 0)))


def independent(entries: np.ndarray, k: int) -> int:
    """Events whose ``k``-bar windows do not overlap the previous counted one (greedy)."""
    count, free_from = 0, -1
    for e in entries:
        if e >= free_from:
            count, free_from = count + 1, e + k
    return count


def _summary(values: np.ndarray, draws: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for j, name in enumerate(STATS):
        low, high = bs.interval(draws[:, j])
        out[name] = {"mean": float(values[:, j].mean()), "ci": [low, high]}
    out["return_pct"]["median"] = float(np.median(values[:, 0]))
    return out


def _horizon_table(entries: np.ndarray, outc: Outcomes, base: dict[str, Any],
                   reps: int, rng: np.random.Generator) -> dict[str, Any]:
    done = entries[entries < len(outc.values)]
    row: dict[str, Any] = {"bars": outc.bars, "n_events": int(done.size),
                           "n_independent": independent(done, outc.bars),
                           "unconditional": base}
    if not done.size:
        return row
    values = outc.values[done]
    draws = bs.bootstrap_means(values, done.size / row["n_independent"], reps, rng)
    row["event"] = _summary(values, draws)
    uncond = base["return_pct"]["mean"]
    row["excess_return_pct"] = {"mean": row["event"]["return_pct"]["mean"] - uncond,
                                "ci": [v - uncond for v in row["event"]["return_pct"]["ci"]]}
    return row


def unconditional(outc: Outcomes, block: float, reps: int, rng: np.random.Generator
                  ) -> dict[str, Any]:
    """Summary of the outcome started at every bar, with its block-bootstrap intervals."""
    draws = bs.bootstrap_means(outc.values, max(block, outc.bars), reps, rng)
    return {"n_starts": len(outc.values)} | _summary(outc.values, draws)


def mean_path(bars: Bars, entries: np.ndarray, steps: int, reps: int,
              rng: np.random.Generator) -> dict[str, Any]:
    """Average cumulative return (percent) ``0..steps-1`` bars after entry, its 95 % band, and the
    unconditional average path."""
    o, c = bars["open"].to_numpy(dtype=float), bars["close"].to_numpy(dtype=float)
    starts = len(bars) - steps + 1
    done = entries[entries < starts]
    base = np.array([np.mean(c[j:starts + j] / o[:starts]) * 100 - 100 for j in range(steps)])
    if not done.size:
        return {"bars": steps, "n_events": 0, "unconditional": _rounded(base)}
    paths = 100.0 * (c[done[:, None] + np.arange(steps)] / o[done][:, None] - 1.0)
    draws = bs.bootstrap_means(paths, done.size / independent(done, steps), reps, rng)
    bands = np.array([bs.interval(draws[:, j]) for j in range(steps)])
    return {"bars": steps, "n_events": int(done.size), "mean": _rounded(paths.mean(0)),
            "low": _rounded(bands[:, 0]), "high": _rounded(bands[:, 1]),
            "unconditional": _rounded(base)}


def _rounded(values: np.ndarray) -> list[float]:
    """Chart values to 4 decimals of a percent (the JSON stays small)."""
    return np.round(values, 4).tolist()


def _load_bars(symbol: str, timeframe: str) -> tuple[Bars, data.DataInfo]:
    return data.load_bars(DataConfig(dataset=f"{symbol.lower()}_{timeframe}"), "events")


def load_context(cfg: EventStudyConfig) -> dict[str, pd.DataFrame]:
    """Every external series the study's event types read: bundled, or the config's file."""
    kinds = sorted({SOURCES[t.kind] for t in cfg.events.types if t.kind in SOURCES})
    bundled = {e["kind"] for e in data_files.manifest().values()}
    context = {}
    for kind in kinds:
        src = cfg.external.get(kind)
        if kind not in bundled and (src is None or src.path is None):
            continue  # reported as skipped: no series
        context[kind] = external.load_external(kind, lag=src.lag if src else None,
                                               path=src.path if src else None)
    return context


def missing_series(etype: EventType, context: dict[str, pd.DataFrame]) -> str | None:
    """Why ``etype`` cannot be studied (its external series is absent), or None."""
    needs = SOURCES.get(etype.kind)
    if needs is None or needs in context:
        return None
    return f"no {needs} series is bundled; set [external.{needs}] path = \"...\""


def _event_rows(bars: Bars, flags: pd.Series, measure: Bars
                ) -> tuple[list[dict[str, Any]], np.ndarray]:
    """One row per event (decision, knowledge and entry times) and its entry bar positions."""
    decided = flags.index[flags.to_numpy()]
    known = decided + bar_duration(bars)
    entries = measure.index.searchsorted(known, side="left")
    rows = [{"decided_at": iso(d), "known_at": iso(k),
             "entry_at": iso(measure.index[e]) if e < len(measure) else None,
             "entry_price": float(measure["open"].iloc[e]) if e < len(measure) else None}
            for d, k, e in zip(decided, known, entries, strict=True)]
    return rows, np.asarray(entries, dtype=int)


def _windows(rows: list[dict[str, Any]], returns: dict[str, np.ndarray]) -> dict[str, Any]:
    out = {}
    decided = pd.DatetimeIndex([r["decided_at"] for r in rows])
    for win in regimes.windows().values():
        inside = np.flatnonzero((decided >= win.start) & (decided <= win.end))
        means = {h: (float(np.nanmean(v[inside])) if inside.size and np.isfinite(v[inside]).any()
                     else None) for h, v in returns.items()}
        out[win.name] = {"n_events": int(inside.size),
                         "events": [rows[i]["decided_at"] for i in inside],
                         "mean_return_pct": means}
    return out


def study(cfg: EventStudyConfig, source: str) -> dict[str, Any]:
    """Run the event study in memory and return its JSON-ready result."""
    started = time.perf_counter()
    ev = cfg.events
    rng = np.random.default_rng(ev.seed)
    context = load_context(cfg)
    horizons = {h: duration(h, f"{source}: events.horizons") for h in ev.horizons}
    results, datasets, base_tables = [], {}, {}
    for symbol in ev.symbols:
        measure, info = _load_bars(symbol, ev.timeframe)
        step = bar_duration(measure)
        datasets[symbol] = {"name": info.name, "sha256": info.sha256, "first": iso(info.first),
                            "last": iso(info.last), "bars": info.rows}
        log_ret = np.diff(np.log(measure["close"].to_numpy(dtype=float)))
        block = bs.block_length(log_ret)
        kept = {h: int(d / step) for h, d in horizons.items() if d >= step}
        tables = {h: outcomes(measure, k) for h, k in kept.items()}
        base = {h: unconditional(t, block, ev.bootstrap, rng) for h, t in tables.items()}
        base_tables[symbol] = {"block_length": block, "horizons": base,
                               "skipped_horizons": [h for h in horizons if h not in kept]}
        detection = {ev.timeframe: measure}
        for etype in ev.types:
            if etype.symbols is not None and symbol not in etype.symbols:
                continue
            results.append(_one_type(etype, symbol, measure, detection, context, cfg, tables,
                                     base, rng, source))
    config = cfg.canonical()
    blob = json.dumps({"config": config, "data": datasets}, sort_keys=True)
    label = files.safe_name(cfg.name or "events")
    return {
        "schema_version": SCHEMA_VERSION, "kind": "events",
        "study_id": f"{label}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}",
        "config": config, "seed": ev.seed, "datasets": datasets,
        "external": {k: {key: f.attrs.get(key) for key in ("name", "lag", "sha256")}
                     | {"first": iso(f.index[0]), "last": iso(f.index[-1])}
                     for k, f in context.items()},
        "unconditional": base_tables, "results": results,
        "timing": {"created_at": parse_utc_now(),
                   "duration_s": round(time.perf_counter() - started, 3)},
    }


def _one_type(etype: EventType, symbol: str, measure: Bars, detection: dict[str, Bars],
              context: dict[str, pd.DataFrame], cfg: EventStudyConfig,
              tables: dict[str, Outcomes], base: dict[str, Any], rng: np.random.Generator,
              source: str) -> dict[str, Any]:
    head = {"type": etype.name, "kind": etype.kind, "symbol": symbol,
            "timeframe": etype.timeframe}
    skipped = missing_series(etype, context)
    if skipped:
        return head | {"skipped": skipped}
    if etype.timeframe not in detection:
        detection[etype.timeframe] = _load_bars(symbol, etype.timeframe)[0]
    bars = detection[etype.timeframe]
    cooldown = duration(etype.cooldown or cfg.events.cooldown, f"{source}: events.cooldown")
    flags = detect(bars, context, etype, cooldown)
    rows, entries = _event_rows(bars, flags, measure)
    returns = {}
    for h, table in tables.items():
        ok = entries < len(table.values)
        values = np.full(len(entries), np.nan)
        values[ok] = table.values[entries[ok], 0]
        returns[h] = values
        for row, value in zip(rows, values, strict=True):
            row.setdefault("return_pct", {})[h] = None if np.isnan(value) else float(value)
    steps = int(duration(cfg.events.path, f"{source}: events.path") / bar_duration(measure))
    if steps < 1:
        raise ConfigError(f"{source}: events.path: expected at least one bar, found "
                          f"{cfg.events.path}")
    return head | {
        "cooldown": cfg.events.cooldown if etype.cooldown is None else etype.cooldown,
        "n_events": len(rows), "events": rows,
        "horizons": {h: _horizon_table(entries, t, base[h], cfg.events.bootstrap, rng)
                     for h, t in tables.items()},
        "path": mean_path(measure, entries, steps, cfg.events.bootstrap, rng),
        "windows": _windows(rows, returns),
    }


def lookahead(cfg: EventStudyConfig, source: str, cuts: int = 30
              ) -> dict[str, list[pd.Timestamp]]:
    """Per ``type @ symbol``: detection bars whose event changes when the future is removed
    (bars after a cut, external rows not truly public by then: the manifest's lag)."""
    context = load_context(cfg)
    lags = {kind: checks.true_lag(cfg, kind, frame) for kind, frame in context.items()}
    found = {}
    for symbol in cfg.events.symbols:
        for etype in cfg.events.types:
            if (etype.symbols is not None and symbol not in etype.symbols) or \
                    missing_series(etype, context):
                continue
            bars = _load_bars(symbol, etype.timeframe)[0]
            cooldown = duration(etype.cooldown or cfg.events.cooldown, f"{source}: cooldown")
            found[f"{etype.name} @ {symbol}"] = lookahead_offences(
                bars, context, lags, etype, cooldown, cuts, cfg.events.seed)
    return found
