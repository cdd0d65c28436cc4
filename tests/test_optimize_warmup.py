"""``python -m backtest.warmup`` (run by ``make``) compiles every numba kernel a search calls, with
the argument types the search passes: a user's first ``crashbt optimize`` loads cached machine
code instead of compiling."""

from __future__ import annotations

from pathlib import Path

from backtest import warmup
from backtest.config.loader import load_config
from backtest.config.optimize import OptimizeConfig
from backtest.engine import batch_kernels
from backtest.metrics import kernels
from backtest.optimize.evaluate import Evaluator
from strategies import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
KERNELS = (batch_kernels.simulate_ranges_nb, kernels.range_metrics_nb, kernels.defined_means_nb,
           kernels.return_moments_nb)


def test_the_warm_up_compiles_the_signatures_a_search_uses() -> None:
    warmup.warm()
    compiled = {k: set(k.signatures) for k in KERNELS}
    assert all(compiled.values())
    cfg = load_config(ROOT / "configs" / "optimize_break_below.toml")
    opt = cfg.optimize or OptimizeConfig()
    ev = Evaluator(cfg.model_copy(update={"optimize": None}), opt, REGISTRY[cfg.strategy.name],
                   "optimize_break_below.toml")
    assert ev.evaluate_many([{}, {"level": 72_000.0}])[0]["folds"]
    assert {k: set(k.signatures) for k in KERNELS} == compiled  # nothing new to compile
