"""Where a study lives, and who owns its running trials.

A study lives in an Optuna journal file (default) or a database (``--storage URL``). Both are
wrapped by :class:`_Claims`, which hands out trials in batches (see ``batch``) and is what makes
a killed search always resumable:

- **Ownership is written with the trial.** A batch of trials is created RUNNING with its owner
  (user attr ``worker`` = ``host:pid:start-time``, see ``owners``) in the records that create
  them (one journal append / one database transaction under the claim lock), so no trial is
  ever RUNNING without an owner. A queued (WAITING) trial is given its owner under the claim lock
  before it turns RUNNING, and keeps its stored params.
- **Orphans are failed at once when their owner is provably gone**: the owner ran on this host
  and that process no longer exists (pid and start time), or the trial has no owner at all (it
  was made by another tool, e.g. plain Optuna, outside crashbt's claim protocol). On a database,
  a dead worker of another host is found by Optuna's own heartbeat (``fail_stale_trials``; the
  worker beats for each trial of its batch, ``batch.Heartbeat``) and its parameters are queued
  again by Optuna's ``RetryHeartbeatStaleTrialCallback``.
- **The requested count is claimed, not waited for.** With a quota set, trials are created
  only while COMPLETE + RUNNING trials are fewer than the quota (a batch is cut short to fit);
  the check and the creation run under one claim lock (the journal's kernel lock, or a
  PostgreSQL advisory lock), so concurrent workers never create more trials than requested and
  nothing is pruned to make the count. When the quota is full the claim raises
  :class:`StudyFull` and the worker stops; no worker ever waits for work that only it could do.
- **Nothing completed is lost.** A trial turns COMPLETE only in the write that also holds its
  params and evaluation: one write per batch boundary, which records a batch and claims the
  worker's next one (:meth:`_Claims.claim_batch`; the last batch is recorded alone). On the
  journal it is one append, in which each trial's state record follows its params and
  evaluation and the claims follow all results; a kill that tears it leaves the records before
  the tear: those trials complete, the rest RUNNING with a dead owner (failed at once on
  resume, as is a trial claimed before the tear); the torn last record is cut off
  (:func:`repair_journal`). On a database it is one transaction.

The journal's kernel lock is ``<journal>.crashbt-lock`` (not Optuna's ``<journal>.lock``: a
stock Optuna tool would take crashbt's file for its own stale lock, wait 30 s and delete it).
A database connection gives up after ``CONNECT_TIMEOUT_S`` and a statement after
``STATEMENT_TIMEOUT_S`` (PostgreSQL), so an unanswering server is an error, not a hang.
"""

from __future__ import annotations

import abc
import datetime as dt
import fcntl
import importlib.util
import os
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages.journal._storage import JournalOperation as Op

from backtest.errors import OutputError
from backtest.optimize.owners import OWNER, owner_gone, worker_id
from backtest.redact import mask_secrets

if TYPE_CHECKING:  # imported where a database is opened: a journal search never needs it
    import sqlalchemy

COMPLETE, RUNNING, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                              optuna.trial.TrialState.WAITING)
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


@dataclass(frozen=True)
class TrialRecord:
    """What a finished trial of a batch adds to its stored RUNNING trial, written in one go."""

    trial_id: int
    state: optuna.trial.TrialState
    values: list[float] | None
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]


