"""Candle-table scenarios pinning the execution convention of backtest.engine, plus the seed
replay on real BTCUSDT daily bars. init_cash 1000, fees and slippage 0 unless stated."""

from __future__ import annotations

import pandas as pd
import pytest

from backtest.config.execution import ExecutionConfig
from backtest.engine.simulate import ENGINE_KERNEL, simulate
from scripts.bundle_datasets import shared_data_dir
from tests.scenarios import candles, signals

DAILY = shared_data_dir() / "btcusdt_1d.csv"


def run(bars, sig, **kwargs):
    kwargs = {"init_cash": 1000.0, "fee_rate": 0.0, **kwargs}
    return simulate(bars, sig, ExecutionConfig(**kwargs), "1h")


BASIC = candles([
    (100, 101, 99, 100),   # 0 signal: long entry (close 100)
    (102, 104, 101, 103),  # 1 fill at open 102
    (103, 106, 102, 105),  # 2 signal: long exit (close 105)
    (104, 105, 103, 104),  # 3 exit fills at open 104
])


def test_next_open_fill_both_engines():
    for engine in ("rust", "numba"):
        res = run(BASIC, signals(BASIC, long_entries=[0], long_exits=[2]), engine=engine)
        (trade,) = res.trades.itertuples()
        assert (trade.entry_time, trade.entry_price) == (BASIC.index[1], 102.0)
        assert (trade.exit_time, trade.exit_price, trade.exit_reason) == (BASIC.index[3], 104.0,
                                                                          "signal")
        # 1000 / 102 units, marked at close 103 on bar 1; sold at 104 -> 1000 * 104 / 102
        assert res.equity.iloc[1] == pytest.approx(1000 / 102 * 103)
        assert res.equity.iloc[-1] == pytest.approx(1019.6078431372549)
        assert res.position.iloc[0] == 0.0 and res.position.iloc[1] == pytest.approx(1000 / 102)


def test_close_fill():
    res = run(BASIC, signals(BASIC, long_entries=[0], long_exits=[2]), fill="close")
    (trade,) = res.trades.itertuples()
    # buys at close 100 of bar 0, sells at close 105 of bar 2: 1000 * 105 / 100 = 1050
    assert (trade.entry_time, trade.entry_price, trade.exit_price) == (BASIC.index[0], 100.0, 105.0)
    assert res.equity.iloc[-1] == pytest.approx(1050.0)


def test_fees_on_both_legs():
    res = run(BASIC, signals(BASIC, long_entries=[0], long_exits=[2]), fee_rate=0.001)
    # size = 1000 / (102 * 1.001) = 9.794128...; entry fee = size * 102 * 0.001 = 0.999001
    # exit: size * 104 = 1018.5893 gross, fee 1.0185893 -> cash 1017.5707 = 1000*104*0.999/102.102
    size = 1000 / (102 * 1.001)
    assert res.trades["size"].iloc[0] == pytest.approx(size)
    assert res.orders["fees"].tolist() == pytest.approx([size * 102 * 0.001, size * 104 * 0.001])
    assert res.trades["fees"].iloc[0] == pytest.approx(0.999000999 + 1.018589315)
    assert res.equity.iloc[-1] == pytest.approx(1017.5706646)
    # pnl = size * (104 - 102) - fees = 19.588257 - 2.017590 = 17.570665
    assert res.trades["pnl"].iloc[0] == pytest.approx(17.5706646)


def test_slippage_moves_both_fills_against_the_trader():
    res = run(BASIC, signals(BASIC, long_entries=[0], long_exits=[2]), slippage_rate=0.01)
    # buy at 102 * 1.01 = 103.02, sell at 104 * 0.99 = 102.96 -> 1000 * 102.96 / 103.02
    assert res.orders["price"].tolist() == pytest.approx([103.02, 102.96])
    assert res.equity.iloc[-1] == pytest.approx(999.4175888)


STOP_BARS = candles([
    (100, 100, 100, 100),  # 0 signal: long entry
    (100, 102, 98, 101),   # 1 fill at open 100; stop 95 not touched (low 98)
    (100, 101, 94, 96),    # 2 low 94 touches the stop 95 -> exit at 95
    (96, 97, 95, 96),      # 3
])


def test_long_stop_hit_intra_bar_uses_the_signal_bar_level():
    # the level comes from the signal bar 0 (95); bar 1's 99 is ignored (low 98 would hit it)
    sig = signals(STOP_BARS, long_entries=[0], stop_price={0: 95.0, 1: 99.0})
    res = run(STOP_BARS, sig)
    assert res.engine == ENGINE_KERNEL
    (trade,) = res.trades.itertuples()
    assert (trade.exit_time, trade.exit_price, trade.exit_reason) == (STOP_BARS.index[2], 95.0,
                                                                      "stop")
    assert res.equity.iloc[-1] == pytest.approx(950.0)  # 10 units * 95


