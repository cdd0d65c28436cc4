"""The optimization report page for an ``optimization.json``: best parameters (rounded), the
overfitting measures in plain words, search history, importances, a 2-D heat map of the
objective over the most important parameter pairs, parallel coordinates, slices, the Pareto
front, and walk-forward folds with their trade counts.

Imports from crashbt: :mod:`backtest.report` only (never optuna: the JSON is the record).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from backtest.report import charts, formatting, templating
from backtest.report.charts import PALETTE, figure, line, plot_text

HEAT_BINS = 8
HEAT_PARAMS = 4  # heat maps for every pair among the this many most important parameters
DECAY_COLUMNS = ("number", "metric", "is", "oos", "decay", "oos_over_is")
LINE_COLOURS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")  # viridis, worst to best


def param_importances(params: pd.DataFrame, objective: np.ndarray, bins: int = 5) -> dict:
    """Share of the objective's variance explained by each parameter alone (correlation ratio):
    numeric parameters binned by quantiles, others grouped by value; shares sum to 1."""
    ok = np.isfinite(objective)
    params, y = params[ok], objective[ok]
    total = float(((y - y.mean()) ** 2).sum()) if y.size else 0.0
    raw: dict[str, float] = {}
    for name in params:
        col = params[name]
        numeric = pd.api.types.is_numeric_dtype(col) and col.nunique() > bins
        groups = pd.qcut(col, bins, duplicates="drop") if numeric else col.astype(str)
        stats = (pd.Series(y, index=params.index).groupby(groups, observed=True)
                 .agg(["mean", "size"]))
        between = float((stats["size"] * (stats["mean"] - y.mean()) ** 2).sum())
        raw[name] = between / total if total > 0 else 0.0
    norm = sum(raw.values())
    return {k: (v / norm if norm > 0 else 0.0) for k, v in
            sorted(raw.items(), key=lambda kv: -kv[1])}


def objectives(opt: dict[str, Any]) -> list[dict[str, str]]:
    """Objective names and directions, from ``objectives`` (names or dicts) or ``directions``."""
    objs = opt.get("objectives") or []
    dirs = opt.get("directions") or []
    out = []
    for i, obj in enumerate(objs):
        if isinstance(obj, dict):
            out.append({"name": str(obj.get("metric", obj.get("name", f"objective {i}"))),
                        "direction": str(obj.get("direction", "maximize"))})
        else:
            direction = dirs[i] if i < len(dirs) else "maximize"
            out.append({"name": str(obj), "direction": str(direction)})
    width = max((len(t.get("values") or []) for t in opt.get("trials", [])), default=1)
    out += [{"name": f"objective {i}", "direction": "maximize"} for i in range(len(out), width)]
    return out


def trial_frame(opt: dict[str, Any], n_obj: int) -> pd.DataFrame:
    """Complete trials: ``number``, ``obj0..``, and ``p:<name>`` per parameter."""
    rows = []
    for t in opt.get("trials", []):
        values = list(t.get("values") or [])
        if t.get("state", "COMPLETE") != "COMPLETE" or len(values) < n_obj:
            continue
        rows.append({"number": t["number"], **{f"obj{i}": values[i] for i in range(n_obj)},
                     **{f"p:{k}": v for k, v in (t.get("params") or {}).items()}})
    return pd.DataFrame(rows)


def fold_trades(fold: dict[str, Any], part: str) -> Any:
    """A fold part's (``is``/``oos``) trade count: from the fold's ``n_trades`` dict when the
    optimizer wrote one, else from that part's metrics."""
    counts = fold.get("n_trades")
    if isinstance(counts, dict) and part in counts:
        return counts[part]
    return (fold.get(part) or {}).get("n_trades")


def fold_rows(opt: dict[str, Any]) -> list[dict[str, Any]]:
    """The best trial's folds as ``{name, is, oos}`` metric dicts (``best.folds``, else folds
    that carry metrics)."""
    folds = (opt.get("best") or {}).get("folds") or [
        f for f in opt.get("folds") or [] if isinstance(f, dict) and "is" in f]
    return [{"name": str(f.get("name", f.get("fold", i))), "is": f.get("is") or {},
             "oos": f.get("oos") or {}} for i, f in enumerate(folds)]


