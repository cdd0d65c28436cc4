"""The comparison page: runs side by side (best per row among runs that traded, buy and hold
beside them), equity overlaid, per-regime and per-window tables with trade counts, and the
config keys that differ.

Imports from crashbt: :mod:`backtest.catalogue` and :mod:`backtest.report` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backtest import catalogue
from backtest.report import charts, templating
from backtest.report.charts import PALETTE, figure, line
from backtest.report.pages.run import SEGMENTS, segments

if TYPE_CHECKING:
    from backtest.report.compare import Comparison
    from backtest.report.pages.run import RunRecords

SEGMENT_METRICS = ("total_return_pct", "max_drawdown_pct", "sharpe", "n_trades")


def _growth(run: RunRecords, column: str, name: str, colour: str,
            dash: str = "solid") -> dict[str, Any]:
    """One equity column of a run as percent return on its initial cash."""
    values = run.equity[column].to_numpy(dtype=float)
    keep = charts.downsample_index(len(values), [values])
    init = run.report["config"]["execution"]["init_cash"]
    return line(charts.iso_list(run.equity.index[keep]), 100.0 * (values[keep] / init - 1.0),
                name, colour, line={"color": colour, "width": 1.5, "dash": dash})


def equity_figure(cmp: Comparison) -> list[dict[str, Any]]:
    """Each run's return on initial cash, and buy and hold (dotted) from the first run."""
    traces = [_growth(run, "equity", name, PALETTE[i % len(PALETTE)])
              for i, (run, name) in enumerate(zip(cmp.runs, cmp.names, strict=True))
              if "equity" in run.equity]
    first = next((r for r in cmp.runs if "buy_and_hold" in r.equity), None)
    if first is not None:
        traces.append(_growth(first, "buy_and_hold", "buy and hold", "#999999", "dot"))
    return [figure("chart-compare-equity", traces, {
        "title": {"text": "Return on initial cash (%)"},
        "yaxis": {"title": {"text": "%"}}})] if traces else []


def segment_tables(cmp: Comparison) -> list[dict[str, Any]]:
    """Per regime / per window: each run's metrics (regimes with trade counts) and buy and hold."""
    per_run = [{s["key"]: s for s in segments(r.report, r.trades)} for r in cmp.runs]
    out = []
    for key, title in SEGMENTS:
        tables = [seg.get(key) for seg in per_run]
        names = list(dict.fromkeys(n for t in tables if t for n in t["strategy"]))
        if names:
            bench = next((t["benchmark"] for t in tables if t and t["benchmark"]), {})
            out.append({"title": title, "key": key, "segments": names, "benchmark": bench,
                        "values": [[(t["strategy"].get(n) or {}) if t else {} for t in tables]
                                   for n in names]})
    return out


def render_compare(cmp: Comparison) -> str:
    """Runs side by side: metrics (best per row marked), equity overlaid, segments, config diff."""
    return templating.render(
        "compare.html", equity_figure(cmp), runs=[r.report for r in cmp.runs], names=cmp.names,
        metric_rows=cmp.rows, benchmark=cmp.benchmark, segments=segment_tables(cmp),
        segment_metrics=SEGMENT_METRICS, diff=cmp.diff,
        direction={k: m.direction for k, m in catalogue.CATALOGUE.items()},
        traded=cmp.traded)
