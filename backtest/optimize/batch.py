"""A batch of trials: sampled by the study's sampler, recorded in one write, kept alive by a
heartbeat (the pieces of the worker loop in ``workers``).

Why batches: ``study.optimize`` made about ten storage writes per trial (create, each suggest,
the evaluation, each constraint, the state), each one a locked, fsync'd journal append. A
worker now claims up to ``[optimize] batch`` trials (``storage.claim_batch``), samples them
here, evaluates them with one ``Evaluator.evaluate_many`` call and records them in the write
that claims its next batch (``claim_batch`` with the results; the last batch:
``storage.record_batch``): one write per batch.

Sampling goes through Optuna's public sampler API on the claimed FrozenTrials, in the order
``optuna.Trial._suggest`` uses: ``before_trial``; for each dimension a stored param first (a
queued retry keeps its parameters), then an enqueued ``fixed_params`` value, a single-valued
distribution's value, the sampler's ``sample_relative`` result (asked lazily, once) and
``sample_independent`` (a sampler that samples a whole batch, ``tpe.BatchTPESampler``, is
asked once per batch for the relative samples, after every trial's ``before_trial``).
Nothing is written while sampling: a sampler's own writes to the trial (NSGA-II's generation,
TPE's relative params) are held by the storage (``storage.sampling``) and written with the
results. The trials of one batch are sampled from the same completed history, as trials of
parallel workers are; TPE and NSGA-II keep their sample efficiency with small batches.

A trial's result is stored exactly as ``Trial.set_user_attr`` / ``Trial.set_constraint`` /
``study.tell`` store it (user attr ``eval``, system attrs ``constraints:<name>``), so TPE's and
NSGA-II's constraint handling and ``summary.is_feasible`` read it unchanged; an invalid set is
PRUNED with its ``invalid`` user attr, a NaN objective FAIL, as ``study.optimize`` did.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    check_distribution_compatibility,
)
from optuna.trial import FrozenTrial, TrialState

from backtest.config.optimize import OptimizeConfig
from backtest.errors import StrategyError
from backtest.optimize.storage import RUNNING, TrialRecord

#: Optuna 5's system attr prefix of ``Trial.set_constraint`` (read by its constrained samplers)
CONSTRAINT_PREFIX = "constraints:"
#: ``study.enqueue_trial``'s system attr of parameters fixed for a queued trial
FIXED_PARAMS = "fixed_params"
EVAL_KEYS = ("folds", "is_mean", "oos_mean", "constraints", "undefined", "full_stats", "blocks")


def claimed_trials(study: optuna.Study, ids: Sequence[int]) -> list[FrozenTrial]:
    """Private copies of the claimed RUNNING trials, in claim order (sampling fills them in)."""
    running = {t._trial_id: t for t in study._storage.get_all_trials(
        study._study_id, deepcopy=False, states=(RUNNING,))}
    return [_own(running[i]) for i in ids if i in running]


def _own(trial: FrozenTrial) -> FrozenTrial:
    """A copy with its own dicts: sampling and ``record`` add and replace their entries, never
    mutate a stored value, so a deep copy (~0.1 ms a trial) is not needed."""
    own = copy.copy(trial)
    own.params, own.distributions = dict(trial.params), dict(trial.distributions)
    own.user_attrs, own.system_attrs = dict(trial.user_attrs), dict(trial.system_attrs)
    own.intermediate_values = dict(trial.intermediate_values)
    return own


def sample(study: optuna.Study, storage: Any, trials: Sequence[FrozenTrial],
           distributions: Mapping[str, BaseDistribution]) -> None:
    """Fill each trial's params and distributions with the study's sampler (see the module
    docstring); the sampler sees the completed trials as of this batch. ``storage``: the
    study's crashbt storage (``storage.open_storage``), which holds the sampler's writes.

    A sampler with ``sample_relative_batch`` (``tpe.BatchTPESampler``) gets ``before_trial``
    for every trial, then one call for the relative samples of the trials that need one, then
    each trial's remaining parameters as above."""
    sampler = study.sampler
    study._thread_local.cached_all_trials = None  # what study.ask does once per trial
    with storage.sampling(trials):
        if not hasattr(sampler, "sample_relative_batch"):
            for trial in trials:
                sampler.before_trial(study, trial)
                _fill(study, trial, distributions)
            return
        for trial in trials:
            sampler.before_trial(study, trial)
        asking = [t for t in trials if any(_free(t, name, dist)
                                           for name, dist in distributions.items())]
        relative = {}
        if asking:
            space = sampler.infer_relative_search_space(study, asking[0])
            relative = {t.number: (space, values) for t, values in zip(
                asking, sampler.sample_relative_batch(study, asking, space), strict=True)}
        for trial in trials:
            _fill(study, trial, distributions, relative.get(trial.number))