def walk_rows(walk: dict[str, Any]) -> list[dict[str, Any]]:
    """Walk-forward folds: the trial each fold picked, its IS/OOS metric and trade counts."""
    metric = walk.get("metric")
    return [{"fold": f.get("fold"), "trial": f.get("trial"),
             "is": (f.get("is") or {}).get(metric), "oos": (f.get("oos") or {}).get(metric),
             "is_trades": fold_trades(f, "is"), "oos_trades": fold_trades(f, "oos"),
             "params": f.get("params") or {}}
            for f in walk.get("folds") or []]


def overfitting_reading(over: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Overfitting measures with a plain-words reading of each."""
    out = []
    dsr = over.get("deflated_sharpe")
    dsr = dsr.get("dsr") if isinstance(dsr, dict) else dsr
    if isinstance(dsr, (int, float)):
        word = ("likely real skill (above 0.95)" if dsr >= 0.95 else
                "not distinguishable from luck over this many trials" if dsr < 0.5 else
                "weak evidence: could well be luck given the number of trials")
        out.append(("deflated Sharpe (probability the best Sharpe beats chance)", dsr, word))
    pbo = over.get("pbo")
    pbo = pbo.get("pbo") if isinstance(pbo, dict) else pbo
    if isinstance(pbo, (int, float)):
        word = ("high: the in-sample winner usually lands in the bottom half out of sample"
                if pbo > 0.5 else "moderate: treat the best parameters with caution"
                if pbo > 0.2 else "low: in-sample ranking tends to hold out of sample")
        out.append(("probability of backtest overfitting (PBO)", pbo, word))
    decay = over.get("decay")
    if isinstance(decay, (int, float)):
        out.append(("in-sample -> out-of-sample decay", decay,
                    "out-of-sample keeps most of the in-sample result" if decay < 0.3 else
                    "a large part of the in-sample result does not survive out of sample"))
    elif isinstance(decay, list):
        out.append(("in-sample -> out-of-sample decay per top candidate", len(decay),
                    "candidates listed in the table below"))
    return out


def decay_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Columns of the decay table: the known ones in reading order, then any others."""
    present = {k for row in rows for k in row} - {"params"}
    return [k for k in DECAY_COLUMNS if k in present] + sorted(present - set(DECAY_COLUMNS))


def _bins(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Bin codes and labels of one parameter: its values when few, else quantile ranges."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > HEAT_BINS:
        cut = pd.qcut(values, HEAT_BINS, duplicates="drop")
        labels = [f"{formatting.format_param(float(c.left))}–"
                  f"{formatting.format_param(float(c.right))}" for c in cut.cat.categories]
        return pd.Series(cut.cat.codes, index=values.index), labels
    ordered = sorted(values.unique(), key=lambda v: (isinstance(v, str), v))
    codes = values.map({v: i for i, v in enumerate(ordered)})
    return codes, [formatting.format_param(v) for v in ordered]


def _shades(values: dict[Any, float], maximize: bool) -> dict[Any, str]:
    """Cell colours from worst (white) to best (blue) over the cells' own range."""
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    span = hi - lo
    return {k: charts.heat_colour(((v - lo) if maximize else (hi - v)) / span if span > 0
                                  else 1.0, 1.0, diverging=False) for k, v in values.items()}


def param_heatmaps(trials: pd.DataFrame, objective: dict[str, str],
                   importances: dict[str, float]) -> list[dict[str, Any]]:
    """Best objective per cell over each pair of the most important parameters (rows: first
    parameter's bins, columns: the second's), coloured from worst (white) to best (blue)."""
    names = [k for k in importances if f"p:{k}" in trials and trials[f"p:{k}"].nunique() > 1]
    names = names[:HEAT_PARAMS]
    y = trials["obj0"].astype(float)
    best = max if objective["direction"] == "maximize" else min
    binned = {name: _bins(trials[f"p:{name}"]) for name in names}  # each is in 3 pairs
    maps = []
    for a, b in combinations(names, 2):
        rows_code, rows = binned[a]
        cols_code, cols = binned[b]
        cells: dict[tuple[int, int], list[float]] = {}
        for r, c, v in zip(rows_code, cols_code, y, strict=True):
            if np.isfinite(v):
                cells.setdefault((int(r), int(c)), []).append(float(v))
        picked = {k: best(v) for k, v in cells.items()}
        shade = _shades(picked, objective["direction"] == "maximize")
        maps.append({"key": f"{a} × {b}", "row_param": a, "col_param": b,
                     "rows": rows, "cols": cols,
                     "cells": [[(picked.get((r, c)), len(cells.get((r, c), [])),
                                 shade.get((r, c), ""))
                                for c in range(len(cols))] for r in range(len(rows))]})
    return maps


def parallel_figure(trials: pd.DataFrame, objective: str) -> dict[str, Any]:
    """Parallel coordinates as lines: every parameter and the objective scaled to its own
    [min, max], one colour per objective quintile (best in yellow), ranges written at the ends."""
    cols = [c for c in trials if c.startswith("p:")] + ["obj0"]
    names = [plot_text(c[2:]) for c in cols[:-1]] + [plot_text(objective)]
    scaled, lows, highs = [], [], []
    for col in cols:
        values = trials[col]
        if not pd.api.types.is_numeric_dtype(values):
            values = values.astype(str).map({v: i for i, v in enumerate(sorted(
                values.astype(str).unique()))})
            lows.append(str(trials[col].astype(str).min()))
            highs.append(str(trials[col].astype(str).max()))
        else:
            lows.append(formatting.format_param(values.min()))
            highs.append(formatting.format_param(values.max()))
        v = values.to_numpy(dtype=float)
        span = np.nanmax(v) - np.nanmin(v)
        scaled.append((v - np.nanmin(v)) / span if span > 0 else np.full_like(v, 0.5))
    matrix = np.column_stack(scaled)
    y = trials["obj0"].to_numpy(dtype=float)
    quintile = np.clip((pd.Series(y).rank(pct=True).to_numpy() * 5).astype(int), 0, 4)
    traces = []
    for q, colour in enumerate(LINE_COLOURS):
        xs: list[Any] = []
        ys: list[Any] = []
        for row in matrix[quintile == q]:
            xs += [*range(len(cols)), None]
            ys += [*charts.finite_list(row, 4), None]
        if xs:
            traces.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys,
                           "name": f"quintile {q + 1} of {plot_text(objective)}",
                           "hoverinfo": "skip", "line": {"color": colour, "width": 1},
                           "opacity": 0.55})
    notes = [{"x": i, "y": y_pos, "xref": "x", "yref": "y", "text": plot_text(text),
              "showarrow": False, "yanchor": anchor, "font": {"size": 10}}
             for i in range(len(cols))
             for y_pos, anchor, text in ((1.0, "bottom", highs[i]), (0.0, "top", lows[i]))]
    return figure("chart-parallel", traces, {
        "title": {"text": "Parallel coordinates"}, "hovermode": False, "annotations": notes,
        "xaxis": {"tickvals": list(range(len(cols))), "ticktext": names, "showgrid": True,
                  "zeroline": False, "ticklabelstandoff": 18, "range": [-0.3, len(cols) - 0.7]},
        "yaxis": {"visible": False, "range": [-0.12, 1.12]},
        "margin": {"l": 30, "r": 30, "t": 50, "b": 40}}, height=420)


