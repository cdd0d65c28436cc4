"""backtest.optimize.grid: Optuna's grid order, every point once, failed points re-run, a stop
when the grid is done, and no read of the stored trials during the first pass."""

from __future__ import annotations

import optuna
import pytest

from backtest.optimize.grid import EnumeratedGridSampler

GRID = {"level": [70000.0, 72500.0, 75000.0], "confirm": [1, 2, 3, 4], "mode": ["short", "long"]}


def suggest_all(trial: optuna.Trial) -> tuple:
    return (trial.suggest_float("level", 70000.0, 75000.0),
            trial.suggest_int("confirm", 1, 4), trial.suggest_categorical("mode", ["short", "long"]))


@pytest.mark.parametrize("seed", [None, 7, 123])
def test_order_is_optunas_grid_order(seed: int | None) -> None:
    ours = EnumeratedGridSampler(GRID, seed=seed)
    theirs = optuna.samplers.GridSampler(GRID, seed=seed)
    names = sorted(GRID)
    assert ours.size == len(theirs._all_grids) == 24
    assert [ours.point(n) for n in range(24)] == [dict(zip(names, g, strict=True))
                                                  for g in theirs._all_grids]


def test_every_point_once_then_stops() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=EnumeratedGridSampler(GRID, seed=3))
    study.optimize(lambda t: float(suggest_all(t)[1]), n_trials=40)  # stops itself at 24
    seen = [tuple(t.params[k] for k in ("level", "confirm", "mode")) for t in study.trials]
    assert len(seen) == 24 and len(set(seen)) == 24


def test_failed_points_are_run_again() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=EnumeratedGridSampler(GRID))
    failing = {5, 11}

    def objective(trial: optuna.Trial) -> float:
        suggest_all(trial)
        if trial.number in failing:
            raise ValueError("boom")
        return 1.0

    study.optimize(objective, n_trials=24, catch=(ValueError,))
    study.optimize(objective, n_trials=10)  # a resume: only the two failed points are left
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    points = {tuple(sorted(t.params.items())) for t in complete}
    assert len(complete) == 24 and len(points) == 24


class CountingStorage(optuna.storages.InMemoryStorage):
    """Counts full reads of the stored trials (what GridSampler does after every trial)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_all_trials(self, *args, **kwargs):
        self.reads += 1
        return super().get_all_trials(*args, **kwargs)


def reads_of(sampler: optuna.samplers.BaseSampler, trials: int) -> tuple[int, optuna.Study]:
    storage = CountingStorage()
    study = optuna.create_study(storage=storage, sampler=sampler)
    study.optimize(lambda t: float(t.suggest_int("x", 0, 29)), n_trials=trials)
    return storage.reads, study


def test_first_pass_reads_no_more_than_a_random_search() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = {"x": list(range(30))}
    ours, study = reads_of(EnumeratedGridSampler(grid), 29)
    random, _ = reads_of(optuna.samplers.RandomSampler(seed=0), 29)
    optunas, _ = reads_of(optuna.samplers.GridSampler(grid), 29)
    assert ours == random < optunas
    study.optimize(lambda t: float(t.suggest_int("x", 0, 29)), n_trials=5)  # stops after one
    assert sorted(t.params["x"] for t in study.trials) == list(range(30))
