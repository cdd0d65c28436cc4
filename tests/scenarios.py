"""Candle-table builder for engine scenario tests: a few OHLC rows -> Bars and Signals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from backtest.types import Bars, Signals


def candles(rows: Iterable[tuple[float, float, float, float]], freq: str = "1h") -> Bars:
    """Bars from ``(open, high, low, close)`` rows, hourly from 2024-01-01 UTC, volume 1."""
    frame = pd.DataFrame(list(rows), columns=["open", "high", "low", "close"], dtype=np.float64)
    frame.index = pd.date_range("2024-01-01", periods=len(frame), freq=freq, tz="UTC",
                                name="timestamp")
    frame["volume"] = 1.0
    return frame


def signals(bars: Bars, long_entries: Iterable[int] = (), long_exits: Iterable[int] = (),
            short_entries: Iterable[int] = (), short_exits: Iterable[int] = (),
            stop_price: Mapping[int, float] | None = None,
            target_price: Mapping[int, float] | None = None,
            entry_fraction: Mapping[int, float] | None = None,
            max_bars_held: int | None = None) -> Signals:
    """Signals with True at the given bar positions and levels at the given positions."""

    def flags(positions: Iterable[int]) -> pd.Series:
        out = np.zeros(len(bars), dtype=bool)
        out[list(positions)] = True
        return pd.Series(out, index=bars.index)

    def levels(values: Mapping[int, float] | None) -> pd.Series | None:
        if values is None:
            return None
        out = np.full(len(bars), np.nan)
        out[list(values)] = list(values.values())
        return pd.Series(out, index=bars.index)

    return Signals(long_entries=flags(long_entries), long_exits=flags(long_exits),
                   short_entries=flags(short_entries), short_exits=flags(short_exits),
                   stop_price=levels(stop_price), target_price=levels(target_price),
                   entry_fraction=levels(entry_fraction), max_bars_held=max_bars_held)


def ramp(n: int) -> Bars:
    """``n`` candles whose open is 100 + i (bar i), close open + 0.5, high/low open -+ 1: every
    fill price names the bar it happened in."""
    return candles((100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i) for i in range(n))


def random_candles(rng: np.random.Generator, n: int, vol: float, gap: float,
                   wick: float) -> pd.DataFrame:
    """A random walk of ``n`` candles from 100: log-return sd ``vol`` per bar, opens gapping
    by sd ``gap`` from the previous close, wicks exponential with mean ``wick`` (fractions)."""
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, gap, n))
    high = np.maximum(open_, close) * (1 + rng.exponential(wick, n))
    low = np.minimum(open_, close) * (1 - rng.exponential(wick, n))
    return candles(zip(open_, high, low, close, strict=True))