def optimization_figures(opt: dict[str, Any], objs: list[dict[str, str]],
                         trials: pd.DataFrame, importances: dict[str, float]) -> list[dict]:
    """History, importances, parallel coordinates, slices, Pareto front, IS vs OOS."""
    figs: list[dict[str, Any]] = []
    if trials.empty:
        return figs
    first = objs[0]
    y = trials["obj0"].to_numpy(dtype=float)
    best = (np.maximum if first["direction"] == "maximize" else np.minimum).accumulate(y)
    num = trials["number"].tolist()
    name = plot_text(first["name"])
    figs.append(figure("chart-history", [
        {"type": "scatter", "mode": "markers", "x": num, "y": charts.finite_list(y),
         "name": name, "marker": {"color": PALETTE[0], "size": 6}},
        line(num, best, f"best {first['name']}", PALETTE[3])],
        {"title": {"text": "Optimization history"}, "xaxis": {"title": {"text": "trial"}},
         "yaxis": {"title": {"text": name}}, "hovermode": "closest"}))
    if importances:
        figs.append(figure("chart-importance", [
            {"type": "bar", "orientation": "h", "x": list(importances.values())[::-1],
             "y": [plot_text(k) for k in importances][::-1], "marker": {"color": PALETTE[0]}}],
            {"title": {"text": f"Parameter importance for {name}"},
             "xaxis": {"title": {"text": "share of variance explained"}},
             "hovermode": "closest"}, height=120 + 35 * len(importances)))
    pcols = [c for c in trials if c.startswith("p:")]
    figs.append(parallel_figure(trials, first["name"]))
    for i, col in enumerate(pcols):
        figs.append(figure(f"chart-slice-{i}", [
            {"type": "scatter", "mode": "markers", "x": trials[col].tolist(),
             "y": charts.finite_list(y), "name": name,
             "marker": {"color": num, "colorscale": "Blues", "size": 7, "showscale": i == 0}}],
            {"title": {"text": f"Slice: {plot_text(col[2:])}"},
             "xaxis": {"title": {"text": plot_text(col[2:])}},
             "yaxis": {"title": {"text": name}}, "hovermode": "closest"}, height=300))
    if len(objs) >= 2:
        front = {p if isinstance(p, int) else p.get("number")
                 for p in opt.get("pareto_front") or []}
        on = trials["number"].isin(front).to_numpy()
        traces = [{"type": "scatter", "mode": "markers", "name": label,
                   "x": charts.finite_list(trials["obj0"][mask]),
                   "y": charts.finite_list(trials["obj1"][mask]),
                   "text": [f"trial {n}" for n in trials["number"][mask]],
                   "marker": {"color": colour, "size": 9 if front_pts else 6}}
                  for label, mask, colour, front_pts in
                  (("trials", ~on, "#bbbbbb", False), ("Pareto front", on, PALETTE[3], True))]
        figs.append(figure("chart-pareto", traces, {
            "title": {"text": "Pareto front"}, "hovermode": "closest",
            "xaxis": {"title": {"text": f"{name} ({first['direction']})"}},
            "yaxis": {"title": {"text": f"{plot_text(objs[1]['name'])} "
                                        f"({objs[1]['direction']})"}}}))
    folds = fold_rows(opt)
    metric = first["name"] if any(first["name"] in f["is"] for f in folds) else next(
        (k for f in folds for k in f["is"]), None)
    if folds and metric:
        xs = [plot_text(f["name"]) for f in folds]
        figs.append(figure("chart-folds", [
            {"type": "bar", "name": "in-sample", "x": xs, "marker": {"color": PALETTE[0]},
             "y": charts.finite_list([f["is"].get(metric, np.nan) for f in folds])},
            {"type": "bar", "name": "out-of-sample", "x": xs, "marker": {"color": PALETTE[1]},
             "y": charts.finite_list([f["oos"].get(metric, np.nan) for f in folds])}],
            {"title": {"text": f"In-sample vs out-of-sample {plot_text(metric)} per fold"},
             "barmode": "group", "xaxis": {"type": "category"}, "hovermode": "closest"}))
    return figs


