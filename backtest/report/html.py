"""HTML views of report JSON: run reports, optimization reports and run comparisons.

Pure renderings: every number shown comes from ``report.json`` / ``optimization.json`` and the
CSV records beside them. Pages are self-contained and work offline: plotly.js is inlined once per
page, chart data travels as JSON in a ``<script type="application/json">`` block (``<``, ``>``
and ``&`` escaped so no value can close the script), and Jinja2 autoescapes everything else.
Names drawn inside charts are HTML-escaped too, because plotly renders a subset of HTML in text.

Imports from crashbt: :mod:`backtest.catalogue`, :mod:`backtest.errors`, :mod:`backtest.report`
(reading run directories) and, only to redraw the price chart of a run whose ``equity.csv`` has no
``close`` column, :mod:`backtest.data`. Never imports the engine, vectorbt or optuna.
"""

from __future__ import annotations

import html as html_lib
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from backtest import catalogue
from backtest.errors import UserError
from backtest.report import files as report_io

MAX_POINTS = 5000
#: +1: higher is better, -1: lower is better; metrics not listed have no "best" (n_trades, ...).
EXIT_STYLE: dict[str, tuple[str, str]] = {  # exit_reason -> (marker symbol, colour)
    "signal": ("x", "#555555"), "stop": ("x", "#d62728"), "target": ("star", "#2ca02c"),
    "trailing": ("x", "#ff7f0e"), "liquidation": ("diamond", "#9467bd"),
    "end": ("square-open", "#7f7f7f"),
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
DIVERGING = [[0.0, "#c0392b"], [0.5, "#f7f7f7"], [1.0, "#1e8449"]]  # red loss, green gain
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                   "\u2028": "\\u2028", "\u2029": "\\u2029"}


# ---------------------------------------------------------------- shared helpers


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backtest.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["raw"] = raw_value
    env.globals["plotly_js"] = plotly_js
    return env


@cache
def plotly_js() -> markupsafe.Markup:
    """The plotly.js bundle shipped with the plotly package (inlined once per page, no CDN)."""
    from plotly.offline import get_plotlyjs

    return markupsafe.Markup(get_plotlyjs().replace("</script", "<\\/script"))


def format_number(value: Any) -> str:
    """Numbers as shown in reports: 4 decimals, thousands separators, n/a for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.2f}"


def raw_value(value: Any) -> str:
    """A value as JSON text, for ``data-value`` attributes that tests and sorting read back."""
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return json.dumps(value, default=str)


def script_json(data: Any) -> markupsafe.Markup:
    """JSON safe to embed inside ``<script>``: no ``</script>``, no ``<!--``, no raw U+2028."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), default=str)
    for char, escape in _SCRIPT_ESCAPES.items():
        text = text.replace(char, escape)
    return markupsafe.Markup(text)


def plot_text(text: Any) -> str:
    """A name drawn by plotly (trace name, annotation): escaped, as plotly parses some HTML."""
    return html_lib.escape(str(text), quote=False)


def finite_list(values: Any) -> list[float | None]:
    """Numbers for chart JSON: NaN and inf become null (JSON has no NaN)."""
    arr = np.asarray(values, dtype=float)
    return pd.Series(arr).astype(object).where(np.isfinite(arr), None).tolist()


def iso_list(index: pd.DatetimeIndex) -> list[str]:
    return list(index.strftime("%Y-%m-%dT%H:%M:%SZ"))


