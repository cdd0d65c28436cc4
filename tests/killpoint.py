"""Run ``crashbt`` with a SIGKILL planted at the Nth pass through one point of a search.

``python tests/killpoint.py POINT N crashbt-args...`` (for tests/test_optimize_kill.py). Points:
``ask`` right after Optuna created a trial (before crashbt writes anything of it), ``tell``
inside ``study.tell`` before the trial's state is written, ``told`` inside it after the write,
``append`` in the middle of a journal record (half of it written, under the journal lock),
``eval`` inside a strategy evaluation, ``report`` while the best run's report is written.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import optuna

from backtest import cli, pipeline
from backtest.optimize import evaluate

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
[optimize.validation]
kind = "walk_forward"
folds = 2
[optimize.params]
level_mode = { fixed = "ath_fraction" }
"""


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def plant(point: str, nth: int) -> None:
    passes = 0

    def due() -> bool:
        nonlocal passes
        passes += 1
        return passes == nth

    def around(owner: Any, name: str, before: bool, when: Callable[..., bool] | None = None) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            hit = (when is None or when(*args, **kwargs)) and due()
            if hit and before:
                die()
            result = original(*args, **kwargs)
            if hit:
                die()
            return result

        setattr(owner, name, wrapped)

    def finishing(*args: Any, **kwargs: Any) -> bool:
        state = kwargs["state"] if "state" in kwargs else args[2]
        return bool(state.is_finished())

    if point == "ask":
        around(optuna.Study, "ask", before=False)
    elif point in ("tell", "told"):
        for storage in (optuna.storages.journal.JournalStorage, optuna.storages.RDBStorage):
            around(storage, "set_trial_state_values", before=point == "tell", when=finishing)
    elif point == "eval":
        around(evaluate.Evaluator, "_summarize", before=True)
    elif point == "report":
        around(pipeline, "write", before=True)
    elif point == "append":
        backend = optuna.storages.journal.JournalFileBackend
        original = backend.append_logs

        def torn(self: Any, logs: list[dict[str, Any]]) -> None:
            if not due():
                original(self, logs)
                return
            self._lock.acquire()  # the kernel lock dies with this process
            with open(self._file_path, "ab") as handle:
                record = json.dumps(logs[0]).encode()
                handle.write(record[: len(record) // 2])
                handle.flush()
            die()

        backend.append_logs = torn
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    plant(sys.argv[1], int(sys.argv[2]))
    sys.exit(cli.main(sys.argv[3:]))
