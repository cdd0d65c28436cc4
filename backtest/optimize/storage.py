"""Where a study lives, and who owns its running trials.

A study lives in an Optuna journal file (default) or a database (``--storage URL``). Both are
wrapped by :class:`_Claims`, which is what makes a killed search always resumable:

- **Ownership is written with the trial.** A trial is created with its owner (user attr
  ``worker`` = ``host:pid:start-time``) in the same record (journal line / database insert), so
  no trial is ever RUNNING without an owner because a worker died between Optuna's ``ask`` and
  its first write. A queued (WAITING) trial is given its owner under the claim lock before it
  turns RUNNING.
- **Orphans are failed at once when their owner is provably gone**: the owner ran on this host
  and that process no longer exists (pid and start time), or the trial has no owner at all (it
  was made by another tool, e.g. plain Optuna, outside crashbt's claim protocol). On a database,
  a dead worker of another host is found by Optuna's own heartbeat (``fail_stale_trials``) and
  its parameters are queued again by Optuna's ``RetryFailedTrialCallback``.
- **The requested count is claimed, not waited for.** With a quota set, a new trial is created
  only while COMPLETE + RUNNING trials are fewer than the quota; the check and the creation run
  under one claim lock (the journal's kernel lock, or a PostgreSQL advisory lock), so concurrent
  workers never create more trials than requested and nothing is pruned to make the count.
  When the quota is full the creation raises :class:`StudyFull` and the worker stops; no worker
  ever waits for work that only it could do.

The journal's kernel lock is ``<journal>.crashbt-lock`` (not Optuna's ``<journal>.lock``: a
stock Optuna tool would take crashbt's file for its own stale lock, wait 30 s and delete it).
A database connection gives up after ``CONNECT_TIMEOUT_S`` and a statement after
``STATEMENT_TIMEOUT_S`` (PostgreSQL), so an unanswering server is an error, not a hang.
"""

from __future__ import annotations

import abc
import copy
import datetime as dt
import fcntl
import importlib.util
import os
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from backtest.errors import OutputError
from backtest.redact import mask_secrets

COMPLETE, RUNNING, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                              optuna.trial.TrialState.WAITING)
OWNER = "worker"  # the user attr naming a trial's owner, host:pid:start-time
HEARTBEAT_S, GRACE_S, MAX_RETRY, OPEN_ATTEMPTS = 5, 20, 3, 4
CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_S = 10, 60
LOCK_SUFFIX = ".crashbt-lock"


class StudyFull(Exception):
    """The study already has its quota of complete and running trials: nothing left to claim."""


def _driver_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here unless psycopg2 is installed."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None:
        return f"postgresql+psycopg{sep}{rest}"
    return url


# ---------------------------------------------------------------- owners


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (clock ticks since boot), None if it is gone.

    With the pid it names one process for good: a recycled pid has another start time. Without
    /proc (not Linux) it is "-" for any live pid: only the pid is compared then.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "-"
    return stat.rpartition(")")[2].split()[19]  # field 22 of proc(5); the name may hold spaces


