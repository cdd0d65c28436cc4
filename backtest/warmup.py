"""Compile and cache every numba kernel once, at install time (``make`` runs it).

A user's first ``crashbt run`` then loads cached machine code instead of paying JIT compilation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.config.execution import ExecutionConfig
from backtest.engine import simulate as engine
from backtest.engine.batch import RangeEngine
from backtest.metrics import overfit
from backtest.metrics import performance as metrics
from backtest.types import Signals


def warm() -> None:
    """Run a tiny simulation through every engine path (kernel, vectorbt, the optimizer's
    batch) and the metrics (a run's, and the optimizer's batched ones) so each numba function is
    compiled and cached."""
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
    runs = RangeEngine(bars, 0, [(0, 8), (2, 6)], ExecutionConfig(), "1h", None).run([sigs, plain])
    table = metrics.range_metrics(runs.equity, runs.position, runs.at, runs.totals,
                                  np.arange(2), 10_000.0, "1h", ("sharpe",))
    metrics.defined_means(table, np.array([[0, 1]]), "n_trades")
    overfit.return_stats(metrics.bar_returns(runs.equity[0], 10_000.0))  # a trial's DSR inputs


if __name__ == "__main__":
    warm()