def downsample_index(n: int, columns: list[np.ndarray], max_points: int = MAX_POINTS) -> np.ndarray:
    """Row positions to plot: all rows when ``n <= max_points``, else per bucket the first row
    and each column's minimum and maximum, so peaks and troughs (drawdowns) survive."""
    if n <= max_points:
        return np.arange(n)
    keep_per_bucket = 1 + 2 * len(columns)
    buckets = max(1, max_points // keep_per_bucket)
    labels = np.arange(n) * buckets // n
    keep = [np.unique(labels, return_index=True)[1], np.array([n - 1])]
    for col in columns:
        grouped = pd.Series(np.nan_to_num(col, nan=np.nanmean(col))).groupby(labels)
        keep += [grouped.idxmin().to_numpy(), grouped.idxmax().to_numpy()]
    return np.unique(np.concatenate(keep))


def figure(div_id: str, data: list[dict[str, Any]], layout: dict[str, Any],
           height: int = 380) -> dict[str, Any]:
    """One chart for the page's plot loop: traces + layout with the house style."""
    base = {"height": height, "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
            "hovermode": "x unified", "legend": {"orientation": "h", "y": -0.15},
            "paper_bgcolor": "#ffffff", "plot_bgcolor": "#fafafa"}
    return {"id": div_id, "data": data, "layout": base | layout}


def _render(template: str, figures: list[dict[str, Any]], **context: Any) -> str:
    return _env().get_template(template).render(
        figures=figures, figures_json=script_json(figures), **context)


def metric_keys(*metric_dicts: dict[str, Any]) -> list[str]:
    """The union of metric names in first-seen order (perp fields appear when present)."""
    keys: dict[str, None] = {}
    for metrics in metric_dicts:
        keys.update(dict.fromkeys(metrics))
    return list(keys)


def best_index(values: list[Any], direction: int) -> int | None:
    """Index of the best value for a metric direction (None when undefined or all equal)."""
    nums = [(i, v) for i, v in enumerate(values)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if direction == 0 or len(nums) < 2 or len({v for _, v in nums}) == 1:
        return None
    pick = max if direction > 0 else min
    return pick(nums, key=lambda item: item[1])[0]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``execution.fee_rate``), for config tables and diffs."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


SEGMENTS = (("by_regime", "Per regime"), ("by_window", "Per window"))


def segment_split(block: Any) -> tuple[dict[str, dict], dict[str, dict]]:
    """A ``by_regime``/``by_window`` block as (strategy, buy-and-hold) tables ``name -> metrics``:
    ``{"strategy": {...}, "buy_and_hold": {...}}`` or a flat ``name -> metrics`` (no benchmark)."""
    if not isinstance(block, dict):
        return {}, {}
    if isinstance(block.get("strategy"), dict):
        return block["strategy"], block.get("buy_and_hold") or {}
    return {k: v for k, v in block.items() if isinstance(v, dict)}, {}


def segment_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """``by_regime`` / ``by_window`` tables present in a report, strategy beside buy-and-hold."""
    tables = []
    for key, title in SEGMENTS:
        strat, bench = segment_split(report.get(key))
        if strat:
            tables.append({"key": key, "title": title, "strategy": strat, "benchmark": bench,
                           "columns": metric_keys(*strat.values(), *bench.values())})
    return tables


# ---------------------------------------------------------------- run report


@dataclass(frozen=True)
class RunRecords:
    """What a run directory holds: the report dict and its CSV records."""

    report: dict[str, Any]
    trades: pd.DataFrame
    equity: pd.DataFrame
    path: Path


def read_run_dir(run_dir: Path) -> RunRecords:
    """Load ``report.json``, ``trades.csv`` and ``equity.csv`` of a run (or from beside a JSON)."""
    run_dir = Path(run_dir)
    rep = report_io.read_report(run_dir)
    base = run_dir if run_dir.is_dir() else run_dir.parent
    files = rep.get("files", {})
    equity_path = base / files.get("equity", "equity.csv")
    trades_path = base / files.get("trades", "trades.csv")
    equity = pd.DataFrame()
    if equity_path.is_file():
        equity = pd.read_csv(equity_path)
        equity.index = pd.DatetimeIndex(pd.to_datetime(equity.pop("timestamp"), utc=True))
    trades = pd.read_csv(trades_path) if trades_path.is_file() else pd.DataFrame()
    return RunRecords(report=rep, trades=trades, equity=equity, path=base)


def load_price(rep: dict[str, Any], equity: pd.DataFrame) -> pd.Series | None:
    """Close prices for the price chart: ``equity.csv``'s ``close`` column when present, else
    the bars the report names, re-read and checked against the report's dataset sha256."""
    if "close" in equity:
        return equity["close"]
    from backtest.config.data import DataConfig
    from backtest.data import bars as data

    try:
        bars, info = data.load_bars(DataConfig.model_validate(rep["config"]["data"]), "report")
    except (UserError, KeyError, ValueError):
        return None
    if info.sha256 != rep.get("dataset", {}).get("sha256"):
        return None
    return bars["close"].reindex(equity.index) if len(equity) else bars["close"]


def shading(rep: dict[str, Any]) -> list[dict[str, Any]]:
    """Background rectangles for the report's ``regime_spans`` (``{regime, start, end}``)."""
    spans = [(str(s["regime"]), s["start"], s["end"]) for s in rep.get("regime_spans") or []
             if s.get("regime") != "calm"]
    colours = {lab: PALETTE[i % len(PALETTE)]
               for i, lab in enumerate(dict.fromkeys(s[0] for s in spans))}
    return [{"type": "rect", "xref": "x", "yref": "paper", "x0": t0, "x1": t1, "y0": 0, "y1": 1,
             "fillcolor": colours[lab], "opacity": 0.12, "line": {"width": 0}, "layer": "below",
             "name": plot_text(lab), "label": {"text": plot_text(lab), "font": {"size": 10},
                                               "textposition": "top left"}}
            for lab, t0, t1 in spans]


def _line(x: list[str], y: Any, name: str, colour: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": x, "y": finite_list(y),
            "name": plot_text(name), "line": {"color": colour, "width": 1.5}} | extra


def equity_figures(rep: dict[str, Any], equity: pd.DataFrame,
                   price: pd.Series | None, trades: pd.DataFrame) -> list[dict[str, Any]]:
    """Equity vs buy-and-hold, underwater, and price with trades and levels."""
    eq = equity["equity"].to_numpy(dtype=float)
    bh = equity["buy_and_hold"].to_numpy(dtype=float) if "buy_and_hold" in equity else None
    cols = [eq] + ([bh] if bh is not None else [])
    dd = 100.0 * (eq / np.maximum.accumulate(eq) - 1.0)
    cols.append(dd)
    if price is not None:
        cols.append(price.to_numpy(dtype=float))
    keep = downsample_index(len(eq), cols)
    x = iso_list(equity.index[keep])
    label = rep["strategy"]["label"]
    eq_traces = [_line(x, eq[keep], label, PALETTE[0])]
    dd_traces = [_line(x, dd[keep], label, PALETTE[0], fill="tozeroy")]
    if bh is not None:
        bh_dd = 100.0 * (bh / np.maximum.accumulate(bh) - 1.0)
        eq_traces.append(_line(x, bh[keep], "buy and hold", "#999999"))
        dd_traces.append(_line(x, bh_dd[keep], "buy and hold", "#999999"))
    figs = [
        figure("chart-equity", eq_traces, {"title": {"text": "Equity vs buy and hold"},
                                           "yaxis": {"title": {"text": "equity"}},
                                           "shapes": shading(rep)}),
        figure("chart-underwater", dd_traces, {"title": {"text": "Underwater (drawdown %)"},
                                               "yaxis": {"title": {"text": "% below peak"}}},
               height=260),
    ]
    if price is not None:
        figs.append(price_figure(rep, x, price.to_numpy(dtype=float)[keep], trades))
    return figs


def price_figure(rep: dict[str, Any], x: list[str], close: np.ndarray,
                 trades: pd.DataFrame) -> dict[str, Any]:
    """Close price with entries, exits by reason, and the strategy's levels as lines."""
    traces = [_line(x, close, "close", "#444444", hovertemplate="%{y:,.2f}")]
    if len(trades):
        for direction, symbol, colour in (("long", "triangle-up", "#2ca02c"),
                                          ("short", "triangle-down", "#d62728")):
            sel = trades[trades["direction"] == direction]
            if len(sel):
                traces.append({"type": "scatter", "mode": "markers", "name": f"{direction} entry",
                               "x": list(sel["entry_time"]), "y": finite_list(sel["entry_price"]),
                               "marker": {"symbol": symbol, "size": 11, "color": colour}})
        closed = trades[trades["exit_time"].notna()]
        for reason, sel in closed.groupby("exit_reason", sort=True):
            symbol, colour = EXIT_STYLE.get(str(reason), ("circle-open", "#17becf"))
            traces.append({"type": "scatter", "mode": "markers",
                           "name": plot_text(f"exit: {reason}"),
                           "x": list(sel["exit_time"]), "y": finite_list(sel["exit_price"]),
                           "marker": {"symbol": symbol, "size": 10, "color": colour,
                                      "line": {"width": 1.5, "color": colour}}})
    levels = {k: v for k, v in (rep["strategy"].get("levels") or {}).items()
              if isinstance(v, (int, float)) and math.isfinite(v)}
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": v, "y1": v,
               "line": {"color": PALETTE[(i + 4) % len(PALETTE)], "dash": "dash", "width": 1.2}}
              for i, v in enumerate(levels.values())]
    notes = [{"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": v,
              "yanchor": "bottom", "showarrow": False, "font": {"size": 11},
              "text": plot_text(f"{name} {v:,.2f}")} for name, v in levels.items()]
    return figure("chart-price", traces, {"title": {"text": "Price, trades and levels"},
                                          "shapes": shapes, "annotations": notes,
                                          "hovermode": "closest"}, height=420)


