"""``crashbt run``, ``strategies`` and ``show-config``: one road from a config to a report, and
what a user needs to write one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backtest.cli.common import EXIT_OK, add_allow_external, add_command, add_set, table


def cmd_run(args: argparse.Namespace) -> int:
    """Run the backtest(s) a config describes and write a report per strategy."""
    from backtest import pipeline, plugins
    from backtest.config.loader import load_config

    cfg = load_config(args.config, args.set)
    if cfg.optimize is not None:
        print("note: this config has an [optimize] table; run uses its base [strategy.params] "
              "(crashbt optimize runs the search)")
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
    print(table(("metric", *labels, "buy_and_hold"), rows))
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
        print(table(("param", "default", "search space"), rows))
        print()
    return EXIT_OK


def cmd_show_config(args: argparse.Namespace) -> int:
    """Print the resolved config (after extends and --set) as JSON."""
    from backtest.config.loader import load_config
    from backtest.report.files import to_json

    cfg = load_config(args.config, args.set)
    sys.stdout.write(to_json(cfg.model_dump(mode="json")))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    run = add_command(sub, "run", cmd_run)
    run.add_argument("config", help="TOML config file")
    run.add_argument("--out", help="output directory (default: [report].out)")
    add_set(run)
    add_allow_external(run)
    add_command(sub, "strategies", cmd_strategies)
    show = add_command(sub, "show-config", cmd_show_config)
    show.add_argument("config")
    add_set(show)
