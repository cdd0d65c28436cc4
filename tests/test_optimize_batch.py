"""The batched search loop (backtest/optimize/batch.py, workers.work): what a batch writes and
costs on the journal, that its records read like Optuna's own, and that queued trials, the grid
and the timeout behave as with ``study.optimize``."""

from __future__ import annotations

import dataclasses
import fcntl
import os
from pathlib import Path

import optuna
import pytest

from backtest.optimize import search, storage, summary, workers
from backtest.optimize.batch import CONSTRAINT_PREFIX
from backtest.optimize.request import Request
from tests.test_optimize import NOISE, request

COMPLETE, RUNNING, WAITING = (optuna.trial.TrialState.COMPLETE,
                              optuna.trial.TrialState.RUNNING,
                              optuna.trial.TrialState.WAITING)


class Writes:
    """Counts the journal's appends, its exclusive kernel locks and fsyncs (the real calls run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.appends = self.locks = self.fsyncs = 0
        backend = optuna.storages.journal.JournalFileBackend
        append, flock, fsync = backend.append_logs, fcntl.flock, os.fsync

        def counted_append(this: object, logs: list) -> None:
            self.appends += 1
            append(this, logs)

        def counted_flock(fd: int, operation: int) -> None:
            self.locks += operation == fcntl.LOCK_EX
            flock(fd, operation)

        def counted_fsync(fd: int) -> None:
            self.fsyncs += 1
            fsync(fd)

        monkeypatch.setattr(backend, "append_logs", counted_append)
        monkeypatch.setattr(fcntl, "flock", counted_flock)
        monkeypatch.setattr(os, "fsync", counted_fsync)


def results(ids: list[int], state: optuna.trial.TrialState = COMPLETE
            ) -> list[storage.TrialRecord]:
    """Records of finished trials ``ids``: x = n / 10, value n, a constraint attr."""
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    return [storage.TrialRecord(i, state, [float(n)] if state == COMPLETE else None,
                                {"x": n / 10}, {"x": x}, {"eval": {"n": n}},
                                {f"{CONSTRAINT_PREFIX}c": float(n - 2)})
            for n, i in enumerate(ids)]


def test_a_batch_boundary_costs_one_append_that_records_and_claims(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = tmp_path / "s.journal"
    opened = storage.open_storage(None, journal)
    study = optuna.create_study(study_name="s", storage=opened)
    opened.set_quota(study, 100)
    lines = journal.read_bytes().count(b"\n")
    writes = Writes(monkeypatch)
    ids = opened.claim_batch(study._study_id, 5)
    assert len(ids) == 5
    assert (writes.appends, writes.locks, writes.fsyncs) == (1, 1, 1)
    assert journal.read_bytes().count(b"\n") == lines + 5  # one record per new trial
    following = opened.claim_batch(study._study_id, 3, results(ids))
    assert (writes.appends, writes.locks, writes.fsyncs) == (2, 2, 2)  # results + claims
    assert following == list(range(5, 8))
    assert [(t.state, t.params) for t in study.get_trials()[5:]] == [(RUNNING, {})] * 3
    opened.record_batch(results(following))  # the last batch: its results only
    assert (writes.appends, writes.locks, writes.fsyncs) == (3, 3, 3)
    # a fresh reader replays the appends: every trial whole, owned by this process
    trials = optuna.load_study(study_name="s", storage=storage.open_storage(
        None, journal)).get_trials()
    assert [(t.state, t.values, t.params, t.user_attrs["eval"]) for t in trials] == [
        (COMPLETE, [float(n % 5)], {"x": n % 5 / 10}, {"n": n % 5}) for n in range(8)]
    assert {t.user_attrs[storage.OWNER] for t in trials} == {storage.worker_id()}
    assert [summary.is_feasible(t) for t in trials] == [True] * 8  # no "eval" constraints


def test_the_quota_counts_the_results_written_with_a_claim(tmp_path: Path) -> None:
    """A claim written with the previous batch's results sees them as written: a pruned or
    failed trial frees its slot, and a full quota still writes the results (then StudyFull)."""
    opened = storage.open_storage(None, tmp_path / "s.journal")
    study = optuna.create_study(study_name="s", storage=opened)
    opened.set_quota(study, 6)
    first = opened.claim_batch(study._study_id, 4)
    done = results(first[:2]) + results(first[2:], optuna.trial.TrialState.PRUNED)
    second = opened.claim_batch(study._study_id, 8, done)
    assert len(second) == 4  # 6 allowed - 2 complete
    with pytest.raises(storage.StudyFull):
        opened.claim_batch(study._study_id, 8, results(second))
    assert storage.count_states(study)["COMPLETE"] == 6
    assert storage.count_states(study)["RUNNING"] == 0


def test_a_worker_writes_one_append_per_batch_and_the_quota_cuts_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    req = request(tmp_path, NOISE, 'sampler = "random"\nbatch = 4', 10)
    study = search.prepare(req)
    writes = Writes(monkeypatch)
    workers.work(req, 0)
    # batches of 4, 4 and 2 (the quota): the first claim, two boundaries, the last results
    assert writes.appends == writes.fsyncs == 4
    trials = study.get_trials()
    assert [t.state for t in trials] == [COMPLETE] * 10
    assert len({tuple(t.params.values()) for t in trials}) == 10


def test_constraints_are_stored_as_optunas_set_constraint_stores_them(tmp_path: Path) -> None:
    """TPE's and NSGA-II's constraint handling read what Trial.set_constraint writes: a batch
    record must write the same system attributes (compared with a real Optuna trial)."""
    req = request(tmp_path, NOISE, 'sampler = "nsga2"\nbatch = 3', 6)
    search.prepare(req)
    workers.work(req, 0)
    study = optuna.load_study(study_name=req.study, storage=req.open())
    for trial in study.get_trials():
        ev = trial.user_attrs["eval"]
        reference = optuna.create_study().ask()
        for name, value in zip(["n_trades >= 0", "objectives defined"],
                               [*ev["constraints"], 1.0 if ev["undefined"] else 0.0],
                               strict=True):
            reference.set_constraint(name, value)
        expected = reference.study._storage.get_trial(reference._trial_id).system_attrs
        ours = {k: v for k, v in trial.system_attrs.items() if k.startswith(CONSTRAINT_PREFIX)}
        assert ours == expected
        assert summary.is_feasible(trial) == all(v <= 0 for v in expected.values())
        assert "NSGAIISampler:generation" in trial.system_attrs  # written with the batch


def test_queued_trials_are_claimed_first_with_their_parameters(tmp_path: Path) -> None:
    check_queued_trials(request(tmp_path, NOISE, "batch = 3", 3))


def check_queued_trials(req: Request) -> None:
    """An enqueued trial (fixed_params) and a re-queued one (stored params, as Optuna's
    RetryFailedTrialCallback adds it) are run by the next batch with exactly those values
    (``req``: 3 trials in batches of 3; tests/test_optimize_postgres.py runs it on a server)."""
    study = search.prepare(req)
    workers.work(req, 0)
    study.enqueue_trial({"seed": 77, "p": 0.25})
    dists = study.get_trials()[0].distributions
    study.add_trial(optuna.trial.create_trial(
        state=WAITING, params={"seed": 5, "p": 0.125}, distributions=dists,
        system_attrs={"failed_trial": 0}))
    workers.work(dataclasses.replace(req, opt=req.opt.model_copy(update={"trials": 6})), 0)
    trials = study.get_trials()
    assert [t.state for t in trials] == [COMPLETE] * 6
    assert trials[3].params == {"seed": 77, "p": 0.25}
    assert trials[4].params == {"seed": 5, "p": 0.125}
    assert trials[4].user_attrs["eval"]["params_all"] == {"seed": 5, "p": 0.125}
    assert {t.user_attrs[storage.OWNER] for t in trials[3:]} == {storage.worker_id()}


GRID = "seed = { choices = [1, 2, 3] }\np = { choices = [0.05, 0.1] }\n"


def test_a_grid_in_batches_runs_every_point_once_and_stops(tmp_path: Path) -> None:
    req = request(tmp_path, NOISE, 'sampler = "grid"\nbatch = 4', 4, "[optimize.params]\n" + GRID)
    study = search.prepare(req)
    workers.work(req, 0)
    assert len(study.get_trials()) == 4
    workers.work(request(tmp_path, NOISE, 'sampler = "grid"\nbatch = 4', 50,
                         "[optimize.params]\n" + GRID), 0)
    trials = study.get_trials()
    assert [t.state for t in trials] == [COMPLETE] * 6  # the grid, not the 50 asked for
    assert len({(t.params["seed"], t.params["p"]) for t in trials}) == 6


def test_a_timeout_ends_the_search_between_batches(tmp_path: Path) -> None:
    req = request(tmp_path, NOISE, "batch = 2\ntimeout_s = 1e-9", 50)
    study = search.prepare(req)
    workers.work(req, 0)
    states = [t.state for t in study.get_trials()]
    assert len(states) <= 2 and set(states) <= {COMPLETE}  # at most the batch begun


def test_a_fresh_seeded_worker_repeats_its_draws(tmp_path: Path) -> None:
    drawn = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        req = request(tmp_path / name, NOISE, "batch = 4", 12)
        study = search.prepare(req)
        workers.work(req, 0)
        drawn.append([(t.params, t.values) for t in study.get_trials()])
    assert drawn[0] == drawn[1]


def test_batch_is_range_checked(tmp_path: Path) -> None:
    from backtest.config.optimize import OptimizeConfig

    assert OptimizeConfig(sampler="tpe").resolved_batch == 8
    assert OptimizeConfig(sampler="grid").resolved_batch == 64
    assert OptimizeConfig(batch=3).resolved_batch == 3
    with pytest.raises(ValueError, match="batch"):
        OptimizeConfig(batch=0)
    # how a search is batched is not part of what it is: a study resumes with another batch
    assert OptimizeConfig(batch=3).search_hash() == OptimizeConfig().search_hash()


def stored(study: optuna.Study) -> list[tuple]:
    """What a search stores per trial: number, state, params, values, its evaluation and its
    constraint attrs."""
    return [(t.number, t.state, t.params, t.values, t.user_attrs.get("eval"),
             {k: v for k, v in t.system_attrs.items() if k.startswith(CONSTRAINT_PREFIX)})
            for t in study.get_trials()]


@pytest.mark.parametrize(("sampler", "trials", "compared"), [("grid", 6, 6), ("tpe", 12, 10)])
def test_the_batch_size_changes_no_stored_result(tmp_path: Path, sampler: str, trials: int,
                                                 compared: int) -> None:
    """One trial per batch (what ``study.optimize`` did) and larger batches store the same
    trials, evaluations included: the grid's every point, and TPE's seeded random start-up
    trials (10, before TPE's model sees the batch's history)."""
    got = []
    for batch in (1, 4, 6):
        (tmp_path / str(batch)).mkdir()
        req = request(tmp_path / str(batch), NOISE, f'sampler = "{sampler}"\nbatch = {batch}',
                      trials, "[optimize.params]\n" + GRID if sampler == "grid" else "")
        study = search.prepare(req)
        workers.work(req, 0)
        got.append(stored(study)[:compared])
    assert len(got[0]) == compared and all(t[4] is not None for t in got[0])
    assert got[0] == got[1] == got[2]


def test_a_search_in_one_process_replays_each_journal_record_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``crashbt optimize`` (one worker) reads its journal through one storage: the worker
    searches on the study ``prepare`` opened, and the report reads that study's trials, so no
    record is decoded and applied twice."""
    from optuna.storages.journal._storage import JournalStorageReplayResult

    applied = []
    apply = JournalStorageReplayResult.apply_logs

    def counted(this: JournalStorageReplayResult, logs: object) -> None:
        logs = list(logs)
        applied.extend(logs)
        apply(this, logs)

    monkeypatch.setattr(JournalStorageReplayResult, "apply_logs", counted)
    req = request(tmp_path, NOISE, 'sampler = "random"\nbatch = 4', 12)
    outcome = search.run(req)
    assert outcome.doc["counts"] == {"COMPLETE": 12}
    assert len(applied) == req.journal.read_bytes().count(b"\n")