def monthly_returns(equity: pd.Series, init_cash: float) -> pd.DataFrame:
    """Percent return per calendar month (UTC): years as rows, months 1..12 as columns."""
    closes = equity.resample("MS").last().dropna()
    prev = closes.shift(1).fillna(init_cash)
    pct = 100.0 * (closes / prev - 1.0)
    frame = pd.DataFrame({"year": pct.index.year, "month": pct.index.month, "pct": pct.to_numpy()})
    return frame.pivot(index="year", columns="month", values="pct").reindex(columns=range(1, 13))


def monthly_figure(table: pd.DataFrame) -> dict[str, Any]:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    z = [finite_list(row) for row in table.to_numpy()]
    text = [["" if v is None else f"{v:+.1f}%" for v in row] for row in z]
    trace = {"type": "heatmap", "z": z, "x": months, "y": [str(y) for y in table.index],
             "text": text, "texttemplate": "%{text}", "colorscale": DIVERGING, "zmid": 0,
             "hovertemplate": "%{y} %{x}: %{z:.2f}%<extra></extra>", "xgap": 2, "ygap": 2}
    return figure("chart-monthly", [trace], {"title": {"text": "Monthly returns (%)"},
                                             "yaxis": {"type": "category"},
                                             "hovermode": "closest"},
                  height=120 + 40 * len(table))


