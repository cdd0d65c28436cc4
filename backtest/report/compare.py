"""``crashbt compare``: several finished runs side by side, from their report directories.

Runs are comparable only when they saw the same bars: same dataset (name, sha256, symbol,
timeframe) and the same first and last bar. Anything else is refused with one line unless the
caller allows a mismatch. Nothing is re-run; the HTML is a rendering of the reports.

Imports from crashbt: catalogue, errors, report, html. Never the engine, vectorbt or optuna.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from backtest import catalogue
from backtest.errors import DataError, OutputError
from backtest.report import files as report
from backtest.report import html

SAME_DATA_KEYS = ("name", "sha256", "symbol", "timeframe", "start", "end")


def load_runs(paths: list[Path]) -> list[html.RunRecords]:
    """Each argument is a run directory or a ``report.json`` path (CSVs read from beside it)."""
    if len(paths) < 2:
        raise OutputError(f"compare: runs: expected at least 2 runs, found {len(paths)}")
    return [html.read_run_dir(Path(p)) for p in paths]


def check_same_data(runs: list[html.RunRecords]) -> None:
    """Refuse runs that did not see the same bars (first difference found, one line)."""
    ref = runs[0].report["dataset"]
    for run in runs[1:]:
        ds = run.report["dataset"]
        for key in SAME_DATA_KEYS:
            if ds.get(key) != ref.get(key):
                raise DataError(
                    f"{run.path}: dataset.{key}: expected {ref.get(key)} as in {runs[0].path}, "
                    f"found {ds.get(key)}; pass --allow-mismatch to compare anyway")


def run_names(runs: list[html.RunRecords]) -> list[str]:
    """Column names: the strategy label, with the run id added where labels repeat."""
    labels = [r.report["strategy"]["label"] for r in runs]
    counts = Counter(labels)
    return [label if counts[label] == 1 else f"{label} ({r.report['run_id'][-6:]})"
            for label, r in zip(labels, runs, strict=True)]


def metric_table(runs: list[html.RunRecords],
                 names: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the metrics side by side; the best value per row is marked with *."""
    header = ["metric", *names]
    rows: list[list[Any]] = []
    for key in html.metric_keys(*(r.report["metrics"] for r in runs)):
        values = [r.report["metrics"].get(key) for r in runs]
        best = html.best_index(values, catalogue.direction(key))
        rows.append([key, *(f"{html.format_number(v)}*" if i == best else v
                            for i, v in enumerate(values))])
    return header, rows


def compare(paths: list[Path], out: Path | None,
            allow_mismatch: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Load, check and (when ``out`` is given) write the comparison page; return the table."""
    runs = load_runs(paths)
    if not allow_mismatch:
        check_same_data(runs)
    names = run_names(runs)
    if out is not None:
        page = html.render_compare(runs, names)
        if not out.parent.is_dir():
            raise OutputError(f"{out}: --out: expected an existing directory, found none")
        try:
            report.atomic_write_text(out, page)
        except OSError as exc:
            raise OutputError(f"{out}: --out: expected a writable file, found "
                              f"{exc.strerror or exc}") from None
    return metric_table(runs, names)
