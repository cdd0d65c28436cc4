"""backtest.engine.vbt_rust (the Rust extension without the vectorbt package) equals vectorbt's
own ``portfolio.dispatch`` functions record for record, its enum values and record dtypes are
vectorbt's, and a run on that path in a fresh process imports no vectorbt and equals one in a
process where vectorbt is loaded."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from vectorbt.portfolio import dispatch, enums

from backtest.engine import vbt_rust


def test_enum_values_are_vectorbts() -> None:
    for kind, members in vars(vbt_rust.enums).items():
        for member, value in vars(members).items():
            assert getattr(getattr(enums, kind), member) == value, f"{kind}.{member}"


def _ohlc(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.02)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.02)
    return open_, high, low, close


@pytest.mark.parametrize(("seed", "stops", "by_open"),
                         [(0, {}, False), (1, {"sl_stop": 0.03}, False),
                          (2, {"sl_stop": 0.02, "sl_trail": True}, True),
                          (3, {"tp_stop": 0.04}, True)])
def test_records_equal_vectorbt_dispatch(seed: int, stops: dict, by_open: bool) -> None:
    n = 3000
    o, h, lo, c = _ohlc(n, seed)
    rng = np.random.default_rng(seed + 10)
    le, lx, se, sx = (rng.random(n) < 0.02 for _ in range(4))
    shape = (n, 1)
    kwargs = dict(
        long_entries=le, long_exits=lx, short_entries=se, short_exits=sx,
        size=np.asarray(np.inf), price=o if by_open else c,
        size_type=np.asarray(enums.SizeType.Amount), fees=np.asarray(0.001),
        slippage=np.asarray(0.0005), upon_opposite_entry=np.asarray(3),
        open=o, high=h, low=lo, close=c.reshape(shape),
        stop_entry_price=np.asarray(2), stop_exit_price=np.asarray(1),
        use_stops=bool(stops), max_orders=n, max_logs=1, flex_2d=False, seed=None,
        engine="rust", **{k: np.asarray(v) for k, v in stops.items()})
    args = (shape, np.ones(1, dtype=np.int64), np.full(1, 1e5), np.zeros(shape, dtype=np.int64))
    ours, _ = vbt_rust.simulate_from_signals(*args, **kwargs)
    theirs, _ = dispatch.simulate_from_signals(*args, **kwargs)
    assert len(ours) > 10
    assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
    col_map = (np.arange(len(ours), dtype=np.int64), np.array([len(ours)], dtype=np.int64))
    trades = vbt_rust.get_exit_trades(ours, c.reshape(shape), col_map)
    expected = dispatch.get_exit_trades(theirs, c.reshape(shape), col_map, engine="rust")
    assert trades.tobytes() == expected.tobytes()


def test_refuses_what_only_vectorbt_can_run() -> None:
    args = ((3, 1), np.ones(1, dtype=np.int64), np.full(1, 1.0), np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(TypeError):
        vbt_rust.simulate_from_signals(*args, entires=np.ones(3, dtype=bool))
    with pytest.raises(ValueError):
        vbt_rust.simulate_from_signals(*args, reject_prob=np.asarray(0.5))


def test_record_dtypes_are_vectorbts() -> None:
    for name, dtype in vbt_rust.RECORD_DTYPES.items():
        assert dtype == getattr(enums, name), name


FRESH_RUN = """
import hashlib, sys
import numpy as np
import pandas as pd
from backtest.config.execution import ExecutionConfig
from backtest.engine.simulate import simulate
from backtest.types import Signals

rng = np.random.default_rng(5)
close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 4000)))
index = pd.date_range("2024-01-01", periods=close.size, freq="1h", tz="UTC", name="timestamp")
bars = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                     "volume": 1.0}, index=index)
flags = [pd.Series(rng.random(close.size) < 0.02, index=index) for _ in range(4)]
result = simulate(bars, Signals(*flags), ExecutionConfig(fee_rate=0.001, fill="close",
                                                          sl_stop=0.03), "1h")
digest = hashlib.sha256(result.equity.to_numpy().tobytes()
                        + result.trades.to_csv().encode()).hexdigest()
print(result.engine, "vectorbt" in sys.modules, digest)
"""


def test_a_fresh_run_on_this_path_imports_no_vectorbt_and_equals_one_with_it() -> None:
    def run(*preload: str) -> list[str]:
        code = "".join(f"import {m}\n" for m in preload) + FRESH_RUN
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=300)
        return out.stdout.split()

    bare, loaded = run(), run("vectorbt")
    assert bare[0].startswith("vectorbt-rust") and bare[-2] == "False"
    assert loaded[-2] == "True" and bare[-1] == loaded[-1]