def render_run(report: dict[str, Any], trades: list[dict[str, Any]],
               equity: pd.DataFrame | None = None, price: pd.Series | None = None) -> str:
    """The run report page. Without ``equity`` only tables are drawn (no charts)."""
    frame = pd.DataFrame(trades)
    figures: list[dict[str, Any]] = []
    caption = ""
    if equity is not None and len(equity):
        figures += equity_figures(report, equity, price, frame)
        init_cash = report["config"]["execution"]["init_cash"]
        figures.append(monthly_figure(monthly_returns(equity["equity"], init_cash)))
        if len(equity) > MAX_POINTS:
            caption = (f"Charts show {MAX_POINTS:,} or fewer of the {len(equity):,} bars: each "
                       "stretch keeps its first bar, highs and lows. Tables use every bar.")
    columns = [c for c in ("entry_time", "exit_time", "direction", "size", "entry_price",
                           "exit_price", "pnl", "return_pct", "fees", "funding_paid",
                           "exit_reason", "status") if c in frame]
    return _render("run.html", figures, report=report, trades=trades, trade_columns=columns,
                   segments=segment_table(report), config_rows=flatten(report["config"]),
                   caption=caption, has_price=price is not None,
                   metric_keys=metric_keys(report["metrics"], report.get("benchmark", {})),
                   direction={k: m.direction for k, m in catalogue.CATALOGUE.items()})


def render_run_dir(run_dir: Path) -> str:
    """Re-render a run's report page from its ``report.json`` and CSVs (no re-run)."""
    run = read_run_dir(run_dir)
    price = load_price(run.report, run.equity) if len(run.equity) else None
    return render_run(run.report, report_io.trades_records(run.trades), run.equity, price)


# ---------------------------------------------------------------- optimization report


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


def _objectives(opt: dict[str, Any]) -> list[dict[str, str]]:
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


def _trial_frame(opt: dict[str, Any], n_obj: int) -> pd.DataFrame:
    rows = []
    for t in opt.get("trials", []):
        values = list(t.get("values") or [])
        if t.get("state", "COMPLETE") != "COMPLETE" or len(values) < n_obj:
            continue
        rows.append({"number": t["number"], **{f"obj{i}": values[i] for i in range(n_obj)},
                     **{f"p:{k}": v for k, v in (t.get("params") or {}).items()}})
    return pd.DataFrame(rows)


