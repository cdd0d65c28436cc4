"""The run report page: headline metrics against buy and hold, equity (log/linear), drawdown,
price with trades and levels, monthly returns, per-regime tables, trades, config.

Imports from crashbt: :mod:`backtest.catalogue`, :mod:`backtest.errors`, :mod:`backtest.report`
and, only to redraw the price chart of a run whose equity file has no ``close`` column,
:mod:`backtest.config` and :mod:`backtest.data`. Never the engine or optuna.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest import catalogue
from backtest.errors import UserError
from backtest.report import charts, formatting, templating
from backtest.report import files as report_io
from backtest.report.charts import PALETTE, figure, line
from backtest.report.equity import read_equity

MAX_TRADE_ROWS = 300  # about 70 kB of table; trades.csv holds every trade
MAX_GAP_ROWS = 100  # report.json holds every gap
# what a trades.csv must hold to be drawn (entries, exits and their reasons)
REQUIRED_TRADE_COLUMNS = ("entry_time", "exit_time", "direction", "entry_price", "exit_price",
                          "exit_reason")
TRADE_COLUMNS = ("entry_time", "exit_time", "direction", "size", "entry_price", "exit_price",
                 "pnl", "return_pct", "fees", "funding_paid", "exit_reason", "status")
EXIT_STYLE: dict[str, tuple[str, str]] = {  # exit_reason -> (marker symbol, colour)
    "signal": ("x", "#555555"), "stop": ("x", "#d62728"), "target": ("star", "#2ca02c"),
    "trailing": ("x", "#ff7f0e"), "liquidation": ("diamond", "#9467bd"),
    "end": ("square-open", "#7f7f7f"),
}
SEGMENTS = (("by_regime", "Per regime"), ("by_window", "Per window"))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TIME = {"series": "time"}  # the x array shared by the equity, drawdown and price charts


@dataclass(frozen=True)
class RunRecords:
    """What a run directory holds: the report dict and its CSV records."""

    report: dict[str, Any]
    trades: pd.DataFrame
    equity: pd.DataFrame
    path: Path


def read_run_dir(run_dir: Path) -> RunRecords:
    """Load ``report.json``, ``trades.csv`` and the equity file (``equity.csv`` or
    ``equity.parquet``, as ``files.equity`` names it) of a run (or from beside a JSON), each
    checked (:mod:`backtest.report.files`, :mod:`backtest.report.equity`): a tampered file is
    one line, exit 2."""
    run_dir = Path(run_dir)
    rep = report_io.read_report(run_dir)
    base = run_dir if run_dir.is_dir() else run_dir.parent
    equity_path = report_io.run_file(base, rep, "equity", "equity.csv")
    trades_path = report_io.run_file(base, rep, "trades", "trades.csv")
    equity = read_equity(equity_path) if equity_path.exists() else pd.DataFrame()
    trades = pd.DataFrame()
    if trades_path.exists():
        trades = report_io.read_table(trades_path, REQUIRED_TRADE_COLUMNS,
                                      times=REQUIRED_TRADE_COLUMNS[:2],
                                      texts=("direction", "exit_reason", "status"))
    return RunRecords(report=rep, trades=trades, equity=equity, path=base)


def load_price(rep: dict[str, Any], equity: pd.DataFrame) -> pd.Series | None:
    """Close prices for the price chart: the equity file's ``close`` column when present, else
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


def as_written(report: dict[str, Any], trades: list[dict[str, Any]]) -> tuple[dict, pd.DataFrame]:
    """The report and trades exactly as ``report.json`` and ``trades.csv`` hold them (sorted
    keys, CSV float precision), so the page a run writes and ``crashbt report`` re-renders from
    disk are the same bytes."""
    frame = pd.DataFrame(trades)
    if len(frame):
        frame = pd.read_csv(io.StringIO(report_io.records_csv(frame.infer_objects())))
    return report_io.as_json(report), frame


