"""Workers: Ctrl-C handling, one worker's batched loop (claim, sample, evaluate, then one write
that records the batch and claims the next: see ``batch``) and ``--jobs N`` children.

The study ends with exactly ``trials`` COMPLETE trials over all resumes and workers: the
storage's claims (see ``storage``) create a trial only while complete + running trials are
fewer than that, so no trial is ever pruned or waited for to make the count."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna

from backtest.config.optimize import OptimizeConfig
from backtest.errors import ConfigError, OutputError, StrategyError, UserError
from backtest.optimize import batch
from backtest.optimize.batch import Heartbeat
from backtest.optimize.evaluate import Evaluator
from backtest.optimize.grid import EnumeratedGridSampler
from backtest.optimize.owners import OWNER, worker_id
from backtest.optimize.request import Request
from backtest.optimize.space import distribution, make_sampler, search_space
from backtest.optimize.storage import (
    RUNNING,
    StudyFull,
    TrialRecord,
    claims,
    quiet_optuna,
    recover,
)
from backtest.redact import mask_secrets


class Interrupts:
    """Ctrl-C during a search. Inside the evaluation of a batch it interrupts at once (the
    worker then marks its RUNNING trials failed). While a batch is claimed, sampled or recorded
    it is deferred to the end of that batch, so no record is left half-written. A second
    Ctrl-C interrupts at once wherever it lands."""

    def __init__(self) -> None:
        self.requested = False
        self.evaluating = False

    def __call__(self, signum: int, frame: object) -> None:
        again, self.requested = self.requested, True
        if self.evaluating or again:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT with this object (main thread only) for the duration of the block."""
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """The block during which a Ctrl-C interrupts at once (pure computation, no I/O)."""
        if self.requested:
            raise KeyboardInterrupt
        self.evaluating = True
        try:
            yield
        finally:
            self.evaluating = False



class _Batches:
    """One worker's loop over batches: claim, sample, evaluate in one call, then one write that
    records the batch and claims the next, tell the sampler (see ``batch``)."""

    def __init__(self, req: Request, study: optuna.Study, storage: Any,
                 evaluator: Evaluator) -> None:
        dims, fixed = search_space(req.spec, req.opt, req.source)
        self.req, self.study, self.storage, self.evaluator = req, study, storage, evaluator
        self.dims = dims
        self.distributions = {name: distribution(dim) for name, dim in dims.items()}
        self.base = {**req.cfg.strategy.params, **fixed}
        self.invalid = 0

    def run(self, interrupts: Interrupts, heartbeat: Heartbeat,
            on_done: Callable[[optuna.Study], None]) -> None:
        """Batches until the quota is claimed (``StudyFull``), the sampler stops the study
        (the grid's end: ``study.stop()`` works here as inside ``study.optimize``), a Ctrl-C
        or the timeout. Each is checked where the next batch would be claimed: before the first
        claim, and before the write that records a batch (which then claims nothing more). A
        stop asked by the sampler's ``after_trial`` thus lets the batch claimed with the
        results run (the grid stops only when its quota is full: nothing is claimed then)."""
        study, timeout = self.study, self.req.opt.timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout

        def more() -> bool:
            return not (study._stop_flag or interrupts.requested
                        or (deadline is not None and time.monotonic() >= deadline))

        study._stop_flag = False
        study._thread_local.in_optimize_loop = True
        try:
            ids = self.write((), more())
            while ids:
                heartbeat.trials = tuple(ids)
                trials, records, error = self.one(ids, interrupts)
                ids = self.write(records, error is None and more())
                heartbeat.trials = tuple(ids)
                for trial, rec in zip(trials, records, strict=True):  # as study.tell would
                    self.study.sampler.after_trial(self.study, trial, rec.state, rec.values)
                if error is not None:
                    raise error
                on_done(study)
        finally:
            study._thread_local.in_optimize_loop = False

    def write(self, records: Sequence[TrialRecord], claim: bool) -> list[int]:
        """One write: ``records`` (the last batch's results) and, if ``claim``, the next
        batch's claims (its trial ids; none when the quota is full)."""
        if not claim:
            if records:
                self.storage.record_batch(records)
            return []
        try:
            return self.storage.claim_batch(self.study._study_id, self.req.opt.resolved_batch,
                                            records)
        except StudyFull:
            return []

    def one(self, ids: list[int], interrupts: Interrupts
            ) -> tuple[list[optuna.trial.FrozenTrial], list[TrialRecord], ConfigError | None]:
        """Sample and evaluate a claimed batch: its trials, their records (not yet written)
        and the error that ends the search once they are written (too many invalid sets)."""
        trials = batch.claimed_trials(self.study, ids)
        claimed = [batch.Stored(dict(t.params), dict(t.system_attrs)) for t in trials]
        batch.sample(self.study, self.storage, trials, self.distributions)
        sets = [{**self.base, **{n: t.params[n] for n in self.distributions}} for t in trials]
        with interrupts.evaluation():
            results = self.evaluator.evaluate_many(sets)
        records = batch.record(trials, results, sets, self.req.opt, claimed)
        invalid = [r for r in results if isinstance(r, StrategyError)]
        self.invalid += len(invalid)
        error = None
        if invalid and self.invalid > max(50, 5 * self.req.opt.trials):
            error = ConfigError(f"{self.req.source}: optimize.params: expected a space with "
                                f"valid parameter sets, found {self.invalid} invalid ones "
                                f"(last: {invalid[-1]})")
        return trials, records, error



