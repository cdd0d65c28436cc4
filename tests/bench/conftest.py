"""Benchmark fixtures and the one-run summary (``make bench``; never part of ``make test``).

Every benchmark records a row with :func:`record`; at the end of the session the rows, with
ratios to vectorbt-rust and to the numba ceiling, are printed as tables and written to
``tests/bench/results/latest.json`` (git-ignored; docs/performance.md keeps a summary).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar: read at import
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from synth import make_bars  # noqa: E402

RESULTS = HERE / "results" / "latest.json"
ROWS: list[dict] = []
LOAD_AT_START = os.getloadavg()
SIZES = (100_000, 1_000_000)


@pytest.fixture(scope="session")
def bars_by_size() -> dict[int, pd.DataFrame]:
    """The synthetic bars at every size (prefixes of the 1M series, like the baseline)."""
    full = make_bars(max(SIZES))
    return {n: full.iloc[:n] for n in SIZES}


def record(**row: object) -> None:
    """Keep one measurement for the summary table and latest.json."""
    ROWS.append(row)


def _single_table() -> list[str]:
    single = [r for r in ROWS if r["kind"] == "single"]
    lines = ["| peer | bars | median | min | x vbt-rust | x numba loop | entries |",
             "|---|---|---|---|---|---|---|"]
    for n in SIZES:
        at = {r["peer"]: r for r in single if r["bars"] == n}
        if "backtesting.py" not in at and (n // 10) in {r["bars"] for r in single}:
            small = next((r for r in single if r["peer"] == "backtesting.py"
                          and r["bars"] == n // 10), None)
            if small:  # its cost per bar is flat in n (baseline): x10, labelled
                at["backtesting.py (x10 of 100k, extrapolated)"] = {
                    **small, "median_s": 10 * small["median_s"], "min_s": 10 * small["min_s"]}
        ref, ceil = at.get("vectorbt-rust"), at.get("numba loop")
        for peer, r in at.items():
            lines.append(
                f"| {peer} | {n:,} | {r['median_s'] * 1e3:.1f} ms | {r['min_s'] * 1e3:.1f} ms | "
                f"{r['median_s'] / ref['median_s'] if ref else float('nan'):.2f} | "
                f"{r['median_s'] / ceil['median_s'] if ceil else float('nan'):.0f} | "
                f"{r.get('entries', '')} |")
    return lines


def _sweep_table() -> list[str]:
    sweeps = [r for r in ROWS if r["kind"] == "sweep"]
    lines = ["| method | bars x sets | time | evals/s | x vbt-rust evals/s | x slower than "
             "numba loop | peak RSS (before) | entries |", "|---|---|---|---|---|---|---|---|"]
    vbt = next((r for r in sweeps if r["method"] == "vbt_rust"), None)
    for r in sweeps:
        ceil = next((c for c in sweeps if c["method"] == "numba_ceiling"
                     and c["bars"] == r["bars"] and c["sets"] == r["sets"]), None)
        lines.append(
            f"| {r['method']} | {r['bars']:,} x {r['sets']:,} | {r['seconds']:.2f} s | "
            f"{r['evals_per_s'] / 1e6:.1f} M | "
            f"{r['evals_per_s'] / vbt['evals_per_s'] if vbt else float('nan'):.1f} | "
            f"{ceil['evals_per_s'] / r['evals_per_s'] if ceil else float('nan'):.2f} | "
            f"{r['peak_rss_mib']:.0f} MiB ({r['rss_before_mib']:.0f}) | {r['entries']:,}"
            + (f" ({r['wiped_out']} accounts wiped out)" if r.get("wiped_out") else "") + " |")
    return lines


def _derived_targets() -> list[dict]:
    """The in-process targets: one 1M-bar backtest vs raw vectorbt-rust, the fused sweep."""
    out = []
    single = {r["peer"]: r for r in ROWS if r["kind"] == "single" and r["bars"] == 1_000_000}
    ours, vbt = single.get("crashbt (simulate + metrics)"), single.get("vectorbt-rust")
    if ours and vbt:
        ratio = ours["median_s"] / vbt["median_s"]
        out.append({"target": "single 1M-bar backtest (median)", "value": ratio, "limit": 1.0,
                    "unit": "x", "versus": "raw vectorbt-rust", "holds": ratio <= 1.0})
    fused = [r for r in ROWS if r["kind"] == "sweep" and r["method"] == "crashbt_fused"]
    if fused:
        best = max(fused, key=lambda r: r["bars"] * r["sets"])
        rate = best["evals_per_s"]
        out.append({"target": f"fused sweep {best['bars']:,} x {best['sets']:,}", "value": rate,
                    "limit": 1e8, "unit": "evals/s", "versus": "", "holds": rate >= 1e8})
    return out


def _targets_table() -> list[str]:
    lines = ["| target | limit | measured (wall) | holds | same on CPU time | wall | CPU | "
             "peak RSS | load (1 min) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in [*(r for r in ROWS if r["kind"] == "target"), *_derived_targets()]:
        unit = r["unit"]
        versus = f" {r['versus']}" if r["versus"] else ""
        limit = f"{'>=' if unit == 'evals/s' else '<='} {r['limit']:g} {unit}{versus}"
        cpu = f"{r['cpu_value']:.3g} {unit}" if "cpu_value" in r else ""
        process = (f"{r['wall_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_rss_mib']:.0f} MiB | "
                   f"{r['load_1m']:.1f}") if "wall_s" in r else "(in process) | | |"
        lines.append(f"| {r['target']} | {limit} | {r['value']:.3g} {unit} | "
                     f"{'yes' if r['holds'] else 'NO'} | {cpu} | {process} |")
    return lines


def _optuna_table() -> list[str]:
    lines = ["| trials x bars | per trial | simulation | features + signals | metrics | "
             "Optuna + bookkeeping | outside simulation, features, signals |",
             "|---|---|---|---|---|---|---|"]
    for r in (r for r in ROWS if r["kind"] == "optuna"):
        search = r["search"]
        lines.append(
            f"| {r['trials']} x {r['bars']:,} | {r['trial_ms']:.0f} ms | "
            f"{100 * r['simulation'] / search:.1f}% | "
            f"{100 * (r['features'] + r['signals']) / search:.1f}% | "
            f"{100 * r['metrics'] / search:.1f}% | {100 * r['optuna_share']:.1f}% | "
            f"{100 * r['outside_core_share']:.1f}% |")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    tables = {"targets (issue #17)": _targets_table(), "single backtest": _single_table(),
              "sweep": _sweep_table(), "optuna search": _optuna_table()}
    for title, lines in tables.items():
        terminalreporter.write_line(f"\n{title}")
        for line in lines:
            terminalreporter.write_line(line)
    terminalreporter.write_line(
        f"\nload average (1/5/15 min, 2-core machine shared or not): start "
        f"{'/'.join(f'{x:.1f}' for x in LOAD_AT_START)}, end "
        f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_at_start": LOAD_AT_START, "load_avg_at_end": os.getloadavg()},
        "rows": ROWS, "tables": tables}, indent=1))
    terminalreporter.write_line(f"\nwritten: {RESULTS}")