def worker_id() -> str:
    """``host:pid:start-time`` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_gone(owner: str | None) -> bool:
    """Whether a trial's owner is provably gone: none at all, or a dead process of this host.

    An owner on another host cannot be checked here (a database's heartbeat does that).
    """
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    now = _start_time(int(pid))
    return now is None or (started not in ("", "-") and now != started)


# ---------------------------------------------------------------- claim locks


class _FlockLock(optuna.storages.journal.JournalFileOpenLock):
    """A kernel lock (``flock``) on ``<journal>.crashbt-lock``, re-entrant within a process.

    Optuna's own file locks leave a stale lock file behind a SIGKILLed writer, and the next
    process then waits 30 s before breaking it; a kernel lock dies with its process. Re-entrant
    because a claim holds it around Optuna's own appends, which take it again.
    """

    def __init__(self, journal: Path) -> None:
        self._path = f"{journal}{LOCK_SUFFIX}"
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> bool:
        if self._depth == 0:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class _Claims(abc.ABC):
    """Mixin for an Optuna storage: owned trial creation, orphan recovery and the quota claim
    (see the module docstring). No quota until :meth:`set_quota` (tools reading a study)."""

    quota: tuple[int, int] | None = None  # (study id, COMPLETE + RUNNING trials allowed)

    def set_quota(self, study: optuna.Study, trials: int) -> None:
        self.quota = (study._study_id, trials)

    @abc.abstractmethod
    def claim_lock(self) -> Any:
        """The context manager that serializes claims: the journal's kernel lock, or a
        PostgreSQL advisory lock (each storage below provides its own)."""

    def claimed(self, study_id: int, template: optuna.trial.FrozenTrial | None,
                create: Callable[[int, optuna.trial.FrozenTrial | None], Any]) -> Any:
        """``create`` a RUNNING trial under the claim lock, within the quota, owned by this
        process; a queued (WAITING) or finished copy has nothing to own yet."""
        if template is not None and template.state != RUNNING:
            return create(study_id, template)
        with self.claim_lock():
            self._check_quota(study_id)
            return create(study_id, _owned(template))

    def set_trial_state_values(self, trial_id: int, state: optuna.trial.TrialState,
                               values: Any = None) -> bool:
        if state != RUNNING:
            return super().set_trial_state_values(trial_id, state, values)  # type: ignore[misc]
        with self.claim_lock():  # a queued trial is popped: claim it like a new one
            try:
                self._check_quota(None)
            except StudyFull:
                return False  # to Optuna: someone else took it; its next create raises
            if self.get_trial(trial_id).state != WAITING:  # type: ignore[attr-defined]
                return False
            self.set_trial_user_attr(trial_id, OWNER, worker_id())  # type: ignore[attr-defined]
            return super().set_trial_state_values(trial_id, state, values)  # type: ignore[misc]

    def _check_quota(self, study_id: int | None) -> None:
        """Fail orphans, then raise StudyFull if the quota's study has no trial left to run."""
        if self.quota is None or study_id not in (None, self.quota[0]):
            return
        study_id, allowed = self.quota
        fail_orphans(self, study_id)  # type: ignore[arg-type]
        live = self.get_all_trials(study_id, deepcopy=False,  # type: ignore[attr-defined]
                                   states=(COMPLETE, RUNNING))
        if len(live) >= allowed:
            raise StudyFull(f"{len(live)} complete or running trials of {allowed}")


def _owned(template: optuna.trial.FrozenTrial | None) -> optuna.trial.FrozenTrial:
    """A RUNNING trial template that names this process as its owner."""
    if template is None:
        return optuna.trial.FrozenTrial(
            number=-1, state=RUNNING, value=None, values=None,
            datetime_start=dt.datetime.now(), datetime_complete=None, params={},
            distributions={}, user_attrs={OWNER: worker_id()}, system_attrs={},
            intermediate_values={}, trial_id=-1)
    owned = copy.copy(template)
    owned.user_attrs = {**template.user_attrs, OWNER: worker_id()}
    owned.datetime_start = template.datetime_start or dt.datetime.now()
    return owned


class _JournalClaims(_Claims, optuna.storages.journal.JournalStorage):
    def __init__(self, journal: Path) -> None:
        self._flock = _FlockLock(journal)
        super().__init__(optuna.storages.journal.JournalFileBackend(str(journal),
                                                                    lock_obj=self._flock))

    def claim_lock(self) -> Any:
        return self._flock.held()

    def create_new_trial(self, study_id: int,
                         template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        return self.claimed(study_id, template_trial, super().create_new_trial)


class _DatabaseClaims(_Claims, optuna.storages.RDBStorage):
    def claim_lock(self) -> Any:
        if self.engine.dialect.name != "postgresql":
            return nullcontext()  # other databases: the quota check is best-effort
        return _advisory_lock(self.engine)

    def _create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None
                          = None) -> optuna.trial.FrozenTrial:
        # RDBStorage.create_new_trial and Optuna's cache in front of it both create through here
        return self.claimed(study_id, template_trial, super()._create_new_trial)


@contextmanager
def _advisory_lock(engine: sqlalchemy.engine.Engine) -> Iterator[None]:
    """PostgreSQL's session advisory lock for crashbt's claims (released if the worker dies)."""
    key = zlib.crc32(b"crashbt-claim")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def fail_orphans(storage: optuna.storages.BaseStorage, study_id: int) -> int:
    """Fail the RUNNING trials whose owner is provably gone (see :func:`owner_gone`).

    Call under the claim lock: a worker popping a queued trial names itself its owner there.
    """
    found = 0
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(RUNNING,)):
        if owner_gone(trial.user_attrs.get(OWNER)):
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            found += 1
    return found


# ---------------------------------------------------------------- opening


def repair_journal(journal: Path) -> bool:
    """Drop a torn last record left by a writer killed in the middle of an append.

    Appends hold the journal lock, so under that lock a last line without its newline belongs to a
    dead writer: it was never committed. Optuna's reader cannot get past such a line (every later
    record would be glued to it), so it is cut off. Returns whether anything was cut.
    """
    if not journal.exists():
        return False
    with _FlockLock(journal).held(), open(journal, "r+b") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return False
        handle.truncate(data.rfind(b"\n") + 1)
        handle.flush()
        os.fsync(handle.fileno())
        return True


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Pre-ping pooled connections; on PostgreSQL bound the connect and every statement."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "postgres")):
        kwargs["connect_args"] = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"}
    return kwargs


def open_storage(url: str | None, journal: Path) -> optuna.storages.BaseStorage:
    """The study's storage: a database with heartbeats and retries for ``url``, else the
    journal file; both with crashbt's claims (see the module docstring)."""
    quiet_optuna()
    if url is None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(journal)
        return _JournalClaims(journal)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            db = _DatabaseClaims(
                _driver_url(url), engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY))
        except Exception as exc:  # any driver or connection error becomes one masked line
            text = str(exc).strip()
            # Workers that meet an empty database race to create Optuna's tables: try again.
            racing = "already exists" in text or "duplicate key" in text
            if racing and attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))  # back-off before retrying, not a synchronisation
                continue
            first = text.splitlines()[0] if text else type(exc).__name__
            raise OutputError(f"--storage {mask_secrets(url, url)}: expected a reachable "
                              f"database, found {mask_secrets(first, url)}") from None
        return db
    raise AssertionError("unreachable")


def recover(study: optuna.Study) -> int:
    """Fail the trials of ``study`` whose owners are gone (and, on a database, those whose
    heartbeat stopped: Optuna's ``fail_stale_trials`` queues their parameters again)."""
    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    claim = storage.claim_lock() if isinstance(storage, _Claims) else nullcontext()
    with claim:
        return fail_orphans(storage, study._study_id)


def count_states(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}


def quiet_optuna() -> None:
    """Optuna's info logs and experimental/deprecation notices are not for crashbt's users."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def study_trials(storage_url: str | None, journal: Path, study: str) -> list[dict[str, Any]]:
    """Number, state, values, params and owner of every trial of a stored study (for tools)."""
    quiet_optuna()
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage_url, journal))
    return [{"number": t.number, "state": t.state.name, "values": t.values, "params": t.params,
             "worker": t.user_attrs.get(OWNER), "retry_of": t.system_attrs.get("failed_trial")}
            for t in loaded.get_trials(deepcopy=False)]
