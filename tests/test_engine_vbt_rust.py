"""backtest.engine.vbt_rust (the Rust extension without the vectorbt package) equals vectorbt's
own ``portfolio.dispatch`` functions record for record, and its enum values are vectorbt's."""

from __future__ import annotations

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