def work(req: Request, index: int, on_done: Callable[[optuna.Study], None] | None = None,
         evaluator: Evaluator | None = None, study: optuna.Study | None = None) -> None:
    """One worker: open the shared study (or use ``study``, opened by ``search.prepare`` in
    this process: its storage has replayed the journal once, and the report then reads the
    trials without replaying them again) and run batches of trials until the count, the grid's
    end or the timeout.

    The storage's quota (see :func:`quota`) hands out trials: a worker stops when every
    remaining trial is complete or running elsewhere (``StudyFull``). The sampler's seed is
    ``seed + 7919 * worker + trials already stored``: a fresh single worker is reproducible,
    and neither a resume nor a second worker replays the same draws.
    """
    quiet_optuna()
    evaluator = evaluator or Evaluator(req.cfg, req.opt, req.spec, req.source)
    if study is None:
        study = optuna.load_study(study_name=req.study, storage=req.open())
    storage = claims(study)
    recover(study)
    existing = len(study.get_trials(deepcopy=False))
    batches = _Batches(req, study, storage, evaluator)
    study.sampler = make_sampler(req.opt, batches.dims, req.opt.seed + 7919 * index + existing,
                                 req.source)
    storage.set_quota(study, quota(req.opt, study.sampler))
    interrupts = Interrupts()
    try:
        with (interrupts.installed(), evaluator.timed("search"),
              Heartbeat(storage).running() as heartbeat):
            batches.run(interrupts, heartbeat, on_done or (lambda _s: None))
    except KeyboardInterrupt:
        _fail_own_running(study, storage)
        raise
    if interrupts.requested:
        raise KeyboardInterrupt



def quota(opt: OptimizeConfig, sampler: optuna.samplers.BaseSampler) -> int:
    """COMPLETE + RUNNING trials the study may hold: ``trials``, and on a grid at most one per
    point (a batch then never runs a point twice; a failed point frees its slot for a re-run)."""
    if isinstance(sampler, EnumeratedGridSampler):
        return min(opt.trials, sampler.size)
    return opt.trials



def _fail_own_running(study: optuna.Study, storage: Any) -> None:
    """After Ctrl-C: the trials of this process still RUNNING (its batch, interrupted in its
    evaluation or claim) are marked failed, in one write."""
    me = worker_id()
    storage.record_batch([
        TrialRecord(t._trial_id, optuna.trial.TrialState.FAIL, None, {}, {}, {}, {})
        for t in study.get_trials(deepcopy=False, states=(RUNNING,))
        if t.user_attrs.get(OWNER) == me])



def _child(req: Request, index: int) -> None:
    try:
        work(req, index)
    except KeyboardInterrupt:
        sys.exit(130)
    except UserError as exc:
        print(f"crashbt: error: worker {index}: {mask_secrets(str(exc), req.storage_url)}",
              file=sys.stderr)
        sys.exit(2)



def run_children(req: Request, study: optuna.Study,
                  on_done: Callable[[optuna.Study], None]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(req, i), name=f"crashbt-worker-{i}")
             for i in range(req.jobs)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            on_done(study)
            for p in procs:
                p.join(timeout=0.5 / len(procs))
    except KeyboardInterrupt:
        for p in procs:  # they got SIGINT too: each fails its running trial and exits
            p.join(timeout=30)
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        if 130 in failed:
            raise KeyboardInterrupt
        raise OutputError(f"{req.source}: optimize: expected every worker to finish, found "
                          f"exit codes {failed} (see the worker errors above)")

