"""HTML views of report JSON. Pure renderings: every number shown comes from the JSON.

Jinja2 with autoescaping on: any value from a config or a name is escaped.
Imports from crashbt: nothing but the templates beside this module.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backtest", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    return env


def format_number(value: Any) -> str:
    """Numbers as shown in reports: 4 significant decimals, thousands separators, n/a for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.2f}"


def render_run(report: dict[str, Any], trades: list[dict[str, Any]]) -> str:
    """The run report page."""
    return _env().get_template("run.html").render(report=report, trades=trades)
