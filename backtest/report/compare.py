"""``crashbt compare``: several finished runs side by side, from their report directories.

Runs are comparable only when they saw the same bars: same dataset (name, sha256, symbol,
timeframe) and the same first and last bar. Anything else is refused with one line unless the
caller allows a mismatch. Nothing is re-run; the HTML is a rendering of the reports. The
terminal table and the HTML page read one :class:`Comparison`, so they agree on names, values
and which run is best.

Imports from crashbt: catalogue, errors, report. Never the engine, vectorbt or optuna.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtest import catalogue
from backtest.errors import DataError, OutputError
from backtest.report import files as report
from backtest.report import formatting
from backtest.report.pages import compare as compare_page
from backtest.report.pages.run import RunRecords, flatten, read_run_dir

SAME_DATA_KEYS = ("name", "sha256", "symbol", "timeframe", "start", "end")
NOT_A_DIFFERENCE = ("strategy.label",)  # the run names already show it


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: names, metric rows (with the best run per row), the buy-and-hold
    metrics of the shared data, and the config keys whose values differ."""

    runs: list[RunRecords]
    names: list[str]
    rows: list[dict[str, Any]]
    traded: list[bool]
    benchmark: dict[str, Any]
    diff: list[tuple[str, list[Any]]]


def load_runs(paths: list[Path]) -> list[RunRecords]:
    """Each argument is a run directory or a ``report.json`` path (CSVs read from beside it)."""
    if len(paths) < 2:
        raise OutputError(f"compare: runs: expected at least 2 runs, found {len(paths)}")
    return [read_run_dir(Path(p)) for p in paths]


def check_same_data(runs: list[RunRecords]) -> None:
    """Refuse runs that did not see the same bars (first difference found, one line)."""
    ref = runs[0].report["dataset"]
    for run in runs[1:]:
        ds = run.report["dataset"]
        for key in SAME_DATA_KEYS:
            if ds.get(key) != ref.get(key):
                raise DataError(
                    f"{run.path}: dataset.{key}: expected {ref.get(key)} as in {runs[0].path}, "
                    f"found {ds.get(key)}; pass --allow-mismatch to compare anyway")


def config_diff(runs: list[RunRecords]) -> list[tuple[str, list[Any]]]:
    """Flattened config keys whose values differ between runs, with each run's value."""
    flat = [flatten(r.report["config"]) for r in runs]
    keys = sorted({k for f in flat for k in f})
    return [(k, [f.get(k) for f in flat]) for k in keys if k not in NOT_A_DIFFERENCE
            and len({json.dumps(f.get(k), default=str) for f in flat}) > 1]


def run_names(runs: list[RunRecords], diff: list[tuple[str, list[Any]]]) -> list[str]:
    """Column names: the strategy label; where labels repeat, the parameters that differ
    (``label (confirm_bars=2)``), and a position only if even those are the same."""
    labels = [r.report["strategy"]["label"] for r in runs]
    counts = Counter(labels)
    names = []
    for i, label in enumerate(labels):
        if counts[label] > 1:
            params = [f"{key.removeprefix('strategy.params.')}={formatting.format_param(v[i])}"
                      for key, v in diff if key.startswith("strategy.params.")]
            label = f"{label} ({', '.join(params)})" if params else label
        names.append(label)
    repeated = Counter(names)
    return [f"{n} #{i + 1}" if repeated[n] > 1 else n for i, n in enumerate(names)]


def best_index(values: list[Any], direction: int, eligible: list[bool]) -> int | None:
    """Index of the best value for a metric direction among ``eligible`` runs (those that
    traded); None when the metric has no direction, fewer than two candidates, or a tie."""
    nums = [(i, v) for i, v in enumerate(values) if eligible[i] and formatting.is_number(v)]
    if direction == 0 or len(nums) < 2 or len({v for _, v in nums}) == 1:
        return None
    pick = max if direction > 0 else min
    return pick(nums, key=lambda item: item[1])[0]


def traded(report: dict[str, Any]) -> bool:
    """Whether a run held a position at all (closed trades, or exposure from an open one)."""
    metrics = report["metrics"]
    return (metrics.get("n_trades") or 0) > 0 or (metrics.get("exposure_pct") or 0) > 0


def build(runs: list[RunRecords]) -> Comparison:
    """The comparison of loaded runs (names, rows with the best marked, benchmark, diff)."""
    reps = [r.report for r in runs]
    eligible = [traded(r) for r in reps]
    rows = []
    for key in formatting.ordered_keys(*(r["metrics"] for r in reps)):
        values = [r["metrics"].get(key) for r in reps]
        rows.append({"key": key, "values": values,
                     "best": best_index(values, catalogue.direction(key), eligible)})
    diff = config_diff(runs)
    return Comparison(runs=runs, names=run_names(runs, diff), rows=rows, traded=eligible,
                      benchmark=reps[0].get("benchmark") or {}, diff=diff)


def terminal_table(cmp: Comparison) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for the terminal: metrics (best marked with *), buy and hold, then the
    parameters and settings that differ between the runs."""
    header = ["metric", *cmp.names, "buy and hold"]
    rows: list[list[Any]] = []
    for row in cmp.rows:
        cells = [formatting.format_metric(row["key"], v) + ("*" if i == row["best"] else "")
                 for i, v in enumerate(row["values"])]
        bench = cmp.benchmark.get(row["key"])
        rows.append([row["key"], *cells,
                     formatting.format_metric(row["key"], bench) if bench is not None else ""])
    for key, values in cmp.diff:
        rows.append([key.removeprefix("strategy.params."),
                     *(formatting.format_param(v) for v in values), ""])
    return header, rows


def compare(paths: list[Path], out: Path | None,
            allow_mismatch: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Load, check and (when ``out`` is given) write the comparison page; return the table."""
    runs = load_runs(paths)
    if not allow_mismatch:
        check_same_data(runs)
    cmp = build(runs)
    if out is not None:
        page = compare_page.render_compare(cmp)
        if not out.parent.is_dir():
            raise OutputError(f"{out}: --out: expected an existing directory, found none")
        report.atomic_write_text(out, page)
    return terminal_table(cmp)
