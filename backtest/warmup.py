"""Compile every numba kernel and page template once, at install time (``make`` runs it).

First the kernels commands call are compiled ahead of time into one extension module
(:mod:`backtest.aot`, loaded by :mod:`backtest.native`): a user's ``crashbt run`` then imports
neither numba nor llvmlite. The report templates are compiled into their cache. Then numba's
cache is filled for the JIT dispatchers of the same kernels (what runs when the extension
cannot be built, is stale or ``CRASHBT_JIT=1``): the engine paths run on a few synthetic bars,
then every shipped config under ``configs/`` runs in memory the way its command would (a run of
each strategy, a batch of the optimizer's evaluation, a small stress test, an event study).
tests/test_warmup.py checks that nothing is left to compile after it, tests/test_native.py that
both ways compute the same.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from backtest import aot, pipeline, plugins
from backtest.config.execution import ExecutionConfig
from backtest.config.loader import load_config
from backtest.engine import simulate as engine
from backtest.engine.batch import RangeEngine
from backtest.features import levels
from backtest.metrics import performance as metrics
from backtest.report import templating
from backtest.types import Signals


def warm() -> None:
    """Run a tiny simulation through every engine path (kernel, vectorbt, the optimizer's
    batch) and the metrics so each numba function is compiled and cached."""
    index = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC", name="timestamp")
    close = np.array([100.0, 101, 99, 98, 102, 103, 101, 100])
    bars = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 1.0}, index=index)
    flags = pd.Series([False, True, False, False, True, False, False, False], index=index)
    sigs = Signals(long_entries=flags, long_exits=flags.shift(2, fill_value=False),
                   short_entries=flags.shift(1, fill_value=False),
                   short_exits=flags.shift(3, fill_value=False),
                   stop_price=pd.Series(90.0, index=index),
                   target_price=pd.Series(110.0, index=index))
    plain = Signals(long_entries=sigs.long_entries, long_exits=sigs.long_exits)
    for fill in ("next_open", "close"):
        engine.simulate(bars, sigs, ExecutionConfig(fill=fill, sl_stop=0.05, tsl_stop=0.05), "1h")
        metrics.compute(engine.simulate(bars, plain, ExecutionConfig(fill=fill), "1h"), "1h")
    RangeEngine(bars, 0, [(0, 8), (2, 6)], ExecutionConfig(), "1h", None).run([sigs, plain])
    engine.simulate_many(bars, [sigs, plain], [ExecutionConfig(), ExecutionConfig(sl_stop=0.05)])
    levels.latch(flags, sigs.long_exits)  # no shipped config reaches it
    for config in sorted(CONFIGS.glob("*.toml")):
        warm_config(config)


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def warm_config(config: Path) -> None:
    """Run one shipped config in memory as its command would (nothing is written)."""
    from backtest.lab import events, stress
    from backtest.lab.config import load_events_config, load_stress_config
    from backtest.optimize.evaluate import Evaluator

    source = str(config)
    table = tomllib.loads(config.read_text(encoding="utf-8"))
    if "events" in table:
        events.study(load_events_config(source, []), source)
        return
    if "stress" in table:
        run, cfg = load_stress_config(source, [])
        spec = plugins.resolve(run.strategy.name, source, False)
        stress.stress(run, cfg.model_copy(update={"paths": 2}), spec, source)
        return
    cfg = load_config(source, [])
    for strategy in ([cfg.strategy] if cfg.strategy is not None else cfg.strategies or []):
        one = cfg.model_copy(update={"strategy": strategy, "strategies": None, "optimize": None})
        spec = plugins.resolve(strategy.name, source, False)
        pipeline.execute(one, spec, source)
        if cfg.optimize is not None:
            Evaluator(one, cfg.optimize, spec, source).evaluate_many([strategy.params])


def main() -> None:
    """Build the ahead-of-time kernels, then warm the JIT's cache (module docstring)."""
    aot.ensure()
    templating.precompile()  # a user's first page loads compiled templates too
    os.environ["CRASHBT_JIT"] = "1"
    warm()


if __name__ == "__main__":
    main()
