"""``crashbt optimize``: an Optuna search of a config's strategy parameters, its progress bar
and the terminal summary (the search itself prints nothing)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from backtest.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USER,
    add_allow_external,
    add_command,
    add_set,
    int_between,
    positive_seconds,
)


def cmd_optimize(args: argparse.Namespace) -> int:
    """Search a strategy's parameters with Optuna (resumes; --storage for many machines)."""
    from backtest.optimize.request import inputs_loading, request_from_cli

    req = request_from_cli(
        args.config, args.set, trials=args.trials, timeout_s=args.timeout, seed=args.seed,
        storage=args.storage, study=args.study, jobs=args.jobs, out=args.out,
        allow_external=args.allow_external_strategies)
    with inputs_loading(req) as inputs:
        from backtest.optimize import search  # optuna imports while the bars load

        with _progress(req.opt.trials) as show:
            outcome = search.run(req, show, inputs.result())
    print("\n".join(summary_lines(outcome.doc, outcome.path, outcome.best_run,
                                  outcome.interrupted)))
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.doc["best"] is None:
        print(f"crashbt: error: {req.source}: optimize: expected a complete feasible trial, "
              f"found none of {outcome.doc['counts'].get('COMPLETE', 0)} complete (see "
              f"{outcome.path})", file=sys.stderr)
        return EXIT_USER
    return EXIT_OK


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int, float | None], None] | None]:
    """A rich progress bar on stderr with the best value; None (no listener, so the search
    queries no counts) when stderr is not a TTY."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("best {task.fields[best]}"), console=Console(stderr=True),
                   transient=False)
    task = bar.add_task("search", total=total, best="-")
    with bar:
        yield lambda n, best: bar.update(task, completed=min(n, total),
                                         best="-" if best is None else f"{best:.4g}")


def _num(value: float | None) -> str:
    return "no trades" if value is None else f"{value:.4g}"


def _trades(n: float) -> str:
    return f"{n:.0f} trade" + ("" if n == 1 else "s")


def summary_lines(doc: dict[str, Any], path: object, best_run: object,
                  interrupted: bool) -> list[str]:
    """What ``crashbt optimize`` prints: counts, space, best, walk-forward folds, overfitting."""
    lines = [f"study: {doc['study']} (storage {doc['storage']})",
             "trials: " + ", ".join(f"{v} {k.lower()}" for k, v in doc["counts"].items())]
    space = ", ".join(f"{k} {v}" for k, v in doc["space"].items())
    lines.append(f"searched: {space or 'nothing'}"
                 + (f" (not in [optimize.params]: {', '.join(doc['default_space'])} use the "
                    "strategy's default space)" if doc.get("default_space") else ""))
    best = doc["best"]
    metric = doc["objectives"][0]["metric"]
    if best is None:
        lines.append("best: none (no complete feasible trial)")
    else:
        objs = ", ".join(f"{o['metric']} {_num(v)}" for o, v in
                         zip(doc["objectives"], best["values"], strict=True))
        lines.append(f"best: trial {best['number']}: in-sample {objs}; params {best['searched']}")
    wf = doc["walk_forward"]
    if wf is not None:
        lines.append(f"walk-forward (each fold picks on its own in-sample part), {metric}:")
        for row in wf["folds"]:
            lines.append("  " + _fold_line(row, metric))
        if wf["oos_mean"] is None:
            lines.append(f"out-of-sample {metric}: none (0 of {wf['n_folds']} folds have a "
                         f"pick that traded out of sample)")
        else:
            lines.append(f"out-of-sample {metric} {wf['oos_mean']:.4g} (in-sample "
                         f"{wf['is_mean']:.4g}): mean of {wf['oos_folds']} of {wf['n_folds']} "
                         f"folds, on {_trades(wf['oos_trades'])} out of sample")
    dsr, pbo = doc["overfitting"]["deflated_sharpe"], doc["overfitting"]["pbo"]
    if dsr is not None:
        lines.append(f"deflated Sharpe ratio: {dsr['dsr']:.3f} over {dsr['n_trials']} trials "
                     f"({'significant' if dsr['significant'] else 'not significant'} at 0.95); "
                     f"PBO {pbo['pbo']:.3f} ({pbo['n_splits']} CSCV splits)")
    lines.append(f"report: {path}")
    if best_run is not None:
        lines.append(f"best run: {best_run}")
    if interrupted:
        lines.append("interrupted: the report shows the trials done so far")
    return lines


def _fold_line(row: dict[str, Any], metric: str) -> str:
    if row["trial"] is None:
        return (f"{row['fold']}: no trial meets the constraints with {metric} defined "
                "in-sample")
    tie = f", all {row['candidates']} candidates tie" if row["tied"] else ""
    return (f"{row['fold']}: trial {row['trial']}{tie}: in-sample {_num(row['is'][metric])} "
            f"({_trades(row['is']['n_trades'])}) -> out-of-sample "
            f"{_num(row['oos'][metric])} ({_trades(row['oos']['n_trades'])})")


def register(sub: argparse._SubParsersAction) -> None:
    opt = add_command(sub, "optimize", cmd_optimize)
    opt.add_argument("config", help="TOML config file with an [optimize] table")
    opt.add_argument("--trials", type=int_between(1, 1_000_000),
                     help="complete trials wanted in total (resumes count)")
    opt.add_argument("--timeout", type=positive_seconds, metavar="S", help="stop after S seconds")
    opt.add_argument("--storage", metavar="URL", help="database URL, e.g. postgresql://u:p@h/db "
                     "(default: a journal file under the output directory)")
    opt.add_argument("--study", help="study name (default: the config's name or file stem)")
    opt.add_argument("--jobs", type=int_between(1, 256), default=1,
                     help="local worker processes sharing the study (helps when one trial "
                          "takes seconds and cores are free; see docs/optimize.md)")
    opt.add_argument("--seed", type=int_between(0, 2**31),
                     help="sampler seed (default: [optimize].seed)")
    opt.add_argument("--out", help="output directory (default: [report].out)")
    add_set(opt)
    add_allow_external(opt)
