"""HTML pages and report directories of the crash lab (events.html, stress.html).

Pages render only what is in the JSON beside them, through the report package's template
environment (``base.html``: the shared chart-library include, sortable tables). A report
directory is written to a temporary sibling and renamed into place
(:func:`backtest.report.files.write_dir_atomically`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backtest.report import files, html

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
    return [{"type": "scatter", "x": x, "y": html.finite_list(low), **edge},
            {"type": "scatter", "x": x, "y": html.finite_list(high), "fill": "tonexty",
             "fillcolor": BAND, "name": html.plot_text(name), **edge, "showlegend": True}]


def _path_figure(div_id: str, path: dict[str, Any], bar_hours: float) -> dict[str, Any]:
    x = [round(j * bar_hours / 24, 4) for j in range(path["bars"])]
    data = [{"type": "scatter", "mode": "lines", "x": x, "y": path["unconditional"],
             "name": "every bar (unconditional)", "line": {"color": "#7f7f7f", "dash": "dot"}}]
    if path["n_events"]:
        data = [*_band_traces(x, path["low"], path["high"], "95% band of the mean"),
                {"type": "scatter", "mode": "lines", "x": x, "y": html.finite_list(path["mean"]),
                 "name": html.plot_text(f"mean after the event (n={path['n_events']})"),
                 "line": {"color": html.PALETTE[0]}}, *data]
    axes = {"xaxis": {"title": {"text": "days after entry"}},
            "yaxis": {"title": {"text": "return since entry (%)"}}}
    return html.figure(div_id, data, axes, height=320)


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
    return html._render("events.html", figures, result=result, sections=sections)


def render_stress(result: dict[str, Any]) -> str:
    """The stress page: metric percentiles, probabilities with intervals, the real history."""
    figures = []
    for key, dist in result["distribution"].items():
        data = [{"type": "histogram", "x": html.finite_list(dist["values"]), "nbinsx": 60,
                 "name": "synthetic paths", "marker": {"color": html.PALETTE[0]}}]
        layout: dict[str, Any] = {"xaxis": {"title": {"text": html.plot_text(key)}},
                                  "bargap": 0.02, "hovermode": "closest"}
        real = result["real"]["metrics"].get(key)
        if real is not None:
            layout["shapes"] = [{"type": "line", "x0": real, "x1": real, "yref": "paper",
                                 "y0": 0, "y1": 1, "line": {"color": html.PALETTE[3]}}]
            layout["annotations"] = [{"x": real, "y": 1, "yref": "paper", "showarrow": False,
                                      "text": "real history", "yanchor": "bottom"}]
        figures.append(html.figure(f"chart-{key}", data, layout, height=280))
    return html._render("stress.html", figures, result=result)
