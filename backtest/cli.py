"""The ``crashbt`` command line: the only layer that talks to the terminal.

Exit codes: 0 success, 2 a user error (one line on stderr, no traceback unless ``--debug``),
3 ``check lookahead`` found look-ahead, 1 a bug, 130 interrupted. Heavy modules are imported
inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table (readable in a terminal, pastable into notes)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    from backtest.report.html import format_number

    return format_number(value)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the backtest(s) a config describes and write a report per strategy."""
    from backtest import pipeline, plugins
    from backtest.config.schema import load_config

    cfg = load_config(args.config, args.set)
    runs = [(run, plugins.resolve(run.strategy.name, args.config, args.allow_external_strategies))
            for run in cfg.runs()]
    # every run completes in memory before anything is written: a failing one leaves no report
    outcomes = [pipeline.execute(run, spec, args.config) for run, spec in runs]
    out_dir = Path(args.out or cfg.report.out)
    paths = [pipeline.write(outcome, out_dir, with_html=cfg.report.html) for outcome in outcomes]
    for path in paths:
        print(f"report: {path}")
    if len(paths) > 1 and cfg.report.html:
        from backtest.report import compare
        from backtest.report.files import safe_name

        page = out_dir.resolve() / f"compare-{safe_name(Path(args.config).stem)}.html"
        compare.compare(paths, page)
        print(f"comparison: {page}")
    first = outcomes[0].report
    print(f"{first['dataset']['symbol']} {first['dataset']['timeframe']} "
          f"{first['dataset']['start']} -> {first['dataset']['end']} ({first['engine']})")
    labels = [o.report["strategy"]["label"] for o in outcomes]
    rows = [(key, *(o.report["metrics"].get(key) for o in outcomes), first["benchmark"].get(key))
            for key in first["metrics"]]
    print(_table(("metric", *labels, "buy_and_hold"), rows))
    return EXIT_OK


def cmd_strategies(args: argparse.Namespace) -> int:
    """List registered strategies with their parameters, defaults and search space."""
    import dataclasses

    import strategies

    for spec in strategies.REGISTRY.values():
        print(f"{spec.name}: {spec.summary}")
        rows = []
        for f in dataclasses.fields(spec.params):
            dim = spec.space.get(f.name)
            rows.append((f.name, repr(f.default), dim.describe() if dim else "fixed"))
        print(_table(("param", "default", "search space"), rows))
        print()
    return EXIT_OK


def cmd_data_list(args: argparse.Namespace) -> int:
    """List bundled datasets from datasets/manifest.toml."""
    from backtest.data import bars as data

    rows = [(d["name"], d.get("kind", ""), d.get("symbol", ""), d.get("timeframe", ""),
             d.get("rows", ""), d.get("first", ""), d.get("last", ""))
            for d in data.list_datasets()]
    print(_table(("name", "kind", "symbol", "timeframe", "rows", "first", "last"), rows))
    return EXIT_OK


def cmd_show_config(args: argparse.Namespace) -> int:
    """Print the resolved config (after extends and --set) as JSON."""
    from backtest.config.schema import load_config
    from backtest.report.files import to_json

    cfg = load_config(args.config, args.set)
    sys.stdout.write(to_json(cfg.model_dump(mode="json")))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render report.html of a run directory from its report.json and CSVs (no re-run)."""
    from backtest.report import files as report
    from backtest.report import html

    run_dir = Path(args.run_dir)
    page = html.render_run_dir(run_dir)
    target = run_dir / "report.html"
    try:
        report.atomic_write_text(target, page)
    except OSError as exc:
        from backtest.errors import OutputError

        raise OutputError(f"{target}: expected a writable file, found "
                          f"{exc.strerror or exc}") from None
    print(f"report: {target}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare runs side by side: markdown table here, HTML with charts with --out."""
    from backtest.report import compare

    out = Path(args.out) if args.out else None
    header, rows = compare.compare([Path(p) for p in args.runs], out, args.allow_mismatch)
    print(_table(header, rows))
    if out is not None:
        print(f"compare: {out}")
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    """Search a strategy's parameters with Optuna (resumes; --storage for many machines)."""
    from backtest.optimize import search

    req = search.request_from_cli(
        args.config, args.set, trials=args.trials, timeout_s=args.timeout, seed=args.seed,
        storage=args.storage, study=args.study, jobs=args.jobs, out=args.out)
    outcome = search.run(req)
    print("\n".join(search.summary_lines(outcome)))
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


