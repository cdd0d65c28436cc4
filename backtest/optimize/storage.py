"""Where a study lives: an Optuna journal file (default; a kernel lock, torn records repaired) or
a database URL (heartbeats, retries); stale-trial recovery."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from backtest.errors import OutputError
from backtest.redact import mask_secrets
from backtest.report import files as report

COMPLETE, RUNNING, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                              optuna.trial.TrialState.WAITING)



HEARTBEAT_S, GRACE_S, MAX_RETRY, OPEN_ATTEMPTS = 5, 20, 3, 4



def _driver_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here unless psycopg2 is installed."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None:
        return f"postgresql+psycopg{sep}{rest}"
    return url



class _FlockLock(optuna.storages.journal.JournalFileOpenLock):
    """A kernel lock (``flock``) on ``<journal>.lock``, released when its process dies.

    Optuna's own file locks leave a stale lock file behind a SIGKILLed writer, and the next
    process then waits 30 s before breaking it; a kernel lock has no such state to leave.
    """

    def __init__(self, journal: Path) -> None:
        self._path = f"{journal}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None



def repair_journal(journal: Path) -> bool:
    """Drop a torn last record left by a writer killed in the middle of an append.

    Appends hold the journal lock, so under that lock a last line without its newline belongs to a
    dead writer: it was never committed. Optuna's reader cannot get past such a line (every later
    record would be glued to it), so it is cut off. Returns whether anything was cut.
    """
    if not journal.exists():
        return False
    lock = _FlockLock(journal)
    lock.acquire()
    try:
        with open(journal, "r+b") as handle:
            data = handle.read()
            if not data or data.endswith(b"\n"):
                return False
            handle.truncate(data.rfind(b"\n") + 1)
            handle.flush()
            os.fsync(handle.fileno())
            return True
    finally:
        lock.release()



def open_storage(url: str | None, journal: Path) -> optuna.storages.BaseStorage:
    """A database storage with heartbeats and retries for ``url``, else the journal file."""
    quiet_optuna()
    if url is None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(journal)
        backend = optuna.storages.journal.JournalFileBackend(str(journal),
                                                             lock_obj=_FlockLock(journal))
        return optuna.storages.journal.JournalStorage(backend)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                _driver_url(url), engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY))
        except Exception as exc:  # any driver or connection error becomes one masked line
            text = str(exc).strip()
            # Workers that meet an empty database race to create Optuna's tables: try again.
            racing = "already exists" in text or "duplicate key" in text
            if racing and attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            first = text.splitlines()[0] if text else type(exc).__name__
            raise OutputError(f"--storage {mask_secrets(url, url)}: expected a reachable "
                              f"database, found {mask_secrets(first, url)}") from None
    raise AssertionError("unreachable")



def recover_stale(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Fail trials left RUNNING by dead local workers and queue their parameters again.

    A database storage does this by heartbeat; the journal file has none, so a trial is stale
    when its worker (``host:pid`` user attr) ran on this host and that process is gone.
    """
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return 0
    host, found = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(RUNNING,)):
        who = trial.user_attrs.get("worker", "")
        whose_host, _, pid = who.rpartition(":")
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        orphan = not who and time.time() - started > 60.0
        if orphan or (whose_host == host and pid.isdigit() and not report.pid_alive(int(pid))):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            found += 1
    return found



def count_states(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}



def quiet_optuna() -> None:
    """Optuna's info logs and experimental/deprecation notices are not for crashbt's users."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")



def study_trials(storage_url: str | None, journal: Path, study: str) -> list[dict[str, Any]]:
    """Number, state, values, params and worker of every trial of a stored study (for tools)."""
    quiet_optuna()
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage_url, journal))
    return [{"number": t.number, "state": t.state.name, "values": t.values, "params": t.params,
             "worker": t.user_attrs.get("worker"), "surplus": bool(t.user_attrs.get("surplus")),
             "retry_of": t.user_attrs.get("retry_of")}
            for t in loaded.get_trials(deepcopy=False)]