def render_optimization(opt: dict[str, Any]) -> str:
    """The optimization report page for an ``optimization.json`` dict."""
    objs = objectives(opt)
    trials = trial_frame(opt, len(objs))
    importances = opt.get("param_importances") or {}
    if not importances and not trials.empty:
        pframe = trials[[c for c in trials if c.startswith("p:")]]
        pframe.columns = [c[2:] for c in pframe.columns]
        importances = param_importances(pframe, trials["obj0"].to_numpy(dtype=float))
    folds = fold_rows(opt)
    over = opt.get("overfitting") or {}
    decay_rows = [d for d in over.get("decay") or [] if isinstance(d, dict)] \
        if isinstance(over.get("decay"), list) else []
    best_trial = opt.get("best") or {}
    walk = opt.get("walk_forward") or {}
    return templating.render(
        "optimization.html", optimization_figures(opt, objs, trials, importances),
        opt=opt, objectives=objs, n_trials=len(opt.get("trials", [])), n_complete=len(trials),
        best_params=best_trial.get("params") or opt.get("best_params") or {},
        best_values=best_trial.get("values", opt.get("best_values", opt.get("best_value"))),
        walk=walk, walk_rows=walk_rows(walk), importances=importances, folds=folds,
        fold_keys=formatting.ordered_keys(*(f["is"] for f in folds), *(f["oos"] for f in folds)),
        heatmaps=param_heatmaps(trials, objs[0], importances) if not trials.empty else [],
        reading=overfitting_reading(over), decay_rows=decay_rows,
        decay_keys=decay_columns(decay_rows))
