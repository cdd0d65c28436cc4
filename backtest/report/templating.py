"""The Jinja2 environment of the pages and the one script every page inlines.

Pages are single offline files: the partial plotly.js bundle vendored in ``static/`` (see its
README: scatter, bar and pie traces, about 1.2 MB) is inlined once per page, chart data travels
as JSON in a ``<script type="application/json">`` block and Jinja2 autoescapes everything else.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jinja2
import markupsafe

from backtest.report import charts, formatting

PLOTLY_BUNDLE = "plotly-basic.min.js"


@cache
def plotly_js() -> markupsafe.Markup:
    """The vendored partial plotly.js bundle, safe to inline inside ``<script>``."""
    text = resources.files("backtest.report").joinpath("static", PLOTLY_BUNDLE).read_text(
        encoding="utf-8")
    return markupsafe.Markup(text.replace("</script", "<\\/script"))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backtest.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = formatting.format_number
    env.filters["metric"] = lambda value, key: formatting.format_metric(key, value)
    env.filters["label"] = formatting.metric_label
    env.filters["trade"] = formatting.format_trade
    env.filters["param"] = formatting.format_param
    env.filters["raw"] = formatting.raw_value
    env.globals["plotly_js"] = plotly_js
    return env


def render(template: str, figures: list[dict[str, Any]],
           series: dict[str, list[Any]] | None = None, **context: Any) -> str:
    """A page: the template with its figures, and the chart JSON (figures plus the shared
    ``series`` their traces reference) for the page's plot loop."""
    data = charts.script_json({"series": series or {}, "figures": figures})
    return environment().get_template(template).render(figures=figures, figures_json=data,
                                                        **context)
