"""``crashbt data list`` (the bundled datasets) and ``crashbt data fetch`` (bars and funding from
any ccxt exchange into a user data directory; :mod:`backtest.data.fetch`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from backtest.cli.common import EXIT_OK, add_command, int_between, positive_seconds, table


def cmd_data_list(args: argparse.Namespace) -> int:
    """List bundled datasets from datasets/manifest.toml."""
    from backtest.data import files

    rows = [(d["name"], d.get("kind", ""), d.get("symbol", ""), d.get("timeframe", ""),
             d.get("rows", ""), d.get("first", ""), d.get("last", ""))
            for d in files.list_datasets()]
    print(table(("name", "kind", "symbol", "timeframe", "rows", "first", "last"), rows))
    return EXIT_OK


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """Fetch OHLCV (or --funding) from a ccxt exchange; appends only what is missing."""
    from pathlib import Path

    import pandas as pd

    from backtest.config.common import parse_utc
    from backtest.data.fetch import FetchRequest, fetch
    from backtest.errors import ConfigError

    def moment(key: str, text: str | None) -> pd.Timestamp | None:
        try:
            return None if text is None else pd.Timestamp(parse_utc(text))
        except ValueError:
            raise ConfigError(f"data fetch --{key}: expected an ISO-8601 date, found "
                              f"{text!r}") from None

    since = moment("since", args.since)
    req = FetchRequest(
        exchange=args.exchange, symbol=args.symbol,
        kind="funding" if args.funding else "ohlcv", timeframe=args.timeframe,
        until=moment("until", args.until), data_dir=Path(args.dir), timeout_s=args.timeout,
        page_limit=args.limit, retries=args.retries,
        exchange_config=_ccxt_options(args.ccxt),
        **({"since": since} if since is not None else {}))

    def progress(added: int, last: pd.Timestamp) -> None:
        print(f"\rfetch {req.exchange} {req.symbol} {req.kind}: {added:,} new rows, up to "
              f"{last:%Y-%m-%d %H:%M} UTC", end="", file=sys.stderr, flush=True)

    result = fetch(req, progress)
    if result.added:
        print(file=sys.stderr)
    entry = result.entry
    print(f"{result.path}: {result.added:,} new rows; {entry['rows']:,} rows {entry['first']} "
          f".. {entry['last']} (sha256 {entry['sha256'][:12]}, in "
          f"{Path(args.dir) / 'manifest.json'})")
    use = ("--set external.funding_8h.path=" if args.funding
           else "--set data.dataset=none --set data.path=")
    print(f"use it: crashbt run CONFIG {use}{result.path}")
    return EXIT_OK


def _ccxt_options(items: list[str]) -> dict[str, Any]:
    """``--ccxt KEY=VALUE`` pairs (VALUE as JSON when it parses, else text) for ccxt."""
    from backtest.errors import ConfigError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"data fetch --ccxt {key}: expected KEY=VALUE, found no '='")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: list the bundled ones, fetch your own")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    add_command(data_sub, "list", cmd_data_list)
    fetch = add_command(data_sub, "fetch", cmd_data_fetch)
    fetch.add_argument("exchange", help="a ccxt exchange id, e.g. binance")
    fetch.add_argument("symbol", help="a ccxt symbol: ETH/USDT (spot), ETH/USDT:USDT (perp)")
    fetch.add_argument("--timeframe", default="1d", help="bar length (default 1d)")
    fetch.add_argument("--funding", action="store_true",
                       help="fetch the perpetual's funding history instead of bars")
    fetch.add_argument("--since", help="first bar of a new file (default 2017-01-01)")
    fetch.add_argument("--until", help="last moment to fetch (default now; open bars never)")
    fetch.add_argument("--dir", default="data", help="user data directory (default data/)")
    fetch.add_argument("--timeout", type=positive_seconds, default=30.0,
                       help="seconds per request")
    fetch.add_argument("--limit", type=int_between(1, 100_000), default=1000,
                       help="rows per request")
    fetch.add_argument("--retries", type=int_between(0, 100), default=5,
                       help="retries of a rate-limited, failed or timed-out request")
    fetch.add_argument("--ccxt", action="append", default=[], metavar="KEY=VALUE",
                       help="a ccxt exchange option (JSON value), e.g. "
                            "--ccxt 'options={\"defaultType\": \"swap\"}'")