def _fold_rows(opt: dict[str, Any]) -> list[dict[str, Any]]:
    """The best trial's folds as ``{name, is, oos}`` metric dicts (``best.folds``, else folds
    that carry metrics)."""
    folds = (opt.get("best") or {}).get("folds") or [
        f for f in opt.get("folds") or [] if isinstance(f, dict) and "is" in f]
    return [{"name": str(f.get("name", f.get("fold", i))), "is": f.get("is") or {},
             "oos": f.get("oos") or {}} for i, f in enumerate(folds)]


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
        {"type": "scatter", "mode": "markers", "x": num, "y": finite_list(y), "name": name,
         "marker": {"color": PALETTE[0], "size": 6}},
        _line(num, best, f"best {first['name']}", PALETTE[3])],
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
    dims = []
    for col in pcols:
        values = trials[col]
        if pd.api.types.is_numeric_dtype(values):
            dims.append({"label": plot_text(col[2:]), "values": finite_list(values)})
        else:
            cats = sorted(values.astype(str).unique())
            codes = values.astype(str).map({c: i for i, c in enumerate(cats)})
            dims.append({"label": plot_text(col[2:]), "values": codes.tolist(),
                         "tickvals": list(range(len(cats))),
                         "ticktext": [plot_text(c) for c in cats]})
    dims.append({"label": name, "values": finite_list(y)})
    figs.append(figure("chart-parallel", [
        {"type": "parcoords", "dimensions": dims,
         "line": {"color": finite_list(y), "colorscale": "Viridis", "showscale": True}}],
        {"title": {"text": "Parallel coordinates"}, "margin": {"l": 60, "r": 60, "t": 80,
                                                                "b": 30}}, height=400))
    for i, col in enumerate(pcols):
        figs.append(figure(f"chart-slice-{i}", [
            {"type": "scatter", "mode": "markers", "x": trials[col].tolist(),
             "y": finite_list(y), "marker": {"color": num, "colorscale": "Blues", "size": 7,
                                             "showscale": i == 0}, "name": name}],
            {"title": {"text": f"Slice: {plot_text(col[2:])}"},
             "xaxis": {"title": {"text": plot_text(col[2:])}},
             "yaxis": {"title": {"text": name}}, "hovermode": "closest"}, height=300))
    if len(objs) >= 2:
        front = {p if isinstance(p, int) else p.get("number")
                 for p in opt.get("pareto_front") or []}
        on = trials["number"].isin(front).to_numpy()
        traces = [{"type": "scatter", "mode": "markers", "name": label,
                   "x": finite_list(trials["obj0"][mask]), "y": finite_list(trials["obj1"][mask]),
                   "text": [f"trial {n}" for n in trials["number"][mask]],
                   "marker": {"color": colour, "size": 9 if front_pts else 6}}
                  for label, mask, colour, front_pts in
                  (("trials", ~on, "#bbbbbb", False), ("Pareto front", on, PALETTE[3], True))]
        figs.append(figure("chart-pareto", traces, {
            "title": {"text": "Pareto front"}, "hovermode": "closest",
            "xaxis": {"title": {"text": f"{name} ({first['direction']})"}},
            "yaxis": {"title": {"text": f"{plot_text(objs[1]['name'])} "
                                        f"({objs[1]['direction']})"}}}))
    folds = _fold_rows(opt)
    metric = first["name"] if any(first["name"] in f["is"] for f in folds) else next(
        (k for f in folds for k in f["is"]), None)
    if folds and metric:
        xs = [plot_text(f["name"]) for f in folds]
        figs.append(figure("chart-folds", [
            {"type": "bar", "name": "in-sample", "x": xs, "marker": {"color": PALETTE[0]},
             "y": finite_list([f["is"].get(metric, np.nan) for f in folds])},
            {"type": "bar", "name": "out-of-sample", "x": xs, "marker": {"color": PALETTE[1]},
             "y": finite_list([f["oos"].get(metric, np.nan) for f in folds])}],
            {"title": {"text": f"In-sample vs out-of-sample {plot_text(metric)} per fold"},
             "barmode": "group", "xaxis": {"type": "category"}, "hovermode": "closest"}))
    return figs