def regime_trade_counts(report: dict[str, Any], trades: pd.DataFrame) -> dict[str, int]:
    """Trades per regime, by the regime span their entry bar falls in (``regime_spans``); they
    add up to the run's ``n_trades`` (closed and open trades)."""
    spans = report.get("regime_spans") or []
    if not spans or "entry_time" not in trades:
        return {}
    starts = pd.DatetimeIndex(pd.to_datetime([s["start"] for s in spans], utc=True))
    entries = pd.DatetimeIndex(pd.to_datetime(trades["entry_time"], utc=True))
    where = np.clip(starts.searchsorted(entries, side="right") - 1, 0, len(spans) - 1)
    counts = {str(s["regime"]): 0 for s in spans}
    for i in where:
        counts[str(spans[i]["regime"])] += 1
    return counts


def segment_split(block: Any) -> tuple[dict[str, dict], dict[str, dict]]:
    """A ``by_regime``/``by_window`` block as (strategy, buy-and-hold) tables ``name -> metrics``:
    ``{"strategy": {...}, "buy_and_hold": {...}}`` or a flat ``name -> metrics`` (no benchmark)."""
    if not isinstance(block, dict):
        return {}, {}
    if isinstance(block.get("strategy"), dict):
        return block["strategy"], block.get("buy_and_hold") or {}
    return {k: v for k, v in block.items() if isinstance(v, dict)}, {}


def segments(report: dict[str, Any], trades: pd.DataFrame) -> list[dict[str, Any]]:
    """``by_regime`` / ``by_window`` tables, strategy beside buy-and-hold; regimes gain the
    strategy's trade count from ``trades`` when the report has none."""
    counts = regime_trade_counts(report, trades)
    tables = []
    for key, title in SEGMENTS:
        strat, bench = segment_split(report.get(key))
        if key == "by_regime" and counts:
            strat = {name: {"n_trades": counts.get(name, 0)} | m for name, m in strat.items()}
        if strat:
            tables.append({"key": key, "title": title, "strategy": strat, "benchmark": bench,
                           "columns": formatting.ordered_keys(*strat.values(), *bench.values())})
    return tables


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``execution.fee_rate``), for config tables and diffs."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def gap_summary(dataset: dict[str, Any]) -> dict[str, Any] | None:
    """Missing-bar stretches of the dataset: count, longest and total in hours, and the list."""
    gaps = dataset.get("gaps")
    if not isinstance(gaps, list) or not gaps:
        return None
    freq = dataset.get("freq") or dataset.get("timeframe") or "1h"
    hours = pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds() / 3600
    rows = [{"first": g.get("first_missing"), "last": g.get("last_missing"),
             "hours": float(g.get("missing_bars", 0)) * hours} for g in gaps]
    longest = max(rows, key=lambda r: r["hours"])
    return {"count": len(rows), "longest": longest,
            "total_hours": sum(r["hours"] for r in rows), "rows": rows[:MAX_GAP_ROWS]}


def drawdown_pct(values: np.ndarray) -> np.ndarray:
    """``100 * (values / running peak - 1)`` computed in one new array (10M bars: one array of
    80 MB instead of three at once)."""
    out = np.maximum.accumulate(values)
    np.divide(values, out, out=out)
    out -= 1.0
    out *= 100.0
    return out


