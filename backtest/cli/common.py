"""What every command shares: exit codes, argument types, the markdown table, the subcommand
helper."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_LOOKAHEAD, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 128 + 13  # the status of a process ended by SIGPIPE
Command = Callable[[argparse.Namespace], int]


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high`` (argparse turns the error into exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, found {text[:40]!r}") \
                from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low}..{high}, found {text[:40]}")
        return value
    return parse


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, found {text[:40]!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds above 0, found {text[:40]}")
    return value


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
