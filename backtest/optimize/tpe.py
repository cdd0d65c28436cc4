"""Optuna's TPE sampler asked once per batch instead of once per trial, with the same draws.

Every trial of a batch is sampled from the same history (see ``batch``); the stock
``TPESampler`` rebuilt the same model for each (re-read the trials, split them into "below" and
"above", fitted both Parzen estimators: O(trials^2) over a search), then drew and scored its 24
candidates. :meth:`BatchTPESampler.sample_relative_batch` builds the two estimators once, draws
the candidates of all trials in one vectorized pass (``_draw``) and scores them in one call per
estimator (``_score``).

The result equals the stock sampler's bit for bit, trial for trial (tests/test_tpe_batch.py
compares studies, draws, scores): with ``constant_liar`` (Optuna 5's default) the stock sampler
leaves the trial being sampled out of its history, and the batch's other trials are RUNNING
without parameters (crashbt writes them with the result), where they change no estimator.
Optuna 5.0's ``_MixtureOfProductDistribution.sample`` takes, per trial, ``n`` uniforms of one
MT19937 stream for the kernel choice (``RandomState.choice``: a searchsorted on the normalised
cumsum), ``n`` per categorical, then ``n`` per numerical parameter: one ``random_sample`` of
the batch is that sequence. The later steps are elementwise but for two, reproduced: the Newton
loop of ``_truncnorm._ndtri_exp`` runs until all values of its call (one trial's left or right
tail) converge, and ``_erf.erf`` changes formula at 2,000 values a call (where a per-trial
call could reach that, the per-trial path is kept). ``_log_ndtr`` is Optuna's per-value
function on whole arrays (the same math calls). Multi-objective TPE keeps Optuna's path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.samplers._tpe.probability_distributions import (
    _BatchedCategoricalDistributions,
    _MixtureOfProductDistribution,
)
from optuna.samplers._tpe.sampler import (
    _RELATIVE_PARAMS_KEY,
    _SYSTEM_ATTR_MAX_LENGTH,
    _split_trials,
    default_gamma,
)
from optuna.trial import FrozenTrial, TrialState

_DONE = (TrialState.COMPLETE, TrialState.PRUNED)
#: Python's math functions, applied per value of an array (what ``_truncnorm._log_ndtr_single``
#: calls, without a Python frame per value)
_ERF, _ERFC, _LOG = (np.frompyfunc(f, 1, 1) for f in (math.erf, math.erfc, math.log))
#: ``_erf.erf`` evaluates ``math.erf`` per value below this many values per call (a polynomial
#: from this size on): calls are kept below it where the stock call was
_ERF_EXACT = 2000


class BatchTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` (Optuna's defaults, seeded) that also samples a batch in one call."""

    def sample_relative_batch(self, study: optuna.Study, trials: Sequence[FrozenTrial],
                              search_space: dict[str, BaseDistribution]
                              ) -> list[dict[str, Any]]:
        """What ``sample_relative(study, trial, search_space)`` returns for each of ``trials``
        in turn, the history unchanged between them (and the same relative parameters kept on
        each trial for other workers' constant liar)."""
        if (not trials or self._group or not search_space or study._is_multi_objective()
                or self._parzen_estimator_cls is not _ParzenEstimator
                or len(study._get_trials(deepcopy=False, states=_DONE, use_cache=True))
                < self._n_startup_trials):
            # (the stock path: group decomposition, nothing to sample, a custom estimator or
            # the random start-up)
            return [self.sample_relative(study, t, search_space) for t in trials]
        below, above = self._estimators(study, trials, search_space)
        n = self._n_ei_candidates
        drawn = _draw(below._mixture_distribution, self._rng.rng, len(trials), n)
        candidates = below._untransform(drawn)
        scores = self._score(candidates, below, above, len(trials))
        out = []
        for k, trial in enumerate(trials):
            rows = slice(k * n, (k + 1) * n)
            best = self._compare({name: c[rows] for name, c in candidates.items()},
                                 scores[rows])
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

    def _score(self, candidates: dict[str, np.ndarray], below: _ParzenEstimator,
               above: _ParzenEstimator, n_trials: int) -> np.ndarray:
        """The acquisition values of all trials' candidates: one call per estimator, or one
        per trial when a stepped parameter's ``log_pdf`` could pass ``_erf.erf`` more values
        in one call than in a trial's (at most two per kernel whatever the candidates: those
        whose step holds the kernel's centre)."""
        kernels = max(len(e._mixture_distribution.weights) for e in (below, above))
        stepped = any(getattr(d, "step", 0.0) != 0.0 for e in (below, above)
                      for d in e._mixture_distribution.distributions)
        rows = self._n_ei_candidates if stepped and 2 * kernels >= _ERF_EXACT else None
        size = n_trials * self._n_ei_candidates
        return np.concatenate([self._compute_acquisition_func(
            {name: c[at:at + (rows or size)] for name, c in candidates.items()}, below, above)
            for at in range(0, size, rows or size)])

    @staticmethod
    def _share(study: optuna.Study, trial: FrozenTrial, params: dict[str, Any]) -> None:
        """The relative parameters as ``TPESampler.sample_relative`` stores them."""
        text = json.dumps(params)
        for i in range(0, len(text), _SYSTEM_ATTR_MAX_LENGTH):
            study._storage.set_trial_system_attr(
                trial._trial_id, f"{_RELATIVE_PARAMS_KEY}:{i // _SYSTEM_ATTR_MAX_LENGTH}",
                text[i:i + _SYSTEM_ATTR_MAX_LENGTH])


