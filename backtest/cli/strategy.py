"""``crashbt new-strategy NAME``: start a strategy of your own from the guide's example.

Writes ``NAME.py`` (docs/examples/my_strategy.py renamed) and ``NAME.toml`` (a config that runs
it) into ``--dir``; existing files are never overwritten. The strategy guide in docs/ explains
the file line by line.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

from backtest.cli.common import EXIT_OK, add_command

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TEMPLATE = "my_strategy"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def render(name: str) -> dict[str, str]:
    """The template's strategy file and config with ``my_strategy`` renamed to ``name``."""
    from backtest.errors import ConfigError

    out = {}
    for suffix in (".py", ".toml"):
        path = EXAMPLES / f"{TEMPLATE}{suffix}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: expected the strategy template, found no file") from None
        out[f"{name}{suffix}"] = text.replace(f"docs/examples/{TEMPLATE}", name).replace(
            TEMPLATE, name)
    return out


def cmd_new_strategy(args: argparse.Namespace) -> int:
    """Write NAME.py and NAME.toml: a complete example strategy to edit (docs/strategies.md)."""
    from backtest.errors import ConfigError

    if not _NAME.match(args.name):
        raise ConfigError(f"new-strategy: NAME: expected a lower-case Python identifier like "
                          f"'fear_at_support', found {args.name!r}")
    folder = Path(args.dir)
    files = render(args.name)
    for file in files:
        if (folder / file).exists():
            raise ConfigError(f"{folder / file}: expected a new file, found an existing one "
                              f"(new-strategy never overwrites)")
    if not folder.is_dir():
        raise ConfigError(f"new-strategy --dir: expected an existing folder, found {folder}")
    for file, text in files.items():
        _write_new(folder / file, text)
    print(f"wrote {folder / f'{args.name}.py'} and {folder / f'{args.name}.toml'}")
    print(f"next: crashbt run {folder / f'{args.name}.toml'} --allow-external-strategies")
    return EXIT_OK


def _write_new(path: Path, text: str) -> None:
    """Write through a temporary file and a link, so a crash leaves no half file and a file
    created meanwhile is not replaced."""
    from backtest.errors import ConfigError

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(tmp, path)
    except FileExistsError:
        raise ConfigError(f"{path}: expected a new file, found an existing one") from None
    finally:
        os.unlink(tmp)


def register(sub: argparse._SubParsersAction) -> None:
    new = add_command(sub, "new-strategy", cmd_new_strategy)
    new.add_argument("name", help="strategy name (a lower-case Python identifier)")
    new.add_argument("--dir", default=".", help="folder to write NAME.py and NAME.toml into")
