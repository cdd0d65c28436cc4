"""The sweep fast paths (tests/bench/sweep.py, a benchmark of the kernel on an SMA cross) give the plain path's results, in any parameter order, and the fused sweep the batched engine's (the optimizer's path).

Plain path: features.sma -> signals.crossed_above/below -> engine.simulate(direction="long")
-> metrics.compute, on real BTCUSDT 1h bars (tick-rounded prices; none of the windows below
meets an exact close == SMA tie in this slice, so both paths must agree exactly on fills).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import catalogue
from backtest.config.execution import ExecutionConfig
from backtest.engine import simulate as engine
from backtest.engine.batch import RangeEngine
from backtest.engine.batch_kernels import T_OPEN, T_TRADES
from backtest.errors import StrategyError
from backtest.features import indicators as features
from backtest.features import levels as signals
from backtest.metrics import performance as metrics
from backtest.types import Signals
from scripts.bundle_datasets import shared_data_dir
from tests.bench import sweep

HOURLY = str(shared_data_dir() / "btcusdt_1h.csv")
WINDOWS = [3, 24, 100, 250]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = pd.read_csv(HOURLY, index_col="timestamp", nrows=3000)
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame.astype("float64")


def plain(bars: pd.DataFrame, window: int, ex: ExecutionConfig):
    sma = features.sma(bars["close"], window)
    sig = Signals(signals.crossed_above(bars["close"], sma),
                  signals.crossed_below(bars["close"], sma))
    result = engine.simulate(bars, sig, ex, "1h")
    return result, metrics.compute(result, "1h")


def execution(fill: str, kernel: str = "rust") -> ExecutionConfig:
    return ExecutionConfig(init_cash=10_000.0, fee_rate=0.001, slippage_rate=0.0005, fill=fill,
                           direction="long", engine=kernel)


@pytest.mark.parametrize("kernel", ["rust", "numba"])
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_fused_sweep_equals_plain_path(bars: pd.DataFrame, fill: str, kernel: str) -> None:
    ex = execution(fill, kernel)
    fast = sweep.sma_cross_sweep(bars["open"], bars["close"], WINDOWS, ex, "1h")
    assert fast["window"].tolist() == WINDOWS
    for row, window in enumerate(WINDOWS):
        result, expected = plain(bars, window, ex)
        assert fast["n_trades"][row] == expected["n_trades"] > 5
        assert fast["open_at_end"][row] == (result.trades["status"] == "open").any()
        assert fast["final_equity"][row] == pytest.approx(result.equity.iloc[-1], rel=1e-10)
        for key in catalogue.METRIC_KEYS:
            value = fast[key][row]
            if expected[key] is None:
                assert np.isnan(value), key
            else:
                assert value == pytest.approx(expected[key], rel=1e-8), key


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_columns_path_equals_plain_path(bars: pd.DataFrame, fill: str) -> None:
    ex = execution(fill)
    cols = sweep.sma_cross_columns(bars["open"], bars["high"], bars["low"], bars["close"],
                                   WINDOWS, ex)
    for row, window in enumerate(WINDOWS):
        result, _ = plain(bars, window, ex)
        assert cols["n_trades"][row] == len(result.trades)  # incl. one still open
        assert cols["final_equity"][row] == pytest.approx(result.equity.iloc[-1], rel=1e-10)
        assert cols["fees"][row] == pytest.approx(result.trades["fees"].sum(), rel=1e-10)


def test_hand_computed_round_trip() -> None:
    # close 10, 9, 11, 12, 10, 10; SMA(2) = nan, 9.5, 10, 11.5, 11, 10.
    # bar 2: 11 > 10 and 9 <= 9.5 -> buy at 11: size = 100 / (11 * 1.05) = 8.658..., cash 0
    # bar 4: 10 < 11 and 12 >= 11.5 -> sell at 10: cash = size * 10 * 0.95 = 950 / 11.55
    # fees = 100 - 100 / 1.05 (entry) + size * 10 * 0.05 = 50 / 11.55 (exit)
    close = np.array([10.0, 9, 11, 12, 10, 10])
    ex = ExecutionConfig(init_cash=100.0, fee_rate=0.05, fill="close", direction="long")
    out = sweep.sma_cross_sweep(close, close, [2], ex, "1h")
    assert out["final_equity"][0] == pytest.approx(950 / 11.55, rel=1e-12)
    assert out["fees_paid"][0] == pytest.approx(100 - 100 / 1.05 + 50 / 11.55, rel=1e-12)
    assert out["n_trades"][0] == 1 and out["win_rate_pct"][0] == 0.0
    assert not out["open_at_end"][0]
    # in the market at the closes of bars 2 and 3: 2 of 6 bars
    assert out["exposure_pct"][0] == pytest.approx(100 * 2 / 6)


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(list(range(6))))
def test_parameter_order_changes_no_result(bars: pd.DataFrame, order: list[int]) -> None:
    windows = np.array([2, 7, 24, 60, 100, 333])
    ex = execution("next_open")
    args = (bars["open"], bars["close"])
    base = sweep.sma_cross_sweep(*args, windows, ex, "1h")
    shuffled = sweep.sma_cross_sweep(*args, windows[order], ex, "1h")
    pd.testing.assert_frame_equal(shuffled, base.iloc[order].reset_index(drop=True))
    ohlc = (bars["open"], bars["high"], bars["low"], bars["close"])
    cols = sweep.sma_cross_columns(*ohlc, windows, ex)
    cols_shuffled = sweep.sma_cross_columns(*ohlc, windows[order], ex)
    pd.testing.assert_frame_equal(cols_shuffled, cols.iloc[order].reset_index(drop=True))


def test_chunking_changes_no_result(bars: pd.DataFrame) -> None:
    ohlc = (bars["open"], bars["high"], bars["low"], bars["close"])
    ex = execution("close")
    one_by_one = sweep.sma_cross_columns(*ohlc, WINDOWS, ex, max_bytes=1)  # chunks of 1 window
    together = sweep.sma_cross_columns(*ohlc, WINDOWS, ex)
    pd.testing.assert_frame_equal(one_by_one, together)


def test_signals_match_the_plain_signal_helpers(bars: pd.DataFrame) -> None:
    close = bars["close"]
    entries, exits = sweep.sma_cross_signals(close.to_numpy(), np.array(WINDOWS))
    for j, window in enumerate(WINDOWS):
        sma = features.sma(close, window)
        assert (entries[:, j] == signals.crossed_above(close, sma).to_numpy()).all()
        assert (exits[:, j] == signals.crossed_below(close, sma).to_numpy()).all()
    assert entries.flags.f_contiguous and entries.sum() > 100


@pytest.mark.parametrize(("change", "message"), [
    ({"sl_stop": 0.05}, "sweep: execution.sl_stop: expected none (the SMA sweep has no stops), found 0.05"),
    ({"direction": "short"}, "sweep: execution.direction: expected 'long' or 'both' (the SMA sweep is long/flat), found 'short'"),
])
def test_unsupported_execution_is_a_user_error(change: dict, message: str) -> None:
    close = np.arange(1.0, 11.0)
    with pytest.raises(StrategyError) as err:
        sweep.sma_cross_sweep(close, close, [2], ExecutionConfig(**change), "1h")
    assert str(err.value) == message


def test_bad_windows_are_user_errors() -> None:
    close = np.arange(1.0, 11.0)
    with pytest.raises(StrategyError, match="expected windows <= 10 bars, found 11"):
        sweep.sma_cross_sweep(close, close, [2, 11], ExecutionConfig(), "1h")
    with pytest.raises(StrategyError, match="expected a non-empty list of integers >= 1"):
        sweep.sma_cross_sweep(close, close, [0], ExecutionConfig(), "1h")


@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_fused_sweep_equals_the_batched_engine(bars: pd.DataFrame, fill: str) -> None:
    """The fused kernel is a special case of the general batched path (what the optimizer
    runs): the same SMA signal columns through RangeEngine give each window's final equity and
    trade count (a position still open at the end included), and the optimizer's metrics of them