EXIT_LOOKAHEAD = 3  # ``crashbt check lookahead`` found values that change without the future


def cmd_check(args: argparse.Namespace) -> int:
    """Check a config's strategies: look-ahead (exit 3 when found) or warm-up needs."""
    from backtest import checks, plugins
    from backtest.config.schema import load_config

    cfg = load_config(args.config, args.set)
    runs = [(run, plugins.resolve(run.strategy.name, args.config, args.allow_external_strategies))
            for run in cfg.runs()]
    found = False
    for run, spec in runs:
        if args.check_command == "lookahead":
            rep = checks.lookahead(run, spec, args.config, cuts=args.cuts, seed=args.seed)
            print(checks.render_lookahead(rep))
            found = found or not rep.clean
        else:
            print(checks.render_warmup(checks.warmup(run, spec, args.config, extra=args.days)))
    return EXIT_LOOKAHEAD if found else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crashbt",
                                     description="Backtest crypto crash strategies.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int],
            **kw: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0], **kw)
        p.set_defaults(func=func)
        return p

    run = add("run", cmd_run)
    run.add_argument("config", help="TOML config file")
    run.add_argument("--out", help="output directory (default: [report].out)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set strategy.params.confirm_bars=2")
    run.add_argument("--allow-external-strategies", action="store_true",
                     help="allow strategy.name = 'module:SPEC' (imports and runs that code)")
    add("strategies", cmd_strategies)
    data = sub.add_parser("data", help="bundled datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    data_list = data_sub.add_parser("list", help=cmd_data_list.__doc__)
    data_list.set_defaults(func=cmd_data_list)
    show = add("show-config", cmd_show_config)
    show.add_argument("config")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    rep = add("report", cmd_report)
    rep.add_argument("run_dir", help="a run directory (reports/<run_id>)")
    cmp_ = add("compare", cmd_compare)
    cmp_.add_argument("runs", nargs="+", metavar="RUN_OR_JSON", help="run dirs or report.json")
    cmp_.add_argument("--out", help="write the comparison HTML to this file")
    cmp_.add_argument("--allow-mismatch", action="store_true",
                      help="compare runs on different datasets or date ranges")
    opt = add("optimize", cmd_optimize)
    opt.add_argument("config", help="TOML config file with an [optimize] table")
    opt.add_argument("--trials", type=int, help="complete trials wanted in total (resumes count)")
    opt.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    opt.add_argument("--storage", metavar="URL", help="database URL, e.g. postgresql://u:p@h/db "
                     "(default: a journal file under the output directory)")
    opt.add_argument("--study", help="study name (default: the config's name or file stem)")
    opt.add_argument("--jobs", type=int, default=1, help="local worker processes")
    opt.add_argument("--seed", type=int, help="sampler seed (default: [optimize].seed)")
    opt.add_argument("--out", help="output directory (default: [report].out)")
    opt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key")
    check = sub.add_parser("check", help="look-ahead and warm-up checks of a config")
    check_sub = check.add_subparsers(dest="check_command", required=True, metavar="SUBCOMMAND")
    checkers = {}
    for name, text in (("lookahead", "values that change when the future is removed (exit 3)"),
                       ("warmup", "how signals change with more history before the start")):
        checkers[name] = check_sub.add_parser(name, help=text)
        checkers[name].set_defaults(func=cmd_check)
        checkers[name].add_argument("config", help="TOML config file")
        checkers[name].add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        checkers[name].add_argument("--allow-external-strategies", action="store_true",
                                    help="allow strategy.name = 'module:SPEC'")
    checkers["lookahead"].add_argument("--cuts", type=int, default=30, help="truncations")
    checkers["lookahead"].add_argument("--seed", type=int, default=0, help="random cuts seed")
    checkers["warmup"].add_argument("--days", type=int, action="append", default=[],
                                    metavar="N", help="also try N days of history")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crashbt`` console script."""
    args = build_parser().parse_args(argv)
    from backtest.errors import UserError
    from backtest.redact import mask_secrets

    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"crashbt: error: {mask_secrets(str(exc))}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("crashbt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if args.debug:
            traceback.print_exc()
        print(f"crashbt: internal error: {type(exc).__name__}: {mask_secrets(str(exc))} "
              "(re-run with --debug for the traceback)", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
