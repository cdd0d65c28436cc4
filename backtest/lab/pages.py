"""HTML pages and report directories of the crash lab (events.html, stress.html).

Pages render only what is in the JSON beside them, through the report package's template
environment (``base.html``: the shared chart-library include, sortable tables); distributions are
binned here into bar charts (the page's partial plotly bundle has no histogram trace). A report
directory is written to a temporary sibling and renamed into place
(:func:`backtest.report.files.write_dir_atomically`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backtest.report import charts, files, templating

BAND = "rgba(31,119,180,0.18)"


def write_report(out_dir: Path, report_id: str, stem: str, data: dict[str, Any],
                 page: str | None) -> Path:
    """Write ``<out_dir>/<report_id>/{stem}.json`` (and ``{stem}.html``) atomically."""
    final = files.confined(out_dir, report_id)

    def fill(tmp: Path) -> None:
        (tmp / f"{stem}.json").write_text(files.to_json(data), encoding="utf-8")
        if page is not None:
            (tmp / f"{stem}.html").write_text(page, encoding="utf-8")

    return files.write_dir_atomically(final, fill)


def _band_traces(x: list[float], low: list[float], high: list[float], name: str
                 ) -> list[dict[str, Any]]:
    edge = {"mode": "lines", "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}
    return [{"type": "scatter", "x": x, "y": charts.finite_list(low), **edge},
            {"type": "scatter", "x": x, "y": charts.finite_list(high), "fill": "tonexty",
             "fillcolor": BAND, "name": charts.plot_text(name), **edge, "showlegend": True}]


def _path_figure(div_id: str, path: dict[str, Any], bar_hours: float) -> dict[str, Any]:
    x = [round(j * bar_hours / 24, 4) for j in range(path["bars"])]
    data = [{"type": "scatter", "mode": "lines", "x": x, "y": path["unconditional"],
             "name": "every bar (unconditional)", "line": {"color": "#7f7f7f", "dash": "dot"}}]
    if path["n_events"]:
        data = [*_band_traces(x, path["low"], path["high"], "95% band of the mean"),
                {"type": "scatter", "mode": "lines", "x": x, "y": charts.finite_list(path["mean"]),
                 "name": charts.plot_text(f"mean after the event (n={path['n_events']})"),
                 "line": {"color": charts.PALETTE[0]}}, *data]
    axes = {"xaxis": {"title": {"text": "days after entry"}},
            "yaxis": {"title": {"text": "return since entry (%)"}}}
    return charts.figure(div_id, data, axes, height=320)


def render_events(result: dict[str, Any]) -> str:
    """The event-study page: per event type and symbol an average path and a horizon table."""
    bar_hours = {"1h": 1.0, "1d": 24.0}[result["config"]["events"]["timeframe"]]
    figures, sections = [], []
    for i, res in enumerate(result["results"]):
        section = {"id": f"event-{i}", "res": res, "chart": None}
        if "skipped" not in res:
            section["chart"] = f"chart-path-{i}"
            figures.append(_path_figure(section["chart"], res["path"], bar_hours))
        sections.append(section)
    return templating.render("events.html", figures, result=result, sections=sections)


def render_stress(result: dict[str, Any]) -> str:
    """The stress page: metric percentiles, probabilities with intervals, the real history."""
    figures = []
    for key, dist in result["distribution"].items():
        values = np.asarray(dist["values"], dtype=float)
        counts, edges = np.histogram(values[np.isfinite(values)], bins=60)
        data = [{"type": "bar", "x": charts.finite_list((edges[:-1] + edges[1:]) / 2),
                 "y": counts.tolist(), "width": float(edges[1] - edges[0]),
                 "name": "synthetic paths", "marker": {"color": charts.PALETTE[0]}}]
        layout: dict[str, Any] = {"xaxis": {"title": {"text": charts.plot_text(key)}},
                                  "bargap": 0.02, "hovermode": "closest"}
        real = result["real"]["metrics"].get(key)
        if real is not None:
            layout["shapes"] = [{"type": "line", "x0": real, "x1": real, "yref": "paper",
                                 "y0": 0, "y1": 1, "line": {"color": charts.PALETTE[3]}}]
            layout["annotations"] = [{"x": real, "y": 1, "yref": "paper", "showarrow": False,
                                      "text": "real history", "yanchor": "bottom"}]
        figures.append(charts.figure(f"chart-{key}", data, layout, height=280))
    return templating.render("stress.html", figures, result=result)