def drawdown_pct_at(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`drawdown_pct` at the sorted ``rows`` only: the running peak at each row is the
    running maximum of the maxima of the stretches ending at the rows (exact: a maximum does not
    round), so no array as long as ``values`` is made (10M bars: 80 MB less at the page's
    peak)."""
    if rows.size == 0:
        return np.empty(0)
    stretch = np.maximum.reduceat(values[:rows[-1] + 1], np.concatenate(([0], rows[:-1] + 1)))
    out = np.maximum.accumulate(stretch)
    np.divide(values[rows], out, out=out)
    out -= 1.0
    out *= 100.0
    return out


def equity_figures(rep: dict[str, Any], equity: pd.DataFrame, price: pd.Series | None,
                   trades: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """Equity vs buy-and-hold, underwater, and price with trades and levels; plus the shared
    time axis they plot against."""
    eq = equity["equity"].to_numpy(dtype=float)
    bh = equity["buy_and_hold"].to_numpy(dtype=float) if "buy_and_hold" in equity else None
    cols = [eq] + ([bh] if bh is not None else [])
    dd = drawdown_pct(eq)
    cols.append(dd)
    if price is not None:
        cols.append(price.to_numpy(dtype=float))
    keep = charts.downsample_index(len(eq), cols)
    label = rep["strategy"]["label"]
    eq_traces = [line(TIME, eq[keep], label, PALETTE[0])]
    dd_traces = [line(TIME, dd[keep], label, PALETTE[0], fill="tozeroy")]
    if bh is not None:
        eq_traces.append(line(TIME, bh[keep], "buy and hold", "#999999"))
        dd_traces.append(line(TIME, drawdown_pct_at(bh, keep), "buy and hold", "#999999"))
    start, end = rep["dataset"]["start"], rep["dataset"]["end"]
    log = charts.wide_range(*cols[:2])
    del cols, dd  # plotted: 80 MB less while the candles are built (10M bars)
    series = {"time": charts.iso_list(equity.index[keep])}
    figs = [
        figure("chart-equity", eq_traces, {
            "title": {"text": "Equity vs buy and hold"}, "yaxis": {
                "title": {"text": "equity"}} | ({"type": "log", "dtick": "D2"} if log else {}),
            "shapes": charts.regime_bands(rep.get("regime_spans") or [], start, end),
            "updatemenus": charts.scale_toggle(log=log)}),
        figure("chart-underwater", dd_traces, {"title": {"text": "Underwater (drawdown %)"},
                                               "yaxis": {"title": {"text": "% below peak"}}},
               height=260),
    ]
    if price is not None:
        fig, candle_x = price_figure(rep, price.to_numpy(dtype=float)[keep], price, trades)
        figs.append(fig)
        series |= candle_x
    return figs, series


def trade_markers(trades: pd.DataFrame, start: str, end: str) -> list[dict[str, Any]]:
    """Entry markers by direction and exit markers by reason (aggregated on long runs)."""
    groups: list[tuple[str, pd.DataFrame, str, str, str, str]] = []
    for direction, symbol, colour in (("long", "triangle-up", "#2ca02c"),
                                      ("short", "triangle-down", "#d62728")):
        sel = trades[trades["direction"] == direction]
        groups.append((f"{direction} entry", sel, "entry", symbol, colour, colour))
    closed = trades[trades["exit_time"].notna()]
    for reason, sel in closed.groupby("exit_reason", sort=True):
        symbol, colour = EXIT_STYLE.get(str(reason), ("circle-open", "#17becf"))
        groups.append((f"exit: {reason}", sel, "exit", symbol, colour, colour))
    traces = []
    for name, sel, side, symbol, colour, edge in groups:
        if not len(sel):
            continue
        pts = charts.aggregated_markers(sel[f"{side}_time"], sel[f"{side}_price"], start, end)
        trace = {"type": "scatter", "mode": "markers", "name": charts.plot_text(name),
                 "x": pts["x"], "y": pts["y"],
                 "marker": {"symbol": symbol, "size": pts.get("marker_size", 10),
                            "color": colour, "line": {"width": 1.5, "color": edge}}}
        if "text" in pts:
            trace |= {"text": pts["text"], "hovertemplate": "%{text}<br>%{x}<br>%{y:,.2f}",
                      "opacity": 0.75}
        traces.append(trace)
    return traces


def price_figure(rep: dict[str, Any], close: np.ndarray, price: pd.Series,
                 trades: pd.DataFrame) -> tuple[dict[str, Any], dict[str, list]]:
    """Close price (``close``: the plotted rows) with entries, exits by reason, the strategy's
    levels as legend lines, and candles of ``price`` the page swaps in when zoomed in; plus
    the candles' x series."""
    start, end = rep["dataset"]["start"], rep["dataset"]["end"]
    traces = [line(TIME, close, "close", "#444444", hovertemplate="%{y:,.2f}")]
    if len(trades):
        traces += trade_markers(trades, start, end)
    levels = sorted(((k, v) for k, v in (rep["strategy"].get("levels") or {}).items()
                     if isinstance(v, (int, float)) and math.isfinite(v)), key=lambda kv: -kv[1])
    traces += [{"type": "scatter", "mode": "lines", "x": [start, end], "y": [v, v],
                "name": charts.plot_text(f"{name} {v:,.2f}"), "hoverinfo": "name", "meta": "level",
                "line": {"color": PALETTE[(i + 4) % len(PALETTE)], "dash": "dash", "width": 1.2}}
               for i, (name, v) in enumerate(levels)]
    candles, candle_x, span_ms = charts.candle_traces(price)
    fig = figure("chart-price", traces + candles, {"title": {"text": "Price, trades and levels"},
                                                   "hovermode": "closest", "barmode": "overlay",
                                                   "updatemenus": charts.scale_toggle()},
                 height=440)
    return fig | {"zoom_candles": {"line": 0, "candles": [len(traces), len(traces) + 1],
                                   "span_ms": span_ms}}, candle_x


def monthly_returns(equity: pd.Series, init_cash: float) -> pd.DataFrame:
    """Percent return per calendar month (UTC): years as rows, months 1..12 as columns."""
    if equity.empty or equity.isna().any():
        closes = equity.resample("MS").last().dropna()
    else:  # the last bar of each month, without pandas grouping every bar
        months, starts = charts.bucket_starts(equity, "MS")
        closes = pd.Series(equity.to_numpy()[np.append(starts[1:], len(equity)) - 1],
                           index=months, name=equity.name)
    prev = closes.shift(1).fillna(init_cash)
    pct = 100.0 * (closes / prev - 1.0)
    frame = pd.DataFrame({"year": pct.index.year, "month": pct.index.month, "pct": pct.to_numpy()})
    return frame.pivot(index="year", columns="month", values="pct").reindex(columns=range(1, 13))


def monthly_table(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the monthly-returns heat map: year, then (value, colour) per month."""
    values = table.to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    scale = float(np.percentile(finite, 95)) if finite.size else 0.0
    return [{"year": int(year),
             "cells": [(None if not np.isfinite(v) else float(v), charts.heat_colour(v, scale))
                       for v in row]}
            for year, row in zip(table.index, values, strict=True)]


def render_run(report: dict[str, Any], trades: list[dict[str, Any]],
               equity: pd.DataFrame | None = None, price: pd.Series | None = None) -> str:
    """The run report page. Without ``equity`` only tables are drawn (no charts)."""
    report, frame = as_written(report, trades)
    figures: list[dict[str, Any]] = []
    series: dict[str, list] = {}
    caption, months = "", []
    if equity is not None and len(equity):
        figures, series = equity_figures(report, equity, price, frame)
        init_cash = report["config"]["execution"]["init_cash"]
        months = monthly_table(monthly_returns(equity["equity"], init_cash))
        if len(equity) > charts.MAX_POINTS:
            caption = (f"Charts show {len(series['time']):,} of the {len(equity):,} bars: each "
                       "stretch keeps its first bar, highs and lows. Tables use every bar.")
    records = report_io.trades_records(frame)
    return templating.render(
        "run.html", figures, series, report=report, trades=records[:MAX_TRADE_ROWS],
        n_trades=len(records), trade_columns=[c for c in TRADE_COLUMNS if c in frame],
        segments=segments(report, frame), config_rows=flatten(report["config"]),
        caption=caption, has_price=price is not None, months=months, month_names=MONTHS,
        gaps=gap_summary(report["dataset"]),
        metric_keys=formatting.ordered_keys(report["metrics"], report.get("benchmark", {})),
        direction={k: m.direction for k, m in catalogue.CATALOGUE.items()})


def render_run_dir(run_dir: Path) -> str:
    """Re-render a run's report page from its ``report.json`` and CSVs (no re-run)."""
    run = read_run_dir(run_dir)
    price = load_price(run.report, run.equity) if len(run.equity) else None
    return render_run(run.report, report_io.trades_records(run.trades), run.equity, price)
