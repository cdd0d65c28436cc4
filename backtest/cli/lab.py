"""``crashbt events`` and ``crashbt stress``: the crash lab (event studies, stress tests)."""

from __future__ import annotations

import argparse
from pathlib import Path

from backtest.cli.common import (
    EXIT_LOOKAHEAD,
    EXIT_OK,
    add_allow_external,
    add_command,
    add_set,
    int_between,
    table,
)


def cmd_events(args: argparse.Namespace) -> int:
    """Event study: what followed each crash event, against every bar (events.json + html)."""
    from backtest.lab import events, pages
    from backtest.lab.config import load_events_config

    cfg = load_events_config(args.config, args.set)
    if args.lookahead:
        offences = events.lookahead(cfg, args.config)
        for name, bars in offences.items():
            print(f"lookahead {name}: " + ("OK" if not bars else
                                           f"LOOK-AHEAD at {len(bars)} bars, first {bars[0]}"))
        return EXIT_LOOKAHEAD if any(offences.values()) else EXIT_OK
    result = events.study(cfg, args.config)
    page = pages.render_events(result) if cfg.report.html else None
    path = pages.write_report(Path(args.out or cfg.report.out), result["study_id"], "events",
                              result, page)
    horizons = list(cfg.events.horizons)
    rows = []
    for res in result["results"]:
        cells = []
        for h in horizons:
            row = res.get("horizons", {}).get(h, {})
            excess = row.get("excess_return_pct")
            sure = excess is not None and (excess["ci"][0] > 0 or excess["ci"][1] < 0)
            cells.append("-" if "event" not in row else
                         f"{row['event']['return_pct']['mean']:+.2f}{'*' if sure else ''}")
        rows.append((res["type"], res["symbol"], res.get("n_events", "skipped"), *cells))
    print(table(("event", "symbol", "events", *(f"{h} %" for h in horizons)), rows))
    print("mean forward return from the next open; * = the 95% interval of the excess over "
          "every bar excludes 0")
    print(f"report: {path}")
    return EXIT_OK


def cmd_stress(args: argparse.Namespace) -> int:
    """Stress test: a strategy over block-bootstrapped crash histories (stress.json + html)."""
    from backtest import plugins
    from backtest.lab import pages, stress
    from backtest.lab.config import load_stress_config

    run, cfg = load_stress_config(args.config, args.set)
    if args.paths is not None:
        cfg = cfg.model_copy(update={"paths": args.paths})
    spec = plugins.resolve(run.strategy.name, args.config, args.allow_external_strategies)
    result = stress.stress(run, cfg, spec, args.config)
    page = pages.render_stress(result) if run.report.html else None
    path = pages.write_report(Path(args.out or run.report.out), result["stress_id"], "stress",
                              result, page)
    print(stress.render_text(result))
    print(f"report: {path}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    events = add_command(sub, "events", cmd_events)
    events.add_argument("config", help="TOML events config ([events], [[events.types]])")
    events.add_argument("--out", help="output directory (default: [report].out)")
    events.add_argument("--lookahead", action="store_true",
                        help="only check that removing the future changes no past event (exit 3)")
    add_set(events)
    stress = add_command(sub, "stress", cmd_stress)
    stress.add_argument("config", help="TOML run config with a [stress] table")
    stress.add_argument("--out", help="output directory (default: [report].out)")
    stress.add_argument("--paths", type=int_between(10, 100_000),
                        help="number of synthetic paths ([stress].paths)")
    add_allow_external(stress)
    add_set(stress)