class _Claims(abc.ABC):
    """Mixin for an Optuna storage: owned batch claims within the quota, orphan recovery, and
    a batch's results in one write (see the module docstring). No quota until
    :meth:`set_quota` (tools reading a study)."""

    quota: tuple[int, int] | None = None  # (study id, COMPLETE + RUNNING trials allowed)
    _sampling: Mapping[int, optuna.trial.FrozenTrial] = {}  # trials being sampled, by id

    def set_quota(self, study: optuna.Study, trials: int) -> None:
        self.quota = (study._study_id, trials)

    @abc.abstractmethod
    def claim_lock(self) -> Any:
        """The context manager that serializes claims: the journal's kernel lock, or a
        PostgreSQL advisory lock (each storage below provides its own)."""

    @abc.abstractmethod
    def _write(self, records: Sequence[TrialRecord], study_id: int = -1,
               waiting: Sequence[int] = (), new: int = 0) -> list[int]:
        """One write (the journal: one append; a database: one transaction): each record's
        params, attributes, state and values, then the ``waiting`` trials and ``new`` new ones
        of ``study_id`` made RUNNING, owned by this process; the ids of those this process
        got."""

    def record_batch(self, records: Sequence[TrialRecord]) -> None:
        """Write a batch's results and claim nothing (a worker's last batch, an interrupt)."""
        self._write(records)

    def claim_batch(self, study_id: int, size: int,
                    done: Sequence[TrialRecord] = ()) -> list[int]:
        """Up to ``size`` RUNNING trials owned by this process, made under the claim lock within
        the quota (which may cut the batch short): queued (WAITING) trials first, keeping their
        stored params, then new ones. Raises StudyFull when the quota leaves none.

        ``done``, the results of this worker's previous batch, go into the same write, before
        the claims: a batch boundary costs one write, and a kill leaves either both or neither
        (a torn journal append: the records before the tear). They are written even when the
        quota leaves nothing to claim (StudyFull is raised after that write)."""
        with self.claim_lock():
            try:
                room = self._room(study_id, size, done)
            except StudyFull:
                self._write(done)
                raise
            waiting = self.get_all_trials(study_id, deepcopy=False,  # type: ignore[attr-defined]
                                          states=(WAITING,))[:room]
            ids = self._write(done, study_id, [t._trial_id for t in waiting],
                              room - len(waiting))
        if not ids:
            raise StudyFull("every queued trial was taken by another worker")
        return ids

    @contextmanager
    def sampling(self, trials: Sequence[optuna.trial.FrozenTrial]) -> Iterator[None]:
        """While a batch is sampled, a sampler's writes to its trials (NSGA-II's generation)
        go to the given FrozenTrials and are written with the batch's results."""
        self._sampling = {t._trial_id: t for t in trials}
        try:
            yield
        finally:
            self._sampling = {}

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        trial = self._sampling.get(trial_id)
        if trial is None:
            super().set_trial_system_attr(trial_id, key, value)  # type: ignore[misc]
        else:
            trial.system_attrs[key] = value

    def _room(self, study_id: int, size: int, done: Sequence[TrialRecord]) -> int:
        """Fail orphans, then how many trials the quota still allows once ``done`` is written
        (a trial it fails or prunes frees its slot; StudyFull if none)."""
        if self.quota is None or study_id != self.quota[0]:
            return size
        allowed = self.quota[1]
        fail_orphans(self, study_id)  # type: ignore[arg-type]
        live = self._live(study_id, {r.trial_id for r in done if r.state != COMPLETE})
        if live >= allowed:
            raise StudyFull(f"{live} complete or running trials of {allowed}")
        return min(size, allowed - live)

    def _live(self, study_id: int, freed: set[int]) -> int:
        """How many trials of the study are COMPLETE or RUNNING, those in ``freed`` left out."""
        return sum(t._trial_id not in freed for t in self.get_all_trials(  # type: ignore[attr-defined]
            study_id, deepcopy=False, states=(COMPLETE, RUNNING)))


def _now() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="microseconds")


class _JournalClaims(_Claims, optuna.storages.journal.JournalStorage):
    """A write is one journal append (one flock + fsync): a batch's results and the next
    batch's claims; the storage then replays its own records like any other writer's."""

    def __init__(self, journal: Path) -> None:
        self._flock = _FlockLock(journal)
        super().__init__(optuna.storages.journal.JournalFileBackend(str(journal),
                                                                    lock_obj=self._flock))

    def claim_lock(self) -> Any:
        return self._flock.held()

    def _append(self, records: Sequence[tuple[Op, dict[str, Any]]]) -> None:
        if not records:
            return  # (an empty append would write an empty line)
        with self._thread_lock:
            me = self._replay_result.worker_id
            self._backend.append_logs([{"op_code": op, "worker_id": me, **fields}
                                       for op, fields in records])
            self._sync_with_backend()

    def _write(self, records: Sequence[TrialRecord], study_id: int = -1,
               waiting: Sequence[int] = (), new: int = 0) -> list[int]:
        owner, now = worker_id(), _now()
        logs = [log for r in records for log in _result_logs(r, now)]
        for trial_id in waiting:
            logs += [(Op.SET_TRIAL_USER_ATTR, {"trial_id": trial_id,
                                               "user_attr": {OWNER: owner}}),
                     (Op.SET_TRIAL_STATE_VALUES, {"trial_id": trial_id, "state": RUNNING,
                                                  "values": None, "datetime_start": now})]
        logs += [(Op.CREATE_TRIAL, {"study_id": study_id, "datetime_start": now,
                                    "user_attrs": {OWNER: owner}})] * new
        self._append(logs)
        replay = self._replay_result
        popped = [i for i in waiting if replay.get_trial(i).state == RUNNING
                  and replay.get_trial(i).user_attrs.get(OWNER) == owner]
        # one write under the lock: the new trials are the last ones this process created
        last = replay._last_created_trial_id_by_this_process if new else 0
        return popped + list(range(last - new + 1, last + 1))


def _result_logs(r: TrialRecord, now: str) -> list[tuple[Op, dict[str, Any]]]:
    """A finished trial's journal records: params, attributes, then its state and values."""
    logs: list[tuple[Op, dict[str, Any]]] = [(Op.SET_TRIAL_PARAM, {
        "trial_id": r.trial_id, "param_name": name,
        "param_value_internal": r.distributions[name].to_internal_repr(value),
        "distribution": distribution_to_json(r.distributions[name])})
        for name, value in r.params.items()]
    logs += [(Op.SET_TRIAL_SYSTEM_ATTR, {"trial_id": r.trial_id, "system_attr": {k: v}})
             for k, v in r.system_attrs.items()]
    logs += [(Op.SET_TRIAL_USER_ATTR, {"trial_id": r.trial_id, "user_attr": {k: v}})
             for k, v in r.user_attrs.items()]
    logs.append((Op.SET_TRIAL_STATE_VALUES, {"trial_id": r.trial_id, "state": r.state,
                                             "values": r.values, "datetime_complete": now}))
    return logs