every metric the fused kernel accumulates."""
    ex = execution(fill)
    windows = np.array([2, 7, *WINDOWS, 333])
    fast = sweep.sma_cross_sweep(bars["open"], bars["close"], windows, ex, "1h")
    entries, exits = sweep.sma_cross_signals(bars["close"].to_numpy(), windows)
    columns = [Signals(pd.Series(entries[:, j], index=bars.index),
                       pd.Series(exits[:, j], index=bars.index)) for j in range(len(windows))]
    runs = RangeEngine(bars, 0, [(0, len(bars))], ex, "1h", None).run(columns)
    for j in range(len(windows)):
        equity, position = runs.curve(j, 0)
        assert equity[-1] == pytest.approx(fast["final_equity"][j], rel=1e-10)
        assert runs.totals[j, 0, T_TRADES] == fast["n_trades"][j] > 0
        assert runs.totals[j, 0, T_OPEN] == fast["open_at_end"][j]
        scored = metrics.curve_metrics(equity, metrics.bar_returns(equity, ex.init_cash),
                                       position, metrics.totals_summary(runs.totals[j, 0]),
                                       ex.init_cash, "1h")
        for key in catalogue.METRIC_KEYS:
            if scored[key] is None:
                assert np.isnan(fast[key][j]), key
            else:
                assert scored[key] == pytest.approx(fast[key][j], rel=1e-8), key
