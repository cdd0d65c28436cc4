"""Differential tests: the engine vs backtesting.py 0.6.6, and the numba kernel vs vectorbt-rust.

Convention differences with backtesting.py and how they are bridged:
- backtesting.py trades whole units; we run it with cash 1e13 (about 3e8 BTC units per trade),
  so its floor() rounding costs < 1e-8 of equity per trade, and size with the fraction 1 - 1e-12
  (it refuses 1.0, which means "one unit").
- backtesting.py calls ``next()`` first on bar 1, so signals on bar 0 are switched off.
- it leaves an open trade out of its closed trades; we report it with status "open".
- a reversal is written as ``position.close()`` then an order for the new side (our two orders).
Everything else (next-open fills, fee on both legs, equity marked at the close) is the same.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy

from backtest.config.execution import ExecutionConfig
from backtest.engine.simulate import ENGINE_KERNEL, simulate
from backtest.types import Signals
from scripts.bundle_datasets import shared_data_dir

HOURLY = str(shared_data_dir() / "btcusdt_1h.csv")
CASH = 1e13
ALL_IN = 1 - 1e-12


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = pd.read_csv(HOURLY, index_col="timestamp", nrows=2000)
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame.astype("float64")


def random_signals(bars: pd.DataFrame, seed: int, p: float = 0.03) -> Signals:
    rng = np.random.default_rng(seed)
    flags = rng.random((4, len(bars))) < p
    flags[:, 0] = False
    return Signals(*(pd.Series(f, index=bars.index) for f in flags))


class Replay(Strategy):
    """Replays precomputed signals with crashbt's conflict rules (engine module docstring)."""

    flags: np.ndarray = np.zeros((4, 0), dtype=bool)

    def init(self) -> None:
        pass

    def next(self) -> None:
        le, lx, se, sx = self.flags[:, len(self.data) - 1]
        le, lx = (False, False) if le and lx else (le, lx)
        se, sx = (False, False) if se and sx else (se, sx)
        le, se = (False, False) if le and se else (le, se)
        pos = self.position.size
        if (pos > 0 and (se or lx)) or (pos < 0 and (le or sx)):
            self.position.close()
        if le and pos <= 0:
            self.buy(size=ALL_IN)
        elif se and pos >= 0:
            self.sell(size=ALL_IN)


def run_backtesting_py(bars: pd.DataFrame, sig: Signals, fee: float, cash: float = CASH):
    data = bars[["open", "high", "low", "close", "volume"]].rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its small-cash and open-trade warnings
        bt = Backtest(data, Replay, cash=cash, commission=fee, trade_on_close=False,
                      hedging=False, exclusive_orders=False, finalize_trades=False)
        stats = bt.run(flags=np.vstack(sig.bool_arrays()))
    return stats


