"""``crashbt check lookahead|warmup``: does a strategy use the future, and how much history does
it need?"""

from __future__ import annotations

import argparse

from backtest.cli.common import EXIT_LOOKAHEAD, EXIT_OK, add_allow_external, add_set, int_between


def cmd_check(args: argparse.Namespace) -> int:
    """Check a config's strategies: look-ahead (exit 3 when found) or warm-up needs."""
    from backtest import checks, plugins
    from backtest.config.loader import load_config

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


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="look-ahead and warm-up checks of a config")
    check_sub = check.add_subparsers(dest="check_command", required=True, metavar="SUBCOMMAND")
    checkers = {}
    for name, text in (("lookahead", "values that change when the future is removed (exit 3)"),
                       ("warmup", "how signals change with more history before the start")):
        checkers[name] = check_sub.add_parser(name, help=text)
        checkers[name].set_defaults(func=cmd_check)
        checkers[name].add_argument("config", help="TOML config file")
        add_set(checkers[name])
        add_allow_external(checkers[name])
    checkers["lookahead"].add_argument("--cuts", type=int_between(1, 10_000), default=30,
                                       help="truncations")
    checkers["lookahead"].add_argument("--seed", type=int_between(0, 2**32 - 1), default=0,
                                       help="random cuts seed")
    checkers["warmup"].add_argument("--days", type=int_between(0, 36_500), action="append",
                                    default=[], metavar="N", help="also try N days of history")
