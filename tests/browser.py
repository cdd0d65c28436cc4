"""A small helper to open a local HTML file in real headless Chromium with the network off.

Used by the ``browser`` tests. Chromium is the Debian package at ``/usr/bin/chromium`` (CI
installs it); when it is missing the tests fail with a message saying so, never skip. Every
request the page makes is intercepted: ``file:`` ones go through, anything else is recorded in
``Visit.blocked`` and aborted. Layout probes measure what the reader sees: tables clipped by
their box, text boxes that overlap inside charts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--enable-unsafe-swiftshader"]

# Each plotly chart div drew: its main SVG exists and has drawn children.
CHARTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(div => {
  const svg = div.querySelector('svg.main-svg');
  return {id: div.id, drawn: !!svg && svg.childElementCount > 0 && svg.innerHTML.length > 200};
})"""

# Every chart box of the page holds a drawn plotly SVG (the pages plot synchronously on load).
DRAWN_JS = """() => Array.from(document.querySelectorAll('div.chart'))
  .every(d => d.querySelector('svg.main-svg') !== null)"""

# Tables wider than their box: the box must scroll (overflow-x auto/scroll), never clip; and
# the page itself never scrolls sideways.
TABLES_JS = """() => ({
  page: document.documentElement.scrollWidth - window.innerWidth,
  tables: Array.from(document.querySelectorAll('table')).filter(t => t.offsetParent !== null)
    .map(t => {
      const box = t.parentElement;
      return {id: t.id || (t.closest('section') || {}).id || '', table: t.scrollWidth,
              box: box.clientWidth, scrolls: ['auto', 'scroll'].includes(
                getComputedStyle(box).overflowX)};
    })
})"""

# Text boxes drawn inside each chart (title, annotations, buttons, legend entries, tick labels)
# that overlap another one of the same chart by more than a pixel each way.
OVERLAPS_JS = """() => {
  const out = [];
  document.querySelectorAll('.js-plotly-plot').forEach(div => {
    const boxes = [];
    div.querySelectorAll('.gtitle, .annotation-text-g, .updatemenu-button, .legendtext, '
                         + '.xtick text, .ytick text').forEach(el => {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) { boxes.push([el.textContent, r]); }
    });
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i][1], b = boxes[j][1];
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1) { out.push([div.id, boxes[i][0], boxes[j][0]]); }
      }
    }
  });
  return out;
}"""


@dataclass
class Visit:
    """A page opened in Chromium and what it reported while loading."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def charts(self) -> list[dict[str, Any]]:
        return self.page.evaluate(CHARTS_JS)

    def clipped_tables(self) -> list[dict[str, Any]]:
        """Tables wider than a box that does not scroll (plus the page, if it scrolls sideways)."""
        found = self.page.evaluate(TABLES_JS)
        bad = [t for t in found["tables"] if t["table"] > t["box"] and not t["scrolls"]]
        return bad + ([{"id": "page", "overflow": found["page"]}] if found["page"] > 0 else [])

    def table_fits(self, selector: str) -> bool:
        """Whether the table fits its box without horizontal scrolling."""
        return self.page.eval_on_selector(
            selector, "t => t.scrollWidth <= t.parentElement.clientWidth")

    def overlapping_text(self) -> list[list[str]]:
        """``[chart id, text, text]`` for text boxes overlapping inside a chart."""
        return self.page.evaluate(OVERLAPS_JS)

    def values(self, selector: str, attr: str) -> dict[str, Any]:
        """``{element[attr]: json(data-value)}`` for every element matching ``selector``."""
        pairs = self.page.eval_on_selector_all(
            selector, f"els => els.map(e => [e.getAttribute('{attr}'), "
                      f"e.getAttribute('data-value'), e.textContent.trim()])")
        return {key: (json.loads(raw), text) for key, raw, text in pairs}


@contextmanager
def visit(path: Path, screenshot: Path, width: int = 1280) -> Iterator[Visit]:
    """Open ``path`` offline, wait for it to load, save a full-page screenshot, yield the visit."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} not found: browser tests need Debian's chromium package "
        "(apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": width, "height": 900})
            page = context.new_page()
            seen = Visit(page)

            def on_route(route: Any) -> None:
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    seen.blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", on_route)
            page.on("console", lambda m: m.type == "error" and seen.console_errors.append(m.text))
            page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
            page.on("request", lambda r: seen.requests.append(r.url))

            def on_dialog(dialog: Any) -> None:
                seen.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(DRAWN_JS, timeout=20_000)
            page.screenshot(path=str(screenshot), full_page=True)
            yield seen
        finally:
            browser.close()


# ---------------------------------------------------------------- a fixed small run

SYNTH_START = "2026-01-01T00:00:00Z"
# (day, close) knots of the synthetic 1h path: a break below 74,400 that gets stopped out at
# 76,000, a second break that reaches the 66,000 target, then a recovery.
KNOTS = ((0, 80_000.0), (10, 76_000.0), (14, 73_000.0), (17, 76_800.0), (24, 65_000.0),
         (40, 78_000.0))


def synthetic_bars_csv(path: Path) -> Path:
    """Write 40 days of deterministic 1h OHLCV bars following :data:`KNOTS` to ``path``."""
    import numpy as np
    import pandas as pd

    hours = np.arange(40 * 24)
    days, closes = zip(*KNOTS, strict=True)
    close = np.interp(hours / 24.0, days, closes) + 150.0 * np.sin(hours / 5.0)
    open_ = np.concatenate(([close[0]], close[:-1]))
    frame = pd.DataFrame({
        "timestamp": pd.date_range(SYNTH_START, periods=hours.size, freq="h").strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "open": open_, "high": np.maximum(open_, close) * 1.002,
        "low": np.minimum(open_, close) * 0.998, "close": close,
        "volume": 100.0 + (hours % 24),
    })
    frame.to_csv(path, index=False, float_format="%.2f")
    return path


def make_run(out_dir: Path, bars_csv: str, label: str | None = None,
             params: dict[str, Any] | None = None) -> Path:
    """Run break_below_74k through the real pipeline on ``bars_csv``; return the run dir."""
    import strategies
    from backtest import pipeline
    from backtest.config.run import RunConfig

    cfg = RunConfig.model_validate({
        "data": {"path": bars_csv, "symbol": "SYNTHUSDT", "timeframe": "1h"},
        "strategy": {"name": "break_below_74k", "label": label,
                     "params": {"level": 74400.0, "confirm_bars": 1, "target": 66000.0,
                                "stop_level": 76000.0, "mode": "short"} | (params or {})},
        "execution": {"init_cash": 100000.0, "fee_rate": 0.001, "slippage_rate": 0.0005},
    })
    outcome = pipeline.execute(cfg, strategies.get("break_below_74k"), "test")
    return pipeline.write(outcome, out_dir)