class _DatabaseClaims(_Claims, optuna.storages.RDBStorage):
    """A write is one database transaction (Optuna's own row writes, committed once): a
    batch's results and the next batch's claims, with a heartbeat for every claimed trial
    (Optuna's ``fail_stale_trials`` ignores a trial without one)."""

    def claim_lock(self) -> Any:
        if self.engine.dialect.name != "postgresql":
            return nullcontext()  # other databases: the quota check is best-effort
        return _advisory_lock(self.engine)

    def _write(self, records: Sequence[TrialRecord], study_id: int = -1,
               waiting: Sequence[int] = (), new: int = 0) -> list[int]:
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        owner, ids = worker_id(), []
        seen: dict[str, BaseDistribution] = {}  # each param's distribution, once checked
        with _create_scoped_session(self.scoped_session) as session:
            for r in records:
                trial = models.TrialModel.find_or_raise_by_id(r.trial_id, session,
                                                              for_update=True)
                if trial.state.is_finished():
                    continue  # failed as stale meanwhile: its parameters are queued again
                self._add_result(session, trial, r, seen)
            for trial_id in waiting:  # owner first: popped only under the claim lock
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
                if trial.state == WAITING:
                    self._set_trial_attr_without_commit(
                        session, models.TrialUserAttributeModel, trial_id, OWNER, owner)
                    trial.state, trial.datetime_start = RUNNING, dt.datetime.now()
                    ids.append(trial_id)
            if new:  # Optuna's lock for numbering new trials
                models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
                ids += [self._get_prepared_new_trial(study_id, _owned(), session).trial_id
                        for _ in range(new)]
            if self.heartbeat_interval:
                for trial_id in ids:
                    beat = models.TrialHeartbeatModel.where_trial_id(trial_id, session, True)
                    if beat is None:
                        session.add(models.TrialHeartbeatModel(trial_id=trial_id))
                    else:  # (a queued trial that once ran)
                        beat.heartbeat = session.execute(sqlalchemy.func.now()).scalar()
        return ids

    def _live(self, study_id: int, freed: set[int]) -> int:
        """Counted by the server (reading every trial of the study per claim would make a
        search quadratic)."""
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        trial = models.TrialModel
        with _create_scoped_session(self.scoped_session) as session:
            return session.query(sqlalchemy.func.count(trial.trial_id)).filter(
                trial.study_id == study_id, trial.state.in_([COMPLETE, RUNNING]),
                trial.trial_id.notin_(freed)).scalar()

    def _add_result(self, session: Any, trial: Any, r: TrialRecord,
                    seen: dict[str, BaseDistribution]) -> None:
        """A record's rows, as Optuna's ``set_trial_param`` / ``set_trial_*_attr`` /
        ``set_trial_state_values`` write them, in ``session``. A param already in ``seen`` is
        checked against that distribution (Optuna would query the study's first one again)."""
        from optuna.storages._rdb import models

        for name, value in r.params.items():
            dist = r.distributions[name]
            self._set_trial_param_without_commit(session, r.trial_id, name,
                                                 dist.to_internal_repr(value), dist,
                                                 seen.get(name))
            seen.setdefault(name, dist)
        for model, attrs in ((models.TrialSystemAttributeModel, r.system_attrs),
                             (models.TrialUserAttributeModel, r.user_attrs)):
            for key, value in attrs.items():
                self._set_trial_attr_without_commit(session, model, r.trial_id, key, value)
        for objective, value in enumerate(r.values or ()):
            self._set_trial_value_without_commit(session, trial, objective, value)
        trial.state, trial.datetime_complete = r.state, dt.datetime.now()


def _owned() -> optuna.trial.FrozenTrial:
    """A new RUNNING trial template that names this process as its owner."""
    return optuna.trial.FrozenTrial(
        number=-1, state=RUNNING, value=None, values=None, datetime_start=dt.datetime.now(),
        datetime_complete=None, params={}, distributions={}, user_attrs={OWNER: worker_id()},
        system_attrs={}, intermediate_values={}, trial_id=-1)


@contextmanager
def _advisory_lock(engine: sqlalchemy.engine.Engine) -> Iterator[None]:
    """PostgreSQL's session advisory lock for crashbt's claims (released if the worker dies)."""
    import sqlalchemy

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
    found, me = 0, worker_id()
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(RUNNING,)):
        owner = trial.user_attrs.get(OWNER)
        if owner != me and owner_gone(owner):  # (this process is alive: no /proc read)
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


def claims(study: optuna.Study) -> _Claims:
    """The crashbt storage of a study opened on :func:`open_storage` (Optuna wraps a database
    in its ``_CachedStorage``)."""
    storage = study._storage
    return storage if isinstance(storage, _Claims) else storage._backend


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
