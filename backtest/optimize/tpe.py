"""Optuna's TPE sampler asked once per batch instead of once per trial, with the same draws.

Every trial of a batch is sampled from the same history (see ``batch``), and through Optuna's
per-trial API the stock ``TPESampler`` rebuilt the same model for each of them: it re-read the
study's trials from the storage, read every trial's constraints to split them into "below" and
"above", converted every trial's params and fitted both Parzen estimators (O(trials) in Python
per sample, so O(trials^2) over a search), then scored its 24 candidates. For a batch,
:meth:`BatchTPESampler.sample_relative_batch` reads the trials once, builds the two estimators
once, draws each trial's candidates in trial order from the sampler's one random stream (the
draws ``sample_relative`` would make, in the same order) and scores all candidates of the batch
in one call per estimator (a row's score does not depend on the other rows).

The result equals the stock sampler's, trial for trial (tests/test_tpe_batch.py compares them on
studies with pruned, infeasible and running trials): with ``constant_liar`` (Optuna 5's default)
the stock sampler leaves the trial being sampled out of its history, and the other trials of
the batch are RUNNING without parameters in the storage (crashbt writes a trial's parameters
with its result), where they change no estimator. Multi-objective TPE (independent sampling,
per parameter) keeps Optuna's per-trial path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.samplers._tpe.sampler import (
    _RELATIVE_PARAMS_KEY,
    _SYSTEM_ATTR_MAX_LENGTH,
    _split_trials,
    default_gamma,
)
from optuna.trial import FrozenTrial, TrialState

_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


class BatchTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` (Optuna's defaults, seeded) that also samples a batch in one call."""

    def sample_relative_batch(self, study: optuna.Study, trials: Sequence[FrozenTrial],
                              search_space: dict[str, BaseDistribution]
                              ) -> list[dict[str, Any]]:
        """What ``sample_relative(study, trial, search_space)`` returns for each of ``trials``
        in turn, the history unchanged between them (and the same relative parameters kept on
        each trial for other workers' constant liar)."""
        if (self._group or not search_space or study._is_multi_objective()
                or len(study._get_trials(deepcopy=False, states=_DONE, use_cache=True))
                < self._n_startup_trials):
            # (the stock path: group decomposition, nothing to sample, or the random start-up)
            return [self.sample_relative(study, t, search_space) for t in trials]
        below, above = self._estimators(study, trials, search_space)
        candidates = [below.sample(self._rng.rng, self._n_ei_candidates) for _ in trials]
        joined = {name: np.concatenate([c[name] for c in candidates]) for name in search_space}
        scores = self._compute_acquisition_func(joined, below, above)
        out = []
        for k, (trial, drawn) in enumerate(zip(trials, candidates, strict=True)):
            at = k * self._n_ei_candidates
            best = self._compare(drawn, scores[at:at + self._n_ei_candidates])
            params = {name: dist.to_external_repr(best[name])
                      for name, dist in search_space.items()}
            if self._constant_liar:
                self._share(study, trial, params)
            out.append(params)
        return out

    def _estimators(self, study: optuna.Study, batch: Sequence[FrozenTrial],
                    search_space: dict[str, BaseDistribution]
                    ) -> tuple[_ParzenEstimator, _ParzenEstimator]:
        """The below / above estimators of ``TPESampler._sample`` (single objective) for a
        history without the batch's trials."""
        if self._constant_liar:
            history = study._get_trials(deepcopy=False, states=(*_DONE, TrialState.RUNNING))
            mine = {t.number for t in batch}
            history = [t for t in history if t.number not in mine]
        else:
            history = study._get_trials(deepcopy=False, states=_DONE, use_cache=True)
        if self._gamma is None:
            self._gamma = default_gamma
        n = sum(t.state != TrialState.RUNNING for t in history)
        below, above = _split_trials(study, history, self._gamma(n))
        return (self._build_parzen_estimator(study, search_space, below, handle_below=True),
                self._build_parzen_estimator(study, search_space, above, handle_below=False))

    @staticmethod
    def _share(study: optuna.Study, trial: FrozenTrial, params: dict[str, Any]) -> None:
        """The relative parameters as ``TPESampler.sample_relative`` stores them."""
        text = json.dumps(params)
        for i in range(0, len(text), _SYSTEM_ATTR_MAX_LENGTH):
            study._storage.set_trial_system_attr(
                trial._trial_id, f"{_RELATIVE_PARAMS_KEY}:{i // _SYSTEM_ATTR_MAX_LENGTH}",
                text[i:i + _SYSTEM_ATTR_MAX_LENGTH])
