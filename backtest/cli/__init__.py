"""The ``crashbt`` command line: the only layer that talks to the terminal.

Exit codes: 0 success, 2 a user error (one line on stderr, no traceback unless ``--debug``),
3 ``check lookahead`` found look-ahead, 1 a bug, 130 interrupted, 141 stdout closed by its
reader (``crashbt run ... | head``: the work is done, the rest of the summary is dropped).
Each command group lives in a module with a ``register(subparsers)`` function; heavy modules are
imported inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from backtest.cli import check, data, lab, optimize, report, run, strategy
from backtest.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_USER,
)

COMMAND_GROUPS = (run, data, report, optimize, check, lab, strategy)
# crashbt's configs use no pydantic plugins: skip pydantic's scan of every installed package's
# entry points when the first config model is built (a command imports them after this); a
# user's own setting wins
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
MASK_WINDOW = 64_000  # characters of a message masked; terminal_safe shows fewer
#: allocations between young collections in the ``crashbt`` process (CPython's default is 700)
YOUNG_GC_THRESHOLD = 100_000


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one terminal-safe line, like every other error."""

    def error(self, message: str) -> NoReturn:
        from backtest.redact import terminal_safe

        self.exit(EXIT_USER, f"crashbt: error: {terminal_safe(f'{self.prog}: {message}')} "
                             f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="crashbt", description="Backtest crypto crash strategies.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def entry(argv: Sequence[str] | None = None) -> int:
    """The ``crashbt`` console script and ``python -m backtest``: :func:`main` in a process
    that ends with the command, its cyclic garbage collector tuned for that.

    Importing numpy, pandas, pyarrow, pydantic and optuna leaves ~80k long-lived container
    objects, and with CPython's threshold of 700 allocations the collector traversed them ~200
    times during a cold ``crashbt run`` (a tenth of its wall time, a fifth of a 200-trial
    search's start-up), finding no garbage, then once more at exit. Here a young collection runs
    every :data:`YOUNG_GC_THRESHOLD` allocations instead (cyclic garbage stays bounded by that;
    the older generations keep their thresholds), and the heap is frozen once the command has
    returned, so exit does not traverse it again (the command's files are closed by then).
    :func:`main` itself leaves the collector alone: tests call it in their own process.
    """
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        return main(argv)
    finally:
        gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    """The one error boundary of every command (:func:`entry` runs it for the console script).

    The user's world failing (a :class:`UserError`, or any ``OSError``: disk full, read-only or
    unwritable locations, too many open files) is one masked, terminal-safe line and exit 2; a
    reader that stops reading stdout (``crashbt run ... | head``) ends the command quietly
    with 141; anything else is a bug (exit 1).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return exc.code if isinstance(exc.code, int) else EXIT_USER
    from backtest.errors import UserError

    try:
        return args.func(args)
    except BrokenPipeError:
        return _reader_gone()
    except UserError as exc:
        return _fail(args, EXIT_USER, "error", str(exc))
    except OSError as exc:  # the machine, not crashbt: name the file and the reason
        return _fail(args, EXIT_USER, "error", describe_os_error(exc, args))
    except KeyboardInterrupt:
        _say("crashbt: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, unless a library wrapped the world's failure in its own
        cause = world_cause(exc)
        if isinstance(cause, UserError):
            return _fail(args, EXIT_USER, "error", str(cause))
        if isinstance(cause, OSError):
            return _fail(args, EXIT_USER, "error", describe_os_error(cause, args))
        return _fail(args, EXIT_BUG, "internal error",
                     f"{type(exc).__name__}: {exc} (re-run with --debug for the traceback)")


def world_cause(exc: BaseException) -> BaseException | None:
    """The ``UserError`` or ``OSError`` an exception was raised while handling, if any (Optuna
    turns a full disk under its journal into ``AssertionError: Should not reach``)."""
    from backtest.errors import UserError

    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, (UserError, OSError)):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def describe_os_error(exc: OSError, args: argparse.Namespace) -> str:
    """``<file>: expected a usable file or directory, found <reason>`` for any ``OSError``;
    without a file name, the command's output directory is the likely place."""
    out = getattr(args, "out", None)
    where = exc.filename or (f"{out} (--out)" if out else "the output directory")
    reason = (exc.strerror or type(exc).__name__).lower()
    return f"{where}: expected a usable file or directory, found {reason}"


def _fail(args: argparse.Namespace, code: int, kind: str, text: str) -> int:
    """One masked, terminal-safe line (the secrets of ``--storage`` masked wherever they are)."""
    from backtest.redact import mask_secrets, terminal_safe

    storage = getattr(args, "storage", None)
    if args.debug:  # the traceback is masked too; its lines stay lines
        for line in traceback.format_exc().splitlines():
            _say(terminal_safe(mask_secrets(line[:MASK_WINDOW], storage)))
    # cut before masking too: a hostile megabyte of text must not slow the masker
    _say(f"crashbt: {kind}: {terminal_safe(mask_secrets(text[:MASK_WINDOW], storage))}")
    return code


def _say(line: str) -> None:
    """Print one line on stderr; a closed stderr is nobody left to tell."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, file=sys.stderr, flush=True)


def _reader_gone() -> int:
    """stdout's reader went away: point stdout at /dev/null (so the interpreter's last flush
    cannot fail again) and exit like a process ended by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a file descriptor (captured in tests): nothing to redirect
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