def test_gap_down_through_stop_fills_at_open():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal
        (100, 102, 98, 101),   # 1 fill at open 100, sl_stop 5% -> stop 95
        (93, 94, 90, 92),      # 2 gap through stop: opens at 93 < 95 -> exit at the open 93
    ])
    res = run(bars, signals(bars, long_entries=[0]), sl_stop=0.05)
    assert res.trades[["exit_price", "exit_reason"]].iloc[0].tolist() == [93.0, "stop"]
    assert res.equity.iloc[-1] == pytest.approx(930.0)


def test_take_profit_in_the_entry_bar():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal
        (100, 112, 99, 111),   # 1 fill at open 100; high 112 reaches tp 110 in the same bar
        (111, 113, 110, 112),  # 2
    ])
    res = run(bars, signals(bars, long_entries=[0]), tp_stop=0.10)
    (trade,) = res.trades.itertuples()
    assert (trade.entry_time, trade.exit_time) == (bars.index[1], bars.index[1])
    assert (trade.exit_price, trade.exit_reason) == (pytest.approx(110.0), "target")
    assert res.position.iloc[1] == 0.0 and res.equity.iloc[-1] == pytest.approx(1100.0)


def test_stop_and_target_in_one_bar_assumes_the_stop():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal
        (100, 111, 94, 100),   # 1 fill at 100; touches both tp 110 and sl 95 -> stop 95
    ])
    res = run(bars, signals(bars, long_entries=[0]), sl_stop=0.05, tp_stop=0.10)
    assert res.trades[["exit_price", "exit_reason"]].iloc[0].tolist() == [95.0, "stop"]


def test_gap_beyond_target_fills_target_at_open_even_if_low_touches_stop():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal
        (100, 101, 99, 100),   # 1 fill at 100 (sl 95, tp 110)
        (112, 113, 94, 95),    # 2 opens at 112 beyond the target: the open came first -> 112
    ])
    res = run(bars, signals(bars, long_entries=[0]), sl_stop=0.05, tp_stop=0.10)
    assert res.trades[["exit_price", "exit_reason"]].iloc[0].tolist() == [112.0, "target"]


SHORT_BARS = candles([
    (100, 100, 100, 100),  # 0 signal: short entry, stop 104, target 90
    (100, 103, 97, 98),    # 1 short 10 units at open 100; neither level touched
    (97, 98, 89, 91),      # 2 low 89 reaches the target 90
])


def test_short_target():
    sig = signals(SHORT_BARS, short_entries=[0], stop_price={0: 104.0}, target_price={0: 90.0})
    res = run(SHORT_BARS, sig)
    # sold 10 at 100 -> cash 2000; bought back 10 at 90 -> 2000 - 900 = 1100
    assert res.position.iloc[1] == pytest.approx(-10.0)
    assert res.trades[["direction", "exit_price", "exit_reason"]].iloc[0].tolist() == [
        "short", 90.0, "target"]
    assert res.equity.iloc[-1] == pytest.approx(1100.0)


def test_short_stop():
    bars = SHORT_BARS.copy()
    bars.iloc[2] = [101, 105, 99, 104, 1.0]  # 2 high 105 touches the stop 104
    sig = signals(bars, short_entries=[0], stop_price={0: 104.0}, target_price={0: 90.0})
    res = run(bars, sig)
    # cash 2000 - 10 * 104 = 960
    assert res.trades[["exit_price", "exit_reason"]].iloc[0].tolist() == [104.0, "stop"]
    assert res.equity.iloc[-1] == pytest.approx(960.0)


def test_trailing_stop_entry_bar_high_counts_from_the_next_bar():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal
        (100, 120, 105, 115),  # 1 fill at 100; checked against 100 * 0.9 = 90 (low 105: no exit);
        #                        if the high 120 counted already, 108 would have been hit
        (114, 116, 107, 110),  # 2 level now 120 * 0.9 = 108; low 107 touches it -> exit at 108
    ])
    res = run(bars, signals(bars, long_entries=[0]), tsl_stop=0.10)
    assert res.position.iloc[1] == pytest.approx(10.0)
    (trade,) = res.trades.itertuples()
    assert (trade.exit_time, trade.exit_price, trade.exit_reason) == (
        bars.index[2], pytest.approx(108.0), "trailing")


def test_reversal_closes_and_opens_the_other_side():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal: long entry
        (100, 101, 99, 100),   # 1 buy 10 at 100
        (108, 111, 107, 110),  # 2 signal: short entry
        (110, 112, 104, 106),  # 3 sell 10 at 110 (cash 1100), then short 1100/110 = 10 (cash 2200)
        (106, 107, 104, 105),  # 4 equity 2200 - 10 * 105 = 1150
    ])
    for engine in ("rust", "numba"):
        res = run(bars, signals(bars, long_entries=[0], short_entries=[2]), engine=engine)
        assert res.trades["direction"].tolist() == ["long", "short"]
        assert res.trades["status"].tolist() == ["closed", "open"]
        assert res.orders[["side", "size", "price"]].values.tolist() == [
            ["buy", 10.0, 100.0], ["sell", 10.0, 110.0], ["sell", 10.0, 110.0]]
        assert res.position.iloc[-1] == pytest.approx(-10.0)
        assert res.equity.iloc[-1] == pytest.approx(1150.0)


