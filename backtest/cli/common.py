"""What every command shares: exit codes, the markdown table, and the subcommand helper."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_LOOKAHEAD, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
Command = Callable[[argparse.Namespace], int]


def add_command(sub: argparse._SubParsersAction, name: str, func: Command,
                **kw: str) -> argparse.ArgumentParser:
    """A subcommand whose help is the first line of ``func``'s docstring."""
    p = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0], **kw)
    p.set_defaults(func=func)
    return p


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set strategy.params.confirm_bars=2")


def add_allow_external(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-external-strategies", action="store_true",
                        help="allow strategy.name = 'module:SPEC' (imports and runs that code)")


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
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
