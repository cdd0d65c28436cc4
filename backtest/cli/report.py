"""``crashbt report`` and ``crashbt compare``: pages from finished runs, no re-run."""

from __future__ import annotations

import argparse
from pathlib import Path

from backtest.cli.common import EXIT_OK, add_command, table


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render report.html of a run directory from its report.json and CSVs (no re-run)."""
    from backtest.report import files as report
    from backtest.report import html

    run_dir = Path(args.run_dir)
    page = html.render_run_dir(run_dir)
    target = run_dir / "report.html"
    report.atomic_write_text(target, page)
    print(f"report: {target}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare runs side by side: markdown table here, HTML with charts with --out."""
    from backtest.report import compare

    out = Path(args.out) if args.out else None
    header, rows = compare.compare([Path(p) for p in args.runs], out, args.allow_mismatch)
    print(table(header, rows))
    if out is not None:
        print(f"compare: {out}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    rep = add_command(sub, "report", cmd_report)
    rep.add_argument("run_dir", help="a run directory (reports/<run_id>)")
    cmp_ = add_command(sub, "compare", cmd_compare)
    cmp_.add_argument("runs", nargs="+", metavar="RUN_OR_JSON", help="run dirs or report.json")
    cmp_.add_argument("--out", help="write the comparison HTML to this file")
    cmp_.add_argument("--allow-mismatch", action="store_true",
                      help="compare runs on different datasets or date ranges")
