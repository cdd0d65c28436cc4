"""The ``crashbt`` command line: the only layer that talks to the terminal.

Exit codes: 0 success, 2 a user error (one line on stderr, no traceback unless ``--debug``),
3 ``check lookahead`` found look-ahead, 1 a bug, 130 interrupted. Each command group lives in a
module with a ``register(subparsers)`` function; heavy modules are imported inside the commands
so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from backtest.cli import check, data, lab, optimize, report, run, strategy
from backtest.cli.common import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER

COMMAND_GROUPS = (run, data, report, optimize, check, lab, strategy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crashbt",
                                     description="Backtest crypto crash strategies.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
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
