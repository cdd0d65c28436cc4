"""The same long/flat SMA-cross strategy through every peer, for the benchmarks.

Strategy: enter when the close crosses above its SMA, exit when it crosses below; long only,
all-in, 0.1% fee per side, no slippage. ONE fill convention for every peer: an order decided
at a bar's close fills at that same close (crashbt ``fill="close"``, vectorbt's default
``price=close``, backtesting.py ``trade_on_close=True``, the numba loops written that way).
Every peer runs from the close array to its final equity (indicator, crossovers, simulation);
crashbt's single run also computes its full metrics. Each function returns
``(entries, final_equity)`` so the benchmarks can assert that every peer made the same fills.

Initial cash is crashbt's maximum (1e15): the strategy loses ~0.2% per round trip, so a small
account shrinks below vectorbt's 1e-12 size floor or backtesting.py's whole units and stops
trading. crashbt (min_size=0) and the numba loops keep trading from 1e15; raw vectorbt starts
from 1e300 (as in the baseline) and backtesting.py runs at 100k only, where 1e15 is enough.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit, prange

WINDOW = 100
FEE = 0.001
CASH = 1e15
RAW_CASH = 1e300  # vectorbt raw: below a 1e-12 size it stops trading (25k of 27k entries at 1M)
FREQ = "1min"


def crashbt_single(bars: pd.DataFrame) -> tuple[int, float]:
    """crashbt's public API: features -> signals -> engine.simulate -> metrics.compute."""
    from backtest.config.execution import ExecutionConfig
    from backtest.engine import simulate as engine
    from backtest.features import indicators as features
    from backtest.features import levels as signals
    from backtest.metrics import performance as metrics
    from backtest.types import Signals

    sma = features.sma(bars["close"], WINDOW)
    sig = Signals(signals.crossed_above(bars["close"], sma),
                  signals.crossed_below(bars["close"], sma))
    ex = ExecutionConfig(init_cash=CASH, fee_rate=FEE, fill="close", direction="long")
    result = engine.simulate(bars, sig, ex, FREQ)
    metrics.compute(result, FREQ)
    return int((result.trades["direction"] == "long").sum()), float(result.equity.iloc[-1])


def vbt_single(close: pd.Series, engine: str) -> tuple[int, float]:
    """Raw vectorbt 1.2: MA.run + crossovers + Portfolio.from_signals on a tz-naive index."""
    import vectorbt as vbt

    ma = vbt.MA.run(close, WINDOW)
    entries, exits = ma.close_crossed_above(ma.ma), ma.close_crossed_below(ma.ma)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=FEE, init_cash=RAW_CASH,
                                    size=np.inf, freq=FREQ, engine=engine)
    return int((pf.orders.values["side"] == 0).sum()), float(pf.final_value())


def backtesting_single(bars: pd.DataFrame) -> tuple[int, float]:
    """backtesting.py 0.6.6 with ``trade_on_close=True`` (fills at the signal bar's close)."""
    from backtesting import Backtest, Strategy

    class SmaCross(Strategy):
        def init(self) -> None:
            close = pd.Series(self.data.Close)
            self.sma = self.I(lambda: close.rolling(WINDOW).mean().to_numpy())

        def next(self) -> None:
            c, m = self.data.Close, self.sma
            if len(c) < 2 or np.isnan(m[-2]):
                return
            if not self.position and c[-1] > m[-1] and c[-2] <= m[-2]:
                self.buy(size=1 - 1e-12)
            elif self.position and c[-1] < m[-1] and c[-2] >= m[-2]:
                self.position.close()

    frame = bars.rename(columns=str.capitalize).tz_localize(None)
    bt = Backtest(frame, SmaCross, cash=CASH, commission=FEE, trade_on_close=True,
                  finalize_trades=True)
    stats = bt.run()
    return len(stats["_trades"]), float(stats["Equity Final [$]"])


@njit(cache=True)
def numba_single(close: np.ndarray, window: int, fee: float, cash: float) -> tuple[int, float]:
    """The ceiling: running-sum SMA, crossover and all-in position in one pass, no arrays."""
    s, pos, entries = 0.0, 0.0, 0
    prev_le = prev_ge = False
    for i in range(close.shape[0]):
        x = close[i]
        s += x
        if i >= window:
            s -= close[i - window]
        if i >= window - 1:
            m = s / window
            if pos == 0.0 and x > m and prev_le:
                pos = cash / (x * (1.0 + fee))
                cash -= pos * x * (1.0 + fee)
                entries += 1
            elif pos > 0.0 and x < m and prev_ge:
                cash += pos * x * (1.0 - fee)
                pos = 0.0
            prev_le, prev_ge = x <= m, x >= m
    return entries, cash + pos * close[-1]


@njit(cache=True, parallel=True)
def numba_sweep(close: np.ndarray, windows: np.ndarray, fee: float,
                cash: float) -> tuple[np.ndarray, np.ndarray]:
    """The sweep ceiling: :func:`numba_single` for every window, ``prange`` over windows."""
    k = windows.shape[0]
    entries, final = np.empty(k, dtype=np.int64), np.empty(k)
    for j in prange(k):
        entries[j], final[j] = numba_single(close, windows[j], fee, cash)
    return entries, final


def vbt_sweep(close: pd.Series, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """vectorbt broadcasting: one MA.run over all windows + one from_signals (Rust)."""
    import vectorbt as vbt

    ma = vbt.MA.run(close, list(windows))
    entries, exits = ma.close_crossed_above(ma.ma), ma.close_crossed_below(ma.ma)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=FEE, init_cash=RAW_CASH,
                                    size=np.inf, freq=FREQ, engine="rust")
    return entries.sum().to_numpy(), pf.final_value().to_numpy()


def naive(bars: pd.DataFrame) -> pd.Series:
    """The close on a tz-naive index: vectorbt is ~75x slower on a tz-aware one."""
    return bars["close"].tz_localize(None)
