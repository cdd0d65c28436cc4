"""TPE sampled once per batch (backtest/optimize/tpe.py) draws what Optuna's stock TPESampler
draws through its per-trial API: the same candidates bit for bit, the same parameters and the
same stored relative parameters, on histories with pruned, infeasible and running trials, on
every kind of parameter (float, log, stepped, int, categorical), and in whole searches."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
from optuna.trial import TrialState

from backtest.optimize import batch, search, storage, workers
from backtest.optimize.tpe import BatchTPESampler, _draw, _log_ndtr
from strategies import REGISTRY
from tests.test_optimize import NOISE, request
from tests.test_optimize_batch import stored

#: every kind of Parzen kernel: truncated normal, log-normal, stepped (float and int, one with
#: a thousand steps), stepped log-normal (a log int) and categorical
SPACE = {"x": FloatDistribution(-5.0, 5.0), "k": IntDistribution(1, 12),
         "lg": FloatDistribution(0.01, 10.0, log=True), "c": CategoricalDistribution(["a", "b"]),
         "s": FloatDistribution(0.0, 10.0, step=0.01), "m": IntDistribution(0, 20, step=4),
         "n": IntDistribution(1, 64, log=True), "t": CategoricalDistribution([1, 2.5, None])}
VALUE = {"x": st.floats(-5.0, 5.0), "k": st.integers(1, 12), "lg": st.floats(0.01, 10.0),
         "c": st.sampled_from(["a", "b"]), "s": st.integers(0, 1000).map(lambda i: i / 100),
         "m": st.sampled_from([0, 4, 8, 12, 16, 20]), "n": st.integers(1, 64),
         "t": st.sampled_from([1, 2.5, None])}
PARAMS = st.fixed_dictionaries(VALUE)
DONE = st.tuples(st.sampled_from(["ok", "infeasible", "pruned"]), PARAMS)
#: finished trials (past TPE's 10 random start-up trials unless only a few) with a few running
#: ones (another worker's) among them
HISTORY = st.tuples(st.lists(DONE, min_size=4, max_size=50),
                    st.lists(st.integers(0, 50), max_size=3)).map(
    lambda drawn: [("running", {}) if i in drawn[1] else trial
                   for i, trial in enumerate(drawn[0])])


def study_with(tmp: Path, history: list[tuple]) -> tuple[optuna.Study, object]:
    """A journal study holding ``history`` (running trials claimed by this process, without
    params, as crashbt's claims leave them)."""
    opened = storage.open_storage(None, tmp / "s.journal")
    study = optuna.create_study(study_name="s", storage=opened)
    for n, (kind, params) in enumerate(history):
        if kind == "running":
            opened.claim_batch(study._study_id, 1)
            continue
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=SPACE,
            state=TrialState.PRUNED if kind == "pruned" else TrialState.COMPLETE,
            value=None if kind == "pruned" else params["x"] ** 2 - params["k"] + n / 100,
            system_attrs={"constraints:c": 1.0 + params["lg"] if kind == "infeasible" else -1.0}))
    return study, opened


def sampled(study: optuna.Study, opened: object, sampler: optuna.samplers.BaseSampler,
            ids: list[int]) -> list[tuple[dict, dict]]:
    """Params and system attrs of the claimed trials ``ids`` sampled by ``sampler``."""
    study.sampler = sampler
    trials = copy.deepcopy(batch.claimed_trials(study, ids))
    batch.sample(study, opened, trials, SPACE)
    return [(t.params, t.system_attrs) for t in trials]


@settings(max_examples=30, deadline=None)
@given(history=HISTORY, size=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_a_batch_draws_what_the_stock_sampler_draws_trial_by_trial(
        tmp_path_factory: pytest.TempPathFactory, history: list, size: int, seed: int) -> None:
    study, opened = study_with(tmp_path_factory.mktemp("tpe"), history)
    ids = opened.claim_batch(study._study_id, size)
    stock = sampled(study, opened, optuna.samplers.TPESampler(seed=seed), ids)
    batched = sampled(study, opened, BatchTPESampler(seed=seed), ids)
    assert batched == stock
    assert all(set(params) == set(SPACE) for params, _ in batched)
    modelled = sum(kind != "running" for kind, _ in history) >= 10  # past the random start-up
    assert all(any(k.startswith("tpe:relative_params") for k in attrs) == modelled
               for _, attrs in batched)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(st.sampled_from(sorted(SPACE)), min_size=1, max_size=8, unique=True),
       observed=st.lists(PARAMS, max_size=40), trials=st.sampled_from([1, 2, 3, 8, 25]),
       candidates=st.sampled_from([1, 24, 100, 400]), seed=st.integers(0, 2**32 - 1))
