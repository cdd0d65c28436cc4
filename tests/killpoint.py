"""Run ``crashbt`` with a SIGKILL planted at the Nth pass through one point of a search.

``python tests/killpoint.py POINT N crashbt-args...`` (for tests/test_optimize_kill.py and
tests/test_optimize_postgres.py). Points, N counting passes through the point:
``ask`` right after a batch of trials was claimed (RUNNING and owned, nothing else written),
``tell`` before a batch's results are written, ``told`` right after they are, ``eval`` when a
batch's evaluation starts, ``report`` while the best run's report is written; on the journal
``append`` in the middle of any record (half of it written, under the journal lock),
``claim-append`` / ``record-append`` in the middle of a batch's claim / result append.
"""

from __future__ import annotations

import json
import os
import signal
import sys
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


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def plant(point: str, nth: int) -> None:
    passes = 0

    def due() -> bool:
        nonlocal passes
        passes += 1
        return passes == nth

    def around(owner: Any, name: str, before: bool) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            hit = due()
            if hit and before:
                die()
            result = original(*args, **kwargs)
            if hit:
                die()
            return result

        setattr(owner, name, wrapped)

    claims = (storage._JournalClaims, storage._DatabaseClaims)
    if point == "ask":
        for owner in claims:
            around(owner, "claim_batch", before=False)
    elif point in ("tell", "told"):
        for owner in claims:
            around(owner, "record_batch", before=point == "tell")
    elif point == "eval":
        around(evaluate.Evaluator, "evaluate_many", before=True)
    elif point == "report":
        around(pipeline, "write", before=True)
    elif point in ("append", "claim-append", "record-append"):
        backend = optuna.storages.journal.JournalFileBackend
        original = backend.append_logs
        ops = {"append": None, "claim-append": Op.CREATE_TRIAL,
               "record-append": Op.SET_TRIAL_STATE_VALUES}[point]

        def torn(self: Any, logs: list[dict[str, Any]]) -> None:
            if (ops is not None and all(log["op_code"] != ops for log in logs)) or not due():
                original(self, logs)
                return
            self._lock.acquire()  # the kernel lock dies with this process
            with open(self._file_path, "ab") as handle:
                records = "\n".join(json.dumps(log) for log in logs).encode()
                handle.write(records[: len(records) // 2])
                handle.flush()
            die()

        backend.append_logs = torn
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    plant(sys.argv[1], int(sys.argv[2]))
    sys.exit(cli.main(sys.argv[3:]))
