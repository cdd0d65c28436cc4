"""``crashbt data list``: the bundled datasets."""

from __future__ import annotations

import argparse

from backtest.cli.common import EXIT_OK, add_command, table


def cmd_data_list(args: argparse.Namespace) -> int:
    """List bundled datasets from datasets/manifest.toml."""
    from backtest.data import bars as data

    rows = [(d["name"], d.get("kind", ""), d.get("symbol", ""), d.get("timeframe", ""),
             d.get("rows", ""), d.get("first", ""), d.get("last", ""))
            for d in data.list_datasets()]
    print(table(("name", "kind", "symbol", "timeframe", "rows", "first", "last"), rows))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: list the bundled ones")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    add_command(data_sub, "list", cmd_data_list)