@pytest.mark.parametrize("seed", range(50))
def test_matches_backtesting_py(bars, seed):
    sig = random_signals(bars, seed)
    fee = 0.0004 * (seed % 3)  # 0, 4 bp and 8 bp
    stats = run_backtesting_py(bars, sig, fee)
    res = simulate(bars, sig, ExecutionConfig(init_cash=CASH, fee_rate=fee, engine="numba"), "1h")
    ours = res.trades[res.trades["status"] == "closed"]
    theirs = stats._trades
    assert len(ours) == len(theirs) > 0
    index = bars.index
    assert index.get_indexer(ours["entry_time"]).tolist() == theirs["EntryBar"].tolist()
    assert index.get_indexer(ours["exit_time"]).tolist() == theirs["ExitBar"].tolist()
    np.testing.assert_allclose(ours["entry_price"], theirs["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(ours["exit_price"], theirs["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(np.where(ours["direction"] == "long", 1, -1) * ours["size"],
                               theirs["Size"], rtol=1e-6)
    np.testing.assert_allclose(res.equity.to_numpy(), stats._equity_curve["Equity"].to_numpy(),
                               rtol=1e-6)
    assert res.equity.iloc[-1] == pytest.approx(stats["Equity Final [$]"], rel=1e-6)


def test_backtesting_py_whole_units_differ_at_small_cash(bars):
    """Pins the convention difference: with 1000 cash backtesting.py buys floor(units) = 0 BTC
    and cancels the order, while crashbt buys fractional units."""
    sig = random_signals(bars, 0)
    stats = run_backtesting_py(bars, sig, 0.0, cash=1000.0)
    res = simulate(bars, sig, ExecutionConfig(init_cash=1000.0, fee_rate=0.0), "1h")
    assert stats["# Trades"] == 0 and len(res.trades) > 0


CASES = [
    {"fill": "next_open"},
    {"fill": "close"},
    {"fill": "close", "sl_stop": 0.01},
    {"fill": "close", "tsl_stop": 0.015},
    {"fill": "close", "tp_stop": 0.02},
    {"fill": "close", "sl_stop": 0.01, "direction": "long"},
    {"fill": "close", "tsl_stop": 0.01, "direction": "short", "slippage_rate": 0.0005},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_vectorbt(bars, case, seed):
    sig = random_signals(bars, 100 + seed, p=0.01)
    kwargs = {"fee_rate": 0.001, **case}
    rust = simulate(bars, sig, ExecutionConfig(engine="rust", **kwargs), "1h")
    kernel = simulate(bars, sig, ExecutionConfig(engine="numba", **kwargs), "1h")
    assert rust.engine.startswith("vectorbt-rust") and kernel.engine == ENGINE_KERNEL
    assert len(rust.trades) == len(kernel.trades) > 0
    exact = ["entry_time", "exit_time", "direction", "exit_reason", "status"]
    pd.testing.assert_frame_equal(rust.trades[exact], kernel.trades[exact])
    for col in ("size", "entry_price", "exit_price", "pnl", "fees"):
        np.testing.assert_allclose(rust.trades[col], kernel.trades[col], rtol=1e-9)
    np.testing.assert_allclose(rust.equity, kernel.equity, rtol=1e-9)
    np.testing.assert_allclose(rust.position, kernel.position, rtol=1e-9, atol=1e-12)
    assert len(rust.orders) == len(kernel.orders)
    np.testing.assert_allclose(rust.orders["price"], kernel.orders["price"], rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_dispatch_path_equals_portfolio_from_signals(bars, case):
    """The engine calls vectorbt's array-level dispatch functions (no pandas wrapping); they must
    give exactly what the public Portfolio.from_signals gives for the same arguments."""
    import vectorbt as vbt

    from backtest.engine import records, vectorbt_path

    ex = ExecutionConfig(fee_rate=0.001, **case)
    o, h, lo, c = records.ohlc(bars)
    le, lx, se, sx = records.filtered_signals(random_signals(bars, 7, p=0.02), ex.direction)
    next_open = ex.fill == "next_open"
    if next_open:
        le, lx, se, sx = (np.concatenate(([False], a[:-1])) for a in (le, lx, se, sx))
    trades, value, assets = vectorbt_path.vectorbt_from_signals(o, h, lo, c, le, lx, se, sx, ex,
                                                          next_open)
    sl = ex.tsl_stop if ex.tsl_stop is not None else ex.sl_stop
    pf = vbt.Portfolio.from_signals(
        close=c, entries=le, exits=lx, short_entries=se, short_exits=sx, size=np.inf,
        price=o if next_open else c, fees=ex.fee_rate, slippage=ex.slippage_rate, min_size=0.0,
        upon_opposite_entry="reverse", open=o, high=h, low=lo,
        sl_stop=np.nan if sl is None else sl, sl_trail=ex.tsl_stop is not None,
        tp_stop=np.nan if ex.tp_stop is None else ex.tp_stop, stop_entry_price="fillprice",
        stop_exit_price="stopmarket", upon_stop_update="override", init_cash=ex.init_cash,
        freq="1h", engine="rust")
    assert len(trades) > 10
    expected = pf.exit_trades.values
    for field in expected.dtype.names:
        np.testing.assert_array_equal(trades[field], expected[field], err_msg=field)
    np.testing.assert_array_equal(value, pf.value().to_numpy())
    np.testing.assert_array_equal(assets, pf.assets().to_numpy())
