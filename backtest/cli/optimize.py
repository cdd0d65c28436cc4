"""``crashbt optimize``: an Optuna search of a config's strategy parameters."""

from __future__ import annotations

import argparse

from backtest.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_allow_external,
    add_command,
    add_set,
)


def cmd_optimize(args: argparse.Namespace) -> int:
    """Search a strategy's parameters with Optuna (resumes; --storage for many machines)."""
    from backtest.optimize import search

    req = search.request_from_cli(
        args.config, args.set, trials=args.trials, timeout_s=args.timeout, seed=args.seed,
        storage=args.storage, study=args.study, jobs=args.jobs, out=args.out,
        allow_external=args.allow_external_strategies)
    outcome = search.run(req)
    print("\n".join(search.summary_lines(outcome)))
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    opt = add_command(sub, "optimize", cmd_optimize)
    opt.add_argument("config", help="TOML config file with an [optimize] table")
    opt.add_argument("--trials", type=int, help="complete trials wanted in total (resumes count)")
    opt.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    opt.add_argument("--storage", metavar="URL", help="database URL, e.g. postgresql://u:p@h/db "
                     "(default: a journal file under the output directory)")
    opt.add_argument("--study", help="study name (default: the config's name or file stem)")
    opt.add_argument("--jobs", type=int, default=1, help="local worker processes")
    opt.add_argument("--seed", type=int, help="sampler seed (default: [optimize].seed)")
    opt.add_argument("--out", help="output directory (default: [report].out)")
    add_set(opt)
    add_allow_external(opt)
