"""How numbers read in reports: metric labels, units and precision from the metric catalogue,
parameters rounded to significant digits, metrics in catalogue order, and raw JSON text for the
``data-value`` attributes that tests and table sorting read back.

Imports from crashbt: :mod:`backtest.catalogue` only.
"""

from __future__ import annotations

import json
import math
from numbers import Integral, Real
from typing import Any

import numpy as np

from backtest import catalogue

PARAM_DIGITS = 6
_ORDER = {key: i for i, key in enumerate(catalogue.CATALOGUE)}


def is_number(value: Any) -> bool:
    """A finite real number, numpy's included (not a bool)."""
    return (isinstance(value, Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def format_number(value: Any) -> str:
    """A value with no catalogue entry: 4 decimals, thousands separators, n/a for None."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, Integral):
        return f"{value:,}"
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.2f}"


def format_metric(key: str, value: Any) -> str:
    """A metric as the catalogue says: its digits, ``%`` for percentages, counts as integers."""
    metric = catalogue.CATALOGUE.get(key)
    if metric is None or not is_number(value):
        return format_number(value)
    text = f"{value:,.{metric.digits}f}"
    return f"{text}%" if metric.unit == "%" else text


def metric_label(key: str) -> str:
    """The catalogue's human name of a metric (the key itself when unknown)."""
    metric = catalogue.CATALOGUE.get(key)
    return metric.label if metric else key


def ordered_keys(*metric_dicts: dict[str, Any]) -> list[str]:
    """The union of metric names: catalogue order first, then unknown names alphabetically.
    Independent of dict order, so a page rendered from memory and one re-rendered from the
    sorted ``report.json`` list metrics alike."""
    keys = {key for metrics in metric_dicts for key in metrics}
    return sorted(keys, key=lambda k: (_ORDER.get(k, len(_ORDER)), k))


def significant(value: Any, digits: int = PARAM_DIGITS) -> Any:
    """A float rounded to ``digits`` significant digits (other values unchanged)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0.0:
        return float(f"{value:.{digits}g}")
    return value


def format_param(value: Any) -> str:
    """A parameter for people: 71078.63318458782 -> ``71,078.6``; ints and text as they are."""
    if isinstance(value, float) and math.isfinite(value):
        text = np.format_float_positional(significant(value), trim="-")
        whole, _, frac = text.partition(".")
        return f"{int(whole):,}" + (f".{frac}" if frac else "") if whole != "-0" else text
    return format_number(value)


def format_trade(value: Any, column: str) -> str:
    """A trades-table cell: sizes to significant digits, prices below 1 too (altcoins), other
    prices, money and percent to 2 decimals (columns line up)."""
    if not is_number(value):
        return format_number(value)
    if column == "size" or (column.endswith("_price") and abs(value) < 1):
        return format_param(float(value))
    return f"{value:,.2f}"


def raw_value(value: Any) -> str:
    """A value as JSON text, for ``data-value`` attributes that tests and sorting read back.
    Plain numbers and null skip json (the text json writes for them: ``float.__repr__``)."""
    kind = type(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else "null"
    if kind is int:
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return json.dumps(value, default=str)