def test_last_bar_signal_is_not_filled():
    res = run(BASIC, signals(BASIC, long_entries=[3]))
    assert res.trades.empty and res.orders.empty
    assert res.equity.tolist() == [1000.0] * 4


def test_open_position_at_end_is_valued_at_last_close():
    res = run(BASIC, signals(BASIC, long_entries=[0]), fee_rate=0.001)
    (trade,) = res.trades.itertuples()
    assert (trade.status, trade.exit_reason, trade.exit_price) == ("open", "end", 104.0)
    # size 1000/(102*1.001); no exit fee: pnl = size * (104 - 102) - 0.999001 = 18.589256
    assert trade.pnl == pytest.approx(18.5892560)
    assert res.equity.iloc[-1] == pytest.approx(1000 / (102 * 1.001) * 104)


def test_entry_fraction_tranches():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal: long entry, fraction 0.6
        (100, 126, 99, 125),   # 1 spend 600 at 100 -> 6 units, cash 400; signal again (0.6)
        (125, 126, 120, 121),  # 2 spend min(600, 400) = 400 at 125 -> 3.2 units; signal: exit
        (120, 121, 119, 120),  # 3 sell 9.2 at 120 -> 1104
    ])
    sig = signals(bars, long_entries=[0, 1], long_exits=[2], entry_fraction={0: 0.6, 1: 0.6})
    res = run(bars, sig)
    assert res.orders["size"].tolist() == pytest.approx([6.0, 3.2, 9.2])
    (trade,) = res.trades.itertuples()
    # one position: entry at the first fill time, mean entry price 1000 / 9.2 = 108.6957
    assert (trade.entry_time, trade.size) == (bars.index[1], pytest.approx(9.2))
    assert trade.entry_price == pytest.approx(1000 / 9.2)
    assert res.equity.iloc[-1] == pytest.approx(1104.0)


def test_direction_long_ignores_short_signals():
    res = run(BASIC, signals(BASIC, short_entries=[0]), direction="long")
    assert res.trades.empty and res.equity.iloc[-1] == 1000.0
    res = run(BASIC, signals(BASIC, short_entries=[0]), direction="both")
    assert res.trades["direction"].tolist() == ["short"]


def test_no_reentry_on_the_stop_bar_with_close_fills():
    bars = candles([
        (100, 100, 100, 100),  # 0 signal -> buy 10 at the close 100 (sl 5% -> 95)
        (100, 101, 94, 97),    # 1 stop at 95; the long signal at this close is dropped
        (97, 99, 96, 98),      # 2 signal -> buys again at the close 98
    ])
    for engine in ("rust", "numba"):
        res = run(bars, signals(bars, long_entries=[0, 1, 2]), fill="close", sl_stop=0.05,
                  engine=engine)
        assert res.trades["exit_reason"].tolist() == ["stop", "end"]
        assert res.trades["entry_time"].tolist() == [bars.index[0], bars.index[2]]


def daily_bars() -> pd.DataFrame:
    """Real BTCUSDT daily bars (read directly until the data layer lands)."""
    bars = pd.read_csv(DAILY, index_col="timestamp")
    bars.index = pd.to_datetime(bars.index, utc=True)
    return bars.astype("float64")


def test_seed_replay_short_target_inside_the_fill_bar():
    bars = daily_bars().loc["2026-01-01":]
    below = bars.index[bars["close"] < 74_400]
    assert below[0] == pd.Timestamp("2026-02-04", tz="UTC")
    assert bars.loc[below[0], "close"] == 73_165.83
    t = bars.index.get_loc(below[0])
    sig = signals(bars, short_entries=[t], stop_price={t: 76_000.0},
                  target_price={t: 66_000.0})
    res = simulate(bars, sig, ExecutionConfig(fee_rate=0.0, slippage_rate=0.0), "1D")
    trade = res.trades.iloc[0]
    assert trade["entry_time"] == trade["exit_time"] == pd.Timestamp("2026-02-05", tz="UTC")
    assert (trade["entry_price"], trade["exit_price"]) == (73_165.84, 66_000.0)
    assert trade["exit_reason"] == "target" and bars.loc["2026-02-05", "low"].item() == 62_345.0
    # 100000 / 73165.84 units short, bought back at 66000: 100000 * (1 + 7165.84 / 73165.84)
    assert res.equity.iloc[-1] == pytest.approx(100_000 * (2 - 66_000 / 73_165.84))
