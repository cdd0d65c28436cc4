"""TPE sampled once per batch (backtest/optimize/tpe.py) draws what Optuna's stock TPESampler
draws through its per-trial API: the same parameters and the same stored relative parameters,
on histories with pruned, infeasible and running trials, and in whole searches."""

from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from backtest.optimize import batch, search, storage, workers
from backtest.optimize.tpe import BatchTPESampler
from strategies import REGISTRY
from tests.test_optimize import NOISE, request
from tests.test_optimize_batch import stored

SPACE = {"x": FloatDistribution(-5.0, 5.0), "k": IntDistribution(1, 12),
         "lg": FloatDistribution(0.01, 10.0, log=True), "c": CategoricalDistribution(["a", "b"])}
DONE = st.tuples(st.sampled_from(["ok", "infeasible", "pruned"]), st.floats(-5.0, 5.0),
                 st.integers(1, 12), st.floats(0.01, 10.0), st.sampled_from(["a", "b"]))
#: finished trials (past TPE's 10 random start-up trials unless only a few) with a few running
#: ones (another worker's) among them
HISTORY = st.tuples(st.lists(DONE, min_size=4, max_size=50),
                    st.lists(st.integers(0, 50), max_size=3)).map(
    lambda drawn: [("running", 0.0, 1, 1.0, "a") if i in drawn[1] else trial
                   for i, trial in enumerate(drawn[0])])


def study_with(tmp: Path, history: list[tuple]) -> tuple[optuna.Study, object]:
    """A journal study holding ``history`` (running trials claimed by this process, without
    params, as crashbt's claims leave them)."""
    opened = storage.open_storage(None, tmp / "s.journal")
    study = optuna.create_study(study_name="s", storage=opened)
    for n, (kind, x, k, lg, c) in enumerate(history):
        if kind == "running":
            opened.claim_batch(study._study_id, 1)
            continue
        params = {"x": x, "k": k, "lg": lg, "c": c}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=SPACE,
            state=TrialState.PRUNED if kind == "pruned" else TrialState.COMPLETE,
            value=None if kind == "pruned" else x * x - k + n / 100,
            system_attrs={"constraints:c": 1.0 + lg if kind == "infeasible" else -1.0}))
    return study, opened


def sampled(study: optuna.Study, opened: object, sampler: optuna.samplers.BaseSampler,
            ids: list[int]) -> list[tuple[dict, dict]]:
    """Params and system attrs of the claimed trials ``ids`` sampled by ``sampler``."""
    study.sampler = sampler
    trials = copy.deepcopy(batch.claimed_trials(study, ids))
    batch.sample(study, opened, trials, SPACE)
    return [(t.params, t.system_attrs) for t in trials]


@settings(max_examples=30, deadline=None)
@given(history=HISTORY, size=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_a_batch_draws_what_the_stock_sampler_draws_trial_by_trial(
        tmp_path_factory: pytest.TempPathFactory, history: list, size: int, seed: int) -> None:
    study, opened = study_with(tmp_path_factory.mktemp("tpe"), history)
    ids = opened.claim_batch(study._study_id, size)
    stock = sampled(study, opened, optuna.samplers.TPESampler(seed=seed), ids)
    batched = sampled(study, opened, BatchTPESampler(seed=seed), ids)
    assert batched == stock
    assert all(set(params) == set(SPACE) for params, _ in batched)
    modelled = sum(kind != "running" for kind, *_ in history) >= 10  # past the random start-up
    assert all(any(k.startswith("tpe:relative_params") for k in attrs) == modelled
               for _, attrs in batched)


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