def render_optimization(opt: dict[str, Any]) -> str:
    """The optimization report page for an ``optimization.json`` dict."""
    objs = _objectives(opt)
    trials = _trial_frame(opt, len(objs))
    importances = opt.get("param_importances") or {}
    if not importances and not trials.empty:
        pframe = trials[[c for c in trials if c.startswith("p:")]]
        pframe.columns = [c[2:] for c in pframe.columns]
        importances = param_importances(pframe, trials["obj0"].to_numpy(dtype=float))
    folds = _fold_rows(opt)
    fold_keys = metric_keys(*(f["is"] for f in folds), *(f["oos"] for f in folds))
    over = opt.get("overfitting") or {}
    decay_rows = over.get("decay") if isinstance(over.get("decay"), list) else []
    best_trial = opt.get("best") or {}
    best = best_trial.get("params") or opt.get("best_params") or {}
    walk = opt.get("walk_forward") or {}
    return _render("optimization.html", optimization_figures(opt, objs, trials, importances),
                   opt=opt, objectives=objs, n_trials=len(opt.get("trials", [])),
                   n_complete=len(trials), best_params=best,
                   best_values=best_trial.get("values",
                                              opt.get("best_values", opt.get("best_value"))),
                   walk=walk,
                   importances=importances, folds=folds, fold_keys=fold_keys,
                   reading=overfitting_reading(over), decay_rows=decay_rows,
                   decay_keys=[k for k in metric_keys(*(d for d in decay_rows
                                                         if isinstance(d, dict)))
                               if k != "params"])


# ---------------------------------------------------------------- comparison


def render_compare(runs: list[RunRecords], names: list[str]) -> str:
    """Runs side by side: metrics (best per row marked), equity overlaid, segments, config diff."""
    reps = [r.report for r in runs]
    keys = metric_keys(*(r["metrics"] for r in reps))
    metric_rows = []
    for key in keys:
        values = [r["metrics"].get(key) for r in reps]
        metric_rows.append({"key": key, "values": values,
                            "best": best_index(values, catalogue.direction(key))})
    traces = []
    for i, (run, name) in enumerate(zip(runs, names, strict=True)):
        if "equity" not in run.equity:
            continue
        eq = run.equity["equity"].to_numpy(dtype=float)
        keep = downsample_index(len(eq), [eq])
        init = run.report["config"]["execution"]["init_cash"]
        traces.append(_line(iso_list(run.equity.index[keep]), 100.0 * (eq[keep] / init - 1.0),
                            name, PALETTE[i % len(PALETTE)]))
    first = next((r for r in runs if "buy_and_hold" in r.equity), None)
    if first is not None:
        bh = first.equity["buy_and_hold"].to_numpy(dtype=float)
        keep = downsample_index(len(bh), [bh])
        init = first.report["config"]["execution"]["init_cash"]
        traces.append(_line(iso_list(first.equity.index[keep]), 100.0 * (bh[keep] / init - 1.0),
                            "buy and hold", "#999999", line={"color": "#999999", "dash": "dot"}))
    figs = [figure("chart-compare-equity", traces, {
        "title": {"text": "Return on initial cash (%)"},
        "yaxis": {"title": {"text": "%"}}})] if traces else []
    segments = []
    for key, title in SEGMENTS:
        tables = [segment_split(r.get(key))[0] for r in reps]
        names_seen = metric_keys(*tables)
        if names_seen:
            segments.append({"title": title, "key": key, "segments": names_seen,
                             "values": [[t.get(seg) or {} for t in tables]
                                        for seg in names_seen]})
    flat = [flatten(r["config"]) for r in reps]
    diff = [(k, [f.get(k) for f in flat]) for k in metric_keys(*flat)
            if len({json.dumps(f.get(k), default=str) for f in flat}) > 1]
    return _render("compare.html", figs, runs=reps, names=names, metric_rows=metric_rows,
                   segments=segments, segment_metrics=("total_return_pct", "max_drawdown_pct",
                                                       "sharpe", "n_trades"),
                   diff=diff, direction={k: m.direction for k, m in catalogue.CATALOGUE.items()})