def _free(trial: FrozenTrial, name: str, dist: BaseDistribution) -> bool:
    """Whether the sampler picks ``name``'s value (not stored, enqueued or single-valued)."""
    return not (name in trial.distributions
                or name in trial.system_attrs.get(FIXED_PARAMS, {}) or dist.single())


def _fill(study: optuna.Study, trial: FrozenTrial, distributions: Mapping[str, BaseDistribution],
          relative: tuple[dict[str, BaseDistribution], dict[str, Any]] | None = None) -> None:
    """One trial's parameters after ``before_trial``; ``relative``: the sampler's relative
    space and sample for it, else asked here (once, when a parameter first needs it)."""
    sampler = study.sampler
    fixed = trial.system_attrs.get(FIXED_PARAMS, {})
    for name, dist in distributions.items():
        if name in trial.distributions:  # stored with the queued trial: honored
            check_distribution_compatibility(trial.distributions[name], dist)
            continue
        if name in fixed:
            value = fixed[name]
        elif dist.single():
            value = _single_value(dist)
        else:
            if relative is None:
                space = sampler.infer_relative_search_space(study, trial)
                relative = (space, sampler.sample_relative(study, trial, space))
            space, values = relative
            if name in values and name in space:
                check_distribution_compatibility(space[name], dist)
                value = values[name]
            else:
                value = sampler.sample_independent(study, trial, name, dist)
        trial.params[name] = dist.to_external_repr(dist.to_internal_repr(value))
        trial.distributions[name] = dist


def _single_value(dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    return dist.low  # type: ignore[attr-defined]


class Stored(NamedTuple):
    """What a claimed trial held before sampling (``record`` writes only what was added):
    copies of its params and system attrs (sampling replaces values, never mutates them)."""

    params: dict[str, Any]
    system_attrs: dict[str, Any]


def record(trials: Sequence[FrozenTrial], results: Sequence[dict[str, Any] | StrategyError],
           values: Sequence[Mapping[str, Any]], opt: OptimizeConfig,
           claimed: Sequence[Stored]) -> list[TrialRecord]:
    """The records of a batch's results: what each sampled trial adds to its ``claimed``
    state. Each trial's FrozenTrial gets its result too (for ``after_trial``)."""
    out = []
    for trial, result, params_all, before in zip(trials, results, values, claimed, strict=True):
        user: dict[str, Any]
        if isinstance(result, StrategyError):
            state, objectives, user = TrialState.PRUNED, None, {"invalid": str(result)}
        else:
            user = {"eval": {**{k: result[k] for k in EVAL_KEYS}, "params_all": dict(params_all)}}
            names = [f"{c.metric} {c.op} {c.value:g}" for c in opt.constraints]
            for name, violation in zip([*names, "objectives defined"],
                                       [*result["constraints"],
                                        1.0 if result["undefined"] else 0.0], strict=True):
                trial.system_attrs[CONSTRAINT_PREFIX + name] = float(violation)
            objectives = [float(v) for v in result["objectives"]]
            state = TrialState.COMPLETE
            if any(math.isnan(v) for v in objectives):  # what study.tell makes of a NaN
                state, objectives = TrialState.FAIL, None
        trial.user_attrs.update(user)
        params = {k: v for k, v in trial.params.items() if k not in before.params}
        system = {k: v for k, v in trial.system_attrs.items()
                  if k not in before.system_attrs or before.system_attrs[k] != v}
        out.append(TrialRecord(trial._trial_id, state, objectives, params,
                               {k: trial.distributions[k] for k in params}, user, system))
    return out


class Heartbeat:
    """Optuna's heartbeat for the RUNNING trials of this worker's batch, on a database with
    heartbeats (Optuna beats only inside ``study.optimize``): other hosts' ``fail_stale_trials``
    then fails the trials of a dead worker, and only those. A thread with a stop event; the
    claim records each trial's first beat itself."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        interval = getattr(storage, "heartbeat_interval", None)
        self.storage, self.interval = storage, interval
        self.trials: tuple[int, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        import sqlalchemy  # a database's heartbeat only: a journal search never imports it

        while not self._stop.wait(self.interval):
            for trial_id in self.trials:
                try:
                    self.storage.record_heartbeat(trial_id)
                except sqlalchemy.exc.SQLAlchemyError:
                    break  # the worker's own next write reports an unreachable database

    @contextmanager
    def running(self) -> Iterator[Heartbeat]:
        """Beat for ``self.trials`` (set per batch) for the duration of the block."""
        if self.interval:
            self._thread = threading.Thread(target=self._beat, name="crashbt-heartbeat",
                                            daemon=True)
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=60)
