"""Workers: the Optuna objective, Ctrl-C handling, one worker's loop and ``--jobs N`` children.

The study ends with exactly ``trials`` COMPLETE trials over all resumes and workers: the
storage's claims (see ``storage``) create a trial only while complete + running trials are
fewer than that, so no trial is ever pruned or waited for to make the count."""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna

from backtest.config.optimize import OptimizeConfig
from backtest.config.run import RunConfig
from backtest.errors import ConfigError, OutputError, StrategyError, UserError
from backtest.optimize.evaluate import Evaluator
from backtest.optimize.space import make_sampler, search_space, suggest
from backtest.optimize.storage import (
    COMPLETE,
    OWNER,
    RUNNING,
    StudyFull,
    open_storage,
    quiet_optuna,
    recover,
    worker_id,
)
from backtest.redact import mask_secrets
from backtest.report import files as report
from backtest.strategy.contract import StrategySpec


@dataclass(frozen=True)
class Request:
    """Everything a worker process needs (picklable)."""

    cfg: RunConfig
    opt: OptimizeConfig
    spec: StrategySpec
    source: str
    study: str
    out_dir: Path
    storage_url: str | None = None
    jobs: int = 1

    @property
    def study_dir(self) -> Path:
        return report.confined(self.out_dir, self.study)

    @property
    def journal(self) -> Path:
        return self.study_dir / "study.journal"

    @property
    def storage_label(self) -> str:
        url = self.storage_url
        return mask_secrets(url, url) if url else str(self.journal)

    def open(self) -> optuna.storages.BaseStorage:
        return open_storage(self.storage_url, self.journal)

    def config_hash(self) -> str:
        blob = self.cfg.canonical_json() + self.opt.search_hash() + self.spec.name
        return hashlib.sha256(blob.encode()).hexdigest()[:16]



class Interrupts:
    """Ctrl-C during a search. Inside a strategy's evaluation it interrupts at once (optuna
    marks the trial failed and re-raises). While optuna asks, tells or writes the storage it is
    deferred to the end of that step: a KeyboardInterrupt inside ``study.tell`` escapes optuna
    5.0 as an UnboundLocalError and can leave a trial RUNNING or a record half-written. A
    second Ctrl-C interrupts at once wherever it lands."""

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



class Objective:
    """Suggest, evaluate, record one trial (the trial already names its owner, see storage)."""

    def __init__(self, req: Request, evaluator: Evaluator,
                 on_done: Callable[[optuna.Study], None], interrupts: Interrupts) -> None:
        dims, fixed = search_space(req.spec, req.opt, req.source)
        self.req, self.evaluator, self.on_done, self.dims = req, evaluator, on_done, dims
        self.interrupts = interrupts
        self.base = {**req.cfg.strategy.params, **fixed}
        self.invalid = 0

    def __call__(self, trial: optuna.trial.Trial) -> list[float]:
        values = {**self.base, **{n: suggest(trial, n, d) for n, d in self.dims.items()}}
        try:
            with self.interrupts.evaluation():
                ev = self.evaluator.evaluate(values)
        except StrategyError as exc:
            self.invalid += 1
            if self.invalid > max(50, 5 * self.req.opt.trials):
                raise ConfigError(f"{self.req.source}: optimize.params: expected a space with "
                                  f"valid parameter sets, found {self.invalid} invalid ones "
                                  f"(last: {exc})") from None
            trial.set_user_attr("invalid", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        keys = ("folds", "is_mean", "oos_mean", "constraints", "undefined", "full_stats",
                "blocks")
        trial.set_user_attr("eval", {**{k: ev[k] for k in keys}, "params_all": values})
        for spec, violation in zip(self.req.opt.constraints, ev["constraints"], strict=True):
            trial.set_constraint(f"{spec.metric} {spec.op} {spec.value:g}", violation)
        trial.set_constraint("objectives defined", 1.0 if ev["undefined"] else 0.0)
        return ev["objectives"]

    def callback(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        """After each trial: report progress; a deferred Ctrl-C stops the loop."""
        self.on_done(study)
        if self.interrupts.requested:  # work() raises it after optimize returns
            study.stop()



def work(req: Request, index: int, on_done: Callable[[optuna.Study], None] | None = None,
         evaluator: Evaluator | None = None) -> None:
    """One worker: open the shared study and run trials until the count or the timeout.

    The storage's quota (``trials``) hands out trials: a worker stops when every remaining
    trial is complete or running elsewhere (``StudyFull``); Optuna's ``MaxTrialsCallback`` stops
    it as soon as the count is complete. The sampler's seed is ``seed + 7919 * worker + trials
    already stored``: a fresh single worker is reproducible, and neither a resume nor a second
    worker replays the same draws.
    """
    quiet_optuna()
    evaluator = evaluator or Evaluator(req.cfg, req.opt, req.spec, req.source)
    storage = req.open()
    study = optuna.load_study(study_name=req.study, storage=storage)
    storage.set_quota(study, req.opt.trials)
    recover(study)
    existing = len(study.get_trials(deepcopy=False))
    interrupts = Interrupts()
    objective = Objective(req, evaluator, on_done or (lambda _s: None), interrupts)
    study.sampler = make_sampler(req.opt, objective.dims,
                                 req.opt.seed + 7919 * index + existing, req.source)
    enough = optuna.study.MaxTrialsCallback(req.opt.trials, states=(COMPLETE,))
    try:
        with interrupts.installed(), evaluator.timed("search"):
            study.optimize(objective, timeout=req.opt.timeout_s,
                           callbacks=[enough, objective.callback])
    except StudyFull:
        pass
    except KeyboardInterrupt:
        _fail_own_running(study)
        raise
    if interrupts.requested:
        raise KeyboardInterrupt



def _fail_own_running(study: optuna.Study) -> None:
    """After Ctrl-C: a trial of this process interrupted outside the objective (while being
    asked or told) would stay RUNNING; mark it failed."""
    me = worker_id()
    for trial in study.get_trials(deepcopy=False, states=(RUNNING,)):
        if trial.user_attrs.get(OWNER) == me:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)



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