def _draw(mixture: _MixtureOfProductDistribution, rng: np.random.RandomState, n_trials: int,
          n: int) -> np.ndarray:
    """``n_trials`` consecutive ``mixture.sample(rng, n)``, stacked: (n_trials * n, params)."""
    dists = mixture.distributions
    categorical = [i for i, d in enumerate(dists)
                   if isinstance(d, _BatchedCategoricalDistributions)]
    numerical = [i for i in range(len(dists)) if i not in categorical]
    if len(numerical) * n >= _ERF_EXACT:  # the stock call may have taken the polynomial erf
        return np.concatenate([mixture.sample(rng, n) for _ in range(n_trials)])
    uniform = rng.random_sample((n_trials, 1 + len(dists), n))
    cdf = mixture.weights.cumsum()  # RandomState.choice(len(p), p=p, size=n)
    cdf /= cdf[-1]
    active = cdf.searchsorted(uniform[:, 0].ravel(), side="right")
    ret = np.empty((n_trials * n, len(dists)), dtype=float)
    for block, i in enumerate(categorical, start=1):
        cum_probs = np.cumsum(dists[i].weights[active, :], axis=-1)
        assert np.isclose(cum_probs[:, -1], 1).all()
        cum_probs[:, -1] = 1
        ret[:, i] = np.sum(cum_probs < uniform[:, block].ravel()[:, np.newaxis], axis=-1)
    if not numerical:
        return ret
    num = [dists[i] for i in numerical]
    # (parameter, trial, candidate), as one trial's rvs call lays out its quantiles
    quantiles = uniform[:, 1 + len(categorical):].transpose(1, 0, 2)
    trial = np.broadcast_to(np.arange(n_trials)[:, np.newaxis], (len(num), n_trials, n))
    mus = np.asarray([d.mu[active] for d in num])
    sigmas = np.asarray([d.sigma[active] for d in num])
    lows = np.asarray([d.adapted_low for d in num])
    highs = np.asarray([d.adapted_high for d in num])
    a = (lows[:, np.newaxis] - mus) / sigmas
    b = (highs[:, np.newaxis] - mus) / sigmas
    values = _ppf(quantiles.ravel(), a.ravel(), b.ravel(), trial.ravel()).reshape(mus.shape)
    ret[:, numerical] = (values * sigmas + mus).T
    log = [i for i in numerical if dists[i].is_log]
    ret[:, log] = np.exp(ret[:, log])
    stepped = [i for i in numerical if dists[i].step != 0.0]
    step = np.asarray([dists[i].step for i in stepped])
    low = np.asarray([dists[i].low for i in stepped])
    high = np.asarray([dists[i].high for i in stepped])
    ret[:, stepped] = np.clip(low + np.round((ret[:, stepped] - low) / step) * step, low, high)
    return ret