def test_one_pass_draws_the_stock_candidates_bit_for_bit(
        names: list[str], observed: list[dict], trials: int, candidates: int,
        seed: int) -> None:
    """The candidates of ``trials`` consecutive ``sample`` calls of Optuna's Parzen estimator
    (the draws of the stock sampler, trial after trial), from one ``_draw``: the same bits,
    and the random stream left where the stock calls leave it (with 400 candidates and 5 or 6
    numerical parameters, through the stock calls)."""
    space = {name: SPACE[name] for name in names}
    internal = {name: np.asarray([space[name].to_internal_repr(o[name]) for o in observed],
                                 dtype=float) for name in names}
    estimator = _ParzenEstimator(internal, space,
                                 optuna.samplers.TPESampler()._parzen_estimator_parameters)
    stock_rng, batch_rng = np.random.RandomState(seed), np.random.RandomState(seed)
    stock = np.concatenate([estimator._mixture_distribution.sample(stock_rng, candidates)
                            for _ in range(trials)])
    drawn = _draw(estimator._mixture_distribution, batch_rng, trials, candidates)
    assert drawn.shape == stock.shape == (trials * candidates, len(space))
    assert drawn.tobytes() == stock.tobytes()
    assert stock_rng.random_sample() == batch_rng.random_sample()


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6) | st.sampled_from([np.nan, np.inf, -np.inf]),
                       max_size=50))
def test_log_ndtr_is_optunas_bit_for_bit(values: list[float]) -> None:
    """Every branch of Optuna's per-value log_ndtr (erfc tail above 6, log of erf / erfc
    between, its series below -20, NaN, signed zeros and infinities), on whole arrays (values
    whose square overflows raise in its series, both ways)."""
    edges = [6.0, np.nextafter(6.0, 7.0), -20.0, np.nextafter(-20.0, 0.0), 1.0, -1.0,
             np.nextafter(1.0, 0.0), 0.0, -0.0, 5e-324, 40.0, -40.0, -1e6]
    a = np.asarray(values + edges, dtype=float)
    with np.errstate(invalid="ignore"):
        assert _log_ndtr(a).tobytes() == _truncnorm._log_ndtr(a).tobytes()


@settings(max_examples=30, deadline=None)
@given(observed=st.lists(PARAMS, min_size=2, max_size=120), trials=st.sampled_from([1, 3, 12]),
       seed=st.integers(0, 2**32 - 1))
def test_a_batch_is_scored_as_each_trial_is_scored_alone(observed: list[dict], trials: int,
                                                          seed: int) -> None:
    """The acquisition values of a batch's candidates (estimators of the two halves of
    ``observed``), bit for bit the stock sampler's, computed in one call per trial."""
    sampler = BatchTPESampler()
    half = len(observed) // 2
    below, above = (_ParzenEstimator(
        {name: np.asarray([SPACE[name].to_internal_repr(o[name]) for o in part], dtype=float)
         for name in SPACE}, SPACE, sampler._parzen_estimator_parameters)
        for part in (observed[:half], observed[half:]))
    n = sampler._n_ei_candidates
    candidates = below._untransform(_draw(below._mixture_distribution,
                                          np.random.RandomState(seed), trials, n))
    stock = np.concatenate([sampler._compute_acquisition_func(
        {name: c[k * n:(k + 1) * n] for name, c in candidates.items()}, below, above)
        for k in range(trials)])
    assert sampler._score(candidates, below, above, trials).tobytes() == stock.tobytes()


@pytest.mark.parametrize("spec", [NOISE, REGISTRY["break_below_74k"]], ids=lambda s: s.name)
def test_a_search_stores_what_the_stock_sampler_stores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: object) -> None:
    """The reference: the stock TPESampler, asked trial by trial (today's sampler before it
    sampled batches); the same seed gives the same trials, values and evaluations."""
    got = []
    for name in ("stock", "batched"):
        (tmp_path / name).mkdir()
        if name == "stock":
            monkeypatch.setattr(workers, "make_sampler", lambda opt, dims, seed, source:
                                optuna.samplers.TPESampler(seed=seed))
        else:
            monkeypatch.undo()
        req = request(tmp_path / name, spec, "batch = 5", 32)
        study = search.prepare(req)
        workers.work(req, 0)
        got.append(stored(study))
    assert [t[1] for t in got[0]].count(TrialState.COMPLETE) == 32
    assert got[0] == got[1]
