"""Run ``crashbt`` with a SIGKILL planted at the Nth pass through one point of a search.

``python tests/killpoint.py POINT N crashbt-args...`` (for tests/test_optimize_kill.py and
tests/test_optimize_postgres.py). Points, N counting passes through the point:
``ask`` right after a batch of trials was claimed (RUNNING and owned, nothing else written
for it), ``tell`` before the write of a batch's results (which also claims the next batch,
unless it is the last), ``told`` right after it, ``eval`` when a batch's evaluation starts,
``report`` while the best run's report is written; on the journal ``append`` in the middle
of any append (half of it written, under the journal lock), ``claim-append`` in the middle of
an append that only claims (a worker's first batch), ``record-append`` in the middle of one
that writes a batch's results (and the next batch's claims after them, unless the last).

``python tests/killpoint.py meet DIR N crashbt-args...`` kills nothing: the worker holds its
first batch's evaluation until N workers have claimed theirs (one file each in DIR), so a test
of several workers does not depend on which one the machine starts first. ``mark DIR`` before
``POINT N`` leaves a file in DIR just before the kill: a worker that ``meet``s on DIR with N = 2
holds its first evaluation until the other worker has died at its point.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from backtest import cli, pipeline
from backtest.optimize import evaluate, storage
from backtest.optimize.storage import Op

#: A small search that trades in both folds (the kill tests and the PostgreSQL tests share it).
SEARCH_CONFIG = """
[data]
dataset = "btcusdt_1d"
start = 2021-01-01
end = 2026-03-31
[strategy]
name = "reclaim_80k"
[report]
html = false
[optimize]
seed = 3
batch = 2
[optimize.validation]
kind = "walk_forward"
folds = 2
[optimize.params]
level_mode = { fixed = "ath_fraction" }
"""


MARKS: list[Path] = []  # folders where die() leaves a file first (``mark DIR``)


def die() -> None:
    for folder in MARKS:
        (folder / f"died-{os.getpid()}").touch()
    os.kill(os.getpid(), signal.SIGKILL)


MEET_TIMEOUT_S = 300


def meet(folder: Path, count: int) -> None:
    """Hold the first ``evaluate_many`` until ``count`` workers reached theirs (files in
    ``folder``); gives up with an error after MEET_TIMEOUT_S."""
    original = evaluate.Evaluator.evaluate_many
    waited = False

    def held(self: Any, sets: Any) -> Any:
        nonlocal waited
        if not waited:
            waited = True
            (folder / str(os.getpid())).touch()
            deadline = time.monotonic() + MEET_TIMEOUT_S
            while len(list(folder.iterdir())) < count:
                if time.monotonic() > deadline:
                    raise SystemExit(f"meet: expected {count} workers in {folder} within "
                                     f"{MEET_TIMEOUT_S} s, found {len(list(folder.iterdir()))}")
                time.sleep(0.05)  # polling a condition with a deadline, not a stand-in for it
        return original(self, sets)

    evaluate.Evaluator.evaluate_many = held


def plant(point: str, nth: int) -> None:
    passes = 0

    def due() -> bool:
        nonlocal passes
        passes += 1
        return passes == nth

    def around(owner: Any, name: str, before: bool,
               counted: Callable[..., bool] = lambda *_a, **_k: True) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            hit = counted(*args, **kwargs) and due()
            if hit and before:
                die()
            try:
                return original(*args, **kwargs)
            finally:  # (a write that fills the quota raises StudyFull after it)
                if hit:
                    die()

        setattr(owner, name, wrapped)

    claims = (storage._JournalClaims, storage._DatabaseClaims)
    if point == "ask":
        for owner in claims:
            around(owner, "claim_batch", before=False)
    elif point in ("tell", "told"):  # the write with a batch's results: with claims or not
        for owner in claims:
            around(owner, "claim_batch", point == "tell",
                   lambda _self, _study, _size, done=(): bool(done))
            around(owner, "record_batch", point == "tell")
    elif point == "eval":
        around(evaluate.Evaluator, "evaluate_many", before=True)
    elif point == "report":
        around(pipeline, "write", before=True)
    elif point in ("append", "claim-append", "record-append"):
        backend = optuna.storages.journal.JournalFileBackend
        original = backend.append_logs

        def records(logs: list[dict[str, Any]]) -> bool:  # a batch's results are finished states
            return any(log["op_code"] == Op.SET_TRIAL_STATE_VALUES
                       and optuna.trial.TrialState(log["state"]).is_finished() for log in logs)

        def claims_only(logs: list[dict[str, Any]]) -> bool:
            return any(log["op_code"] == Op.CREATE_TRIAL for log in logs) and not records(logs)

        counted = {"append": lambda _logs: True, "claim-append": claims_only,
                   "record-append": records}[point]

        def torn(self: Any, logs: list[dict[str, Any]]) -> None:
            if not (counted(logs) and due()):
                original(self, logs)
                return
            self._lock.acquire()  # the kernel lock dies with this process
            with open(self._file_path, "ab") as handle:
                text = "\n".join(json.dumps(log) for log in logs).encode()
                handle.write(text[: len(text) // 2])
                handle.flush()
            die()

        backend.append_logs = torn
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "meet":
        meet(Path(args[1]), int(args[2]))
        sys.exit(cli.main(args[3:]))
    if args[0] == "mark":
        MARKS.append(Path(args[1]))
        args = args[2:]
    plant(args[0], int(args[1]))
    sys.exit(cli.main(args[2:]))