def _ppf(q: np.ndarray, a: np.ndarray, b: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """``_truncnorm.ppf(q, a, b)`` of each trial's values as one call per trial computes it
    (1-D arrays; ``trial``: each value's trial)."""
    left = a < 0
    right = ~left
    log_mass = np.concatenate([_truncnorm._log_gauss_mass(a[at:at + _ERF_EXACT - 1],
                                                          b[at:at + _ERF_EXACT - 1])
                               for at in range(0, a.size, _ERF_EXACT - 1)])
    out = np.empty_like(q)
    if left.any():
        out[left] = _ndtri_exp(_truncnorm._log_sum(
            _log_ndtr(a[left]), np.log(q[left]) + log_mass[left]), trial[left])
    if right.any():
        out[right] = -_ndtri_exp(_truncnorm._log_sum(
            _log_ndtr(-b[right]), np.log1p(-q[right]) + log_mass[right]),
            trial[right])
    out[q == 0] = a[q == 0]
    out[q == 1] = b[q == 1]
    out[a == b] = np.nan
    return out


def _ndtri_exp(y: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``_truncnorm._ndtri_exp(y)`` called once per ``group``: the same start and Newton
    steps, each group stepping until all of its values have converged."""
    flipped = y > -1e-2
    z = y.copy()
    z[flipped] = np.log(-np.expm1(y[flipped]))
    x = np.empty_like(y)
    small = np.nonzero(z < -5)
    x[small] = -np.sqrt(-2.0 * (z[small] + _truncnorm._norm_pdf_logC))
    moderate = np.nonzero(z >= -5)
    x[moderate] = -_truncnorm._ndtri_exp_approx_C * np.log(np.expm1(-z[moderate]))
    stepping = np.arange(y.size)
    for _ in range(100):
        xs = x[stepping]
        log_ndtr_x = _log_ndtr(xs)
        log_norm_pdf_x = -0.5 * xs**2 - _truncnorm._norm_pdf_logC
        dx = (log_ndtr_x - z[stepping]) * np.exp(log_ndtr_x - log_norm_pdf_x)
        xs -= dx
        x[stepping] = xs
        unconverged = np.unique(group[stepping][~(np.abs(dx) < 1e-8 * np.abs(xs))])
        stepping = stepping[np.isin(group[stepping], unconverged)]
        if not stepping.size:
            break
    x[flipped] *= -1
    return x


def _log_ndtr(a: np.ndarray) -> np.ndarray:
    """``_truncnorm._log_ndtr(a)``: its per-value function's branches, arithmetic and math
    calls on whole arrays (its asymptotic series below -20, and NaN, through it)."""
    out = np.empty_like(a)
    high = a > 6
    middle = (a > -20) & ~high
    low = ~(high | middle)
    out[high] = -_ndtr(-a[high])
    out[middle] = _LOG(_ndtr(a[middle])).astype(float)
    out[low] = _truncnorm._log_ndtr(a[low])
    return out


def _ndtr(a: np.ndarray) -> np.ndarray:
    """``_truncnorm._ndtr_single`` of each value."""
    x = a / 2**0.5
    lower = x < -1 / 2**0.5
    middle = ~lower & (x < 1 / 2**0.5)
    upper = ~(lower | middle)
    y = np.empty_like(x)
    y[lower] = 0.5 * _ERFC(-x[lower]).astype(float)
    y[middle] = 0.5 + 0.5 * _ERF(x[middle]).astype(float)
    y[upper] = 1.0 - 0.5 * _ERFC(x[upper]).astype(float)
    return y
