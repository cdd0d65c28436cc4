"""Chart building blocks shared by the pages: plotly figure dicts, chart JSON that is safe inside
``<script>``, down-sampling of long series, marker aggregation, regime bands and colour scales.

Charts are drawn by the partial plotly.js bundle in ``static/`` (scatter and bar traces only), so
heat maps are HTML tables coloured by :func:`heat_colour` and parallel coordinates are lines.
Numbers travel rounded to :data:`CHART_DIGITS` significant digits (the tables keep full values)
and long shared x arrays travel once, as ``{"series": name}`` references the page resolves.
"""

from __future__ import annotations

import html as html_lib
import json
import math
from typing import Any

import markupsafe
import numpy as np
import pandas as pd

MAX_POINTS = 1200  # about one per pixel of a chart on a wide screen
MAX_MARKERS = 80  # per marker trace; more trades are aggregated into time buckets
MAX_CANDLES = 600  # candles of the price chart's zoomed-in view, at the finest period that fits
CANDLE_PERIODS = ("1min", "5min", "15min", "1h", "4h", "1D", "1W")
CANDLES_ON_ZOOM = 150  # the price chart shows candles once at most this many are in view
CHART_DIGITS = 6
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                   "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: Any) -> markupsafe.Markup:
    """JSON safe to embed inside ``<script>``: no ``</script>``, no ``<!--``, no raw U+2028."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), default=str)
    for char, escape in _SCRIPT_ESCAPES.items():
        text = text.replace(char, escape)
    return markupsafe.Markup(text)


def plot_text(text: Any) -> str:
    """A name drawn by plotly (trace name, annotation): escaped, as plotly parses some HTML."""
    return html_lib.escape(str(text), quote=False)


def finite_list(values: Any, digits: int = CHART_DIGITS) -> list[float | None]:
    """Numbers for chart JSON, rounded to ``digits`` significant digits; NaN/inf become null."""
    spec, finite = f".{digits}g", math.isfinite  # per value: ~3x faster than np.isfinite
    return [float(format(v, spec)) if finite(v) else None
            for v in np.asarray(values, dtype=float).tolist()]


def iso_list(index: pd.DatetimeIndex) -> list[str]:
    return list(index.strftime("%Y-%m-%dT%H:%M:%SZ"))


def downsample_index(n: int, columns: list[np.ndarray], max_points: int = MAX_POINTS) -> np.ndarray:
    """Row positions to plot: all rows when ``n <= max_points``, else per bucket the first row
    and each column's minimum and maximum (the first row holding it), so peaks and troughs
    (drawdowns) survive; NaN counts as the column's mean. Extremes of several columns often
    share a row, so buckets start at a third of ``max_points`` and halve until the kept rows
    fit.

    Bucket ``k`` of ``b`` holds the rows ``i`` with ``i * b // n == k``: contiguous, so each
    extreme is a ``reduceat`` and a search (no group-by), and bucket ``k`` of ``b // 2`` is
    buckets ``2k`` and ``2k + 1`` of an even ``b``, so halving merges pairs instead of reading
    the rows again (10M rows: 0.4 s instead of 6 s)."""
    if n <= max_points:
        return np.arange(n)
    filled = [col if np.isfinite(col).all() else np.nan_to_num(col, nan=np.nanmean(col))
              for col in columns if np.isfinite(col).any()]  # no finite value: no extremes
    buckets = max(1, max_points // 3)
    extremes: list[tuple[np.ndarray, np.ndarray, bool]] = []  # (values, rows, is_min)
    while True:
        starts = (np.arange(buckets) * n + buckets - 1) // buckets  # first row of each bucket
        if extremes and len(extremes[0][0]) == 2 * buckets:
            extremes = [_merge_pairs(*ext) for ext in extremes]
        else:
            extremes = [_first_extreme(col, starts, is_min) for col in filled
                        for is_min in (True, False)]
        rows = np.unique(np.concatenate([starts, [n - 1], *(r for _, r, _ in extremes)]))
        if rows.size <= max_points or buckets == 1:
            return rows
        buckets //= 2


def _first_extreme(values: np.ndarray, starts: np.ndarray, is_min: bool,
                   block_rows: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per bucket (``values[starts[k]:starts[k + 1]]``, none empty) its minimum (``is_min``)
    or maximum and the first row holding it (rows compared ``block_rows`` or so at a time:
    10M bars, 8 MB of repeated extremes instead of 80 MB)."""
    extremes = (np.fmin if is_min else np.fmax).reduceat(values, starts)  # NaN skipped
    lengths = np.diff(np.append(starts, values.size))
    step = max(1, len(starts) * block_rows // values.size)  # buckets compared at a time
    hits = np.concatenate([  # each bucket's extreme repeated over ~block_rows rows at a time
        np.flatnonzero(values[starts[k]:starts[k] + lengths[k:k + step].sum()]
                       == np.repeat(extremes[k:k + step], lengths[k:k + step])) + starts[k]
        for k in range(0, len(starts), step)])
    # a bucket of NaN only has no hit: it borrows a later bucket's (already kept) row
    return extremes, hits[np.minimum(np.searchsorted(hits, starts), hits.size - 1)], is_min


def _merge_pairs(values: np.ndarray, rows: np.ndarray,
                 is_min: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`_first_extreme` of buckets twice as wide from the extremes of buckets ``2k`` and
    ``2k + 1`` (a tie keeps the earlier row)."""
    pairs = values.reshape(-1, 2)
    later = ((pairs[:, 1] < pairs[:, 0] if is_min else pairs[:, 1] > pairs[:, 0])
             | np.isnan(pairs[:, 0])).astype(np.intp)  # a NaN-only bucket loses
    pair = np.arange(len(pairs))
    return pairs[pair, later], rows.reshape(-1, 2)[pair, later], is_min


def figure(div_id: str, data: list[dict[str, Any]], layout: dict[str, Any],
           height: int = 380) -> dict[str, Any]:
    """One chart for the page's plot loop: traces + layout with the house style (title on the
    left, so buttons on the right never cover it; the legend a fixed 48 px below the plot, under
    two-line date ticks whatever the chart's height; x tick labels pushed 6 px down so the first
    one clears the lowest y tick label)."""
    margin = {"l": 60, "r": 20, "t": 50, "b": 40} | layout.get("margin", {})
    legend_y = -48 / max(height - margin["t"] - margin["b"], 60)
    base = {"height": height, "margin": margin,
            "hovermode": "x unified", "legend": {"orientation": "h", "y": legend_y},
            "paper_bgcolor": "#ffffff", "plot_bgcolor": "#fafafa"}
    if "title" in layout:
        layout = layout | {"title": layout["title"] | {"x": 0, "xanchor": "left",
                                                        "xref": "paper"}}
    xaxis = {"ticklabelstandoff": 6} | layout.get("xaxis", {})
    return {"id": div_id, "data": data, "layout": base | layout | {"xaxis": xaxis}}


def line(x: Any, y: Any, name: str, colour: str, **extra: Any) -> dict[str, Any]:
    """A line trace; ``x`` may be a list or a ``{"series": name}`` reference."""
    return {"type": "scatter", "mode": "lines", "x": x, "y": finite_list(y),
            "name": plot_text(name), "line": {"color": colour, "width": 1.5}} | extra


def scale_toggle(axis: str = "yaxis", log: bool = False) -> list[dict[str, Any]]:
    """Linear / log buttons for one y axis, in the chart's top-right corner. Log ticks at 1, 2
    and 5 per decade (every digit crowds the axis); back on linear the tick mode returns to
    auto, as a bare ``dtick`` reset leaves a tick every 1.0 (thousands of ticks, seconds of
    redraw)."""
    return [{"type": "buttons", "direction": "right", "showactive": True, "active": int(log),
             "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
             "pad": {"r": 0, "t": 0, "b": 0, "l": 0}, "font": {"size": 11},
             "buttons": [{"label": scale, "method": "relayout",
                          "args": [args]} for scale, args in (
                             ("linear", {f"{axis}.type": "linear", f"{axis}.tickmode": "auto",
                                         f"{axis}.dtick": None}),
                             ("log", {f"{axis}.type": "log", f"{axis}.dtick": "D2"}))]}]


def wide_range(*series: np.ndarray, ratio: float = 5.0) -> bool:
    """Whether positive series span more than ``ratio`` (max/min): log scale reads better."""
    low, high = np.inf, 0.0
    for values in series:  # one series at a time, read in place: no copy of a 10M-bar curve
        values = np.asarray(values, dtype=float)
        kept = np.isfinite(values)
        kept &= values > 0
        if kept.any():
            low = min(low, float(np.min(values, where=kept, initial=np.inf)))
            high = max(high, float(np.max(values, where=kept, initial=0.0)))
    return high > 0 and high / low > ratio


def aggregated_markers(times: pd.Series, prices: pd.Series, start: str, end: str,
                       max_markers: int = MAX_MARKERS) -> dict[str, Any]:
    """Marker positions for trades: one per trade up to ``max_markers``, else one per time
    bucket (mean time and price, sized by the count) so a long run is not a wall of markers."""
    times = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    if len(times) <= max_markers:
        return {"x": iso_list(times), "y": finite_list(prices)}
    edges = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), periods=max_markers + 1)
    ns = times.as_unit("ns").asi8
    buckets = np.clip(np.searchsorted(edges.as_unit("ns").asi8, ns, side="right") - 1,
                      0, max_markers - 1)
    frame = pd.DataFrame({"t": ns, "p": prices.to_numpy(dtype=float), "b": buckets})
    grouped = frame.groupby("b").agg(t=("t", "mean"), p=("p", "mean"), n=("p", "size"))
    counts = grouped["n"].to_numpy()
    return {"x": iso_list(pd.DatetimeIndex(pd.to_datetime(grouped["t"].astype(np.int64),
                                                          unit="ns", utc=True))),
            "y": finite_list(grouped["p"]), "text": [f"{n} trades" for n in counts],
            "marker_size": [int(min(16, 6 + 1.5 * np.sqrt(n))) for n in counts]}


def close_candles(close: pd.Series) -> tuple[str, pd.DataFrame]:
    """Candles of closing prices at the finest period (not finer than the bars) that gives at
    most :data:`MAX_CANDLES`: open is the previous candle's close, high/low the extreme closes
    (``equity.csv`` records closes only, and a re-rendered page must match the first)."""
    if close.isna().any():  # dropna copies even when nothing drops: 160 MB at 10M bars
        close = close.dropna()
    bar = pd.Timedelta("1h")
    if len(close) > 1:  # the median spacing, truncated to the index unit as pandas' median is
        steps = np.diff(close.index.asi8)
        bar = pd.Timedelta(int(np.median(steps, overwrite_input=True)), unit=close.index.unit)
    periods = [p for p in CANDLE_PERIODS if pd.Timedelta(p) >= bar] or [CANDLE_PERIODS[-1]]
    for period in periods:
        span = (close.index[-1] - close.index[0]) / pd.Timedelta(period) if len(close) else 0
        if span < MAX_CANDLES or period == periods[-1]:
            break
    ohlc = bucket_ohlc(close, period)
    ohlc["open"] = ohlc["close"].shift(1).fillna(ohlc["open"])
    ohlc["high"] = ohlc[["open", "high"]].max(axis=1)
    ohlc["low"] = ohlc[["open", "low"]].min(axis=1)
    return period, ohlc


def bucket_starts(values: pd.Series, rule: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The labels of the non-empty buckets of ``values.resample(rule, label="left",
    closed="left")`` (``values`` not empty) and each one's first row, without pandas grouping
    every bar (10M bars: ~0.02 s instead of ~0.2 s and no 10M-row bin arrays): pandas
    resamples the first and last bar only, which yields every bucket start, and a binary
    search finds each bucket's rows."""
    labels = values.iloc[[0, -1]].resample(rule, label="left", closed="left").first().index
    starts = values.index.searchsorted(labels, side="left")
    filled = starts < np.append(starts[1:], len(values))
    return labels[filled], starts[filled]


def bucket_ohlc(close: pd.Series, period: str) -> pd.DataFrame:
    """``close.resample(period, label="left", closed="left").ohlc().dropna()`` for a series
    without NaN, by :func:`bucket_starts` and ``reduceat``."""
    if close.empty:
        return close.resample(period, label="left", closed="left").ohlc()
    labels, starts = bucket_starts(close, period)
    values = close.to_numpy(dtype=float)
    return pd.DataFrame({"open": values[starts], "high": np.maximum.reduceat(values, starts),
                         "low": np.minimum.reduceat(values, starts),
                         "close": values[np.append(starts[1:], len(values)) - 1]},
                        index=labels)


def candle_traces(close: pd.Series) -> tuple[list[dict[str, Any]], dict[str, list], float]:
    """Hidden candle traces (bodies as bars on a ``base``, wicks as error bars down from the
    high: the partial plotly bundle has no candlestick trace), the ``candles`` x series they
    share, and the widest x span, in ms, that shows them."""
    period, ohlc = close_candles(close)
    width = pd.Timedelta(period) / pd.Timedelta("1ms")
    x = {"series": "candles"}
    up = (ohlc["close"] >= ohlc["open"]).to_numpy()
    base = np.minimum(ohlc["open"], ohlc["close"]).to_numpy()
    body = np.maximum(np.abs(ohlc["close"] - ohlc["open"]).to_numpy(), 1e-9 * base)
    name = plot_text(f"{period} candles of closes")
    traces = [
        {"type": "scatter", "mode": "markers", "x": x, "y": finite_list(ohlc["high"]),
         "visible": False, "name": name, "legendgroup": "candles", "showlegend": False,
         "hoverinfo": "skip", "marker": {"size": 1, "opacity": 0},
         "error_y": {"type": "data", "symmetric": False, "width": 0, "thickness": 1,
                     "color": "#666666", "array": [0] * len(ohlc),
                     "arrayminus": finite_list(ohlc["high"] - ohlc["low"])}},
        {"type": "bar", "x": x, "base": finite_list(base), "y": finite_list(body),
         "width": 0.7 * width, "visible": False, "name": name, "legendgroup": "candles",
         "customdata": [list(r) for r in zip(*(finite_list(ohlc[c]) for c in (
             "open", "high", "low", "close")), strict=True)],
         "hovertemplate": "O %{customdata[0]:,.2f} H %{customdata[1]:,.2f} "
                          "L %{customdata[2]:,.2f} C %{customdata[3]:,.2f}<extra></extra>",
         "marker": {"color": np.where(up, "#2ca02c", "#d62728").tolist(),
                    "line": {"width": 0}}}]
    centres = iso_list(pd.DatetimeIndex(ohlc.index + pd.Timedelta(period) / 2))
    return traces, {"candles": centres}, CANDLES_ON_ZOOM * width


def regime_bands(spans: list[dict[str, Any]], start: str, end: str,
                 max_share: float = 1 / 150) -> list[dict[str, Any]]:
    """Background bands for the report's ``regime_spans`` (``calm`` left unshaded): spans of one
    regime closer than ``max_share`` of the run are merged, each regime is one legend entry
    (no text drawn on the chart, so labels never overprint)."""
    tolerance = (pd.Timestamp(end) - pd.Timestamp(start)) * max_share
    merged: dict[str, list[list[pd.Timestamp]]] = {}
    for span in spans:
        regime = str(span["regime"])
        if regime == "calm":
            continue
        t0, t1 = pd.Timestamp(span["start"]), pd.Timestamp(span["end"])
        bands = merged.setdefault(regime, [])
        if bands and t0 - bands[-1][1] <= tolerance:
            bands[-1][1] = max(bands[-1][1], t1)
        else:
            bands.append([t0, t1])
    shapes = []
    for i, (regime, bands) in enumerate(merged.items()):
        shapes += [{"type": "rect", "xref": "x", "yref": "paper", "y0": 0, "y1": 1,
                    "x0": t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "x1": t1.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "fillcolor": PALETTE[(i + 1) % len(PALETTE)], "opacity": 0.12,
                    "line": {"width": 0}, "layer": "below", "name": plot_text(regime),
                    "legendgroup": f"regime {plot_text(regime)}", "showlegend": j == 0}
                   for j, (t0, t1) in enumerate(bands)]
    return shapes


def heat_colour(value: Any, scale: float, diverging: bool = True) -> str:
    """Background colour of a heat-map cell: red loss / white / green gain (``diverging``),
    or white to blue for a one-sided scale; empty for missing values."""
    if not isinstance(value, (int, float)) or not np.isfinite(value) or scale <= 0:
        return ""
    share = min(1.0, abs(float(value)) / scale)
    blue, green, red = (31, 119, 180), (30, 132, 73), (192, 57, 43)
    target = (green if value >= 0 else red) if diverging else blue
    r, g, b = (round(247 + (c - 247) * share * 0.85) for c in target)
    return f"#{r:02x}{g:02x}{b:02x}"
