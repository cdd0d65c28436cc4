"""A benchmark of the engine's kernel: one long/flat SMA-cross strategy over many windows.

Not part of the product (no user command reaches it): it measures how fast a columnar search
could go (``make bench``), and ``tests/test_sweep.py`` pins it to the plain path and to the
general batched path the optimizer runs (:class:`backtest.engine.batch.RangeEngine`).

Strategy (the same as the plain path ``features.sma`` + ``signals.crossed_above/below`` +
``engine.simulate`` with ``direction="long"``): enter when the close crosses above its
``w``-bar simple moving average, exit when it crosses below; all-in, fees and slippage and
fills exactly as :mod:`backtest.engine` states them (``fill="close"`` or ``"next_open"``).
Stops are not supported here (the engine's kernel has them; use ``engine.simulate_many``).

Two ways to run it, both without a per-bar Python loop and without pandas in the inner path:

* :func:`sma_cross_sweep` (the hot path): one fused numba kernel, ``prange`` over windows;
  each column keeps a running window sum, its crossover state, the position and the metric
  accumulators, so memory is O(windows) beyond the price arrays (no 2-D array at all).
  Returns every headline metric of :data:`backtest.catalogue.METRIC_KEYS` per window.
* :func:`sma_cross_columns`: 2-D signals from one cumulative sum (:func:`sma_cross_signals`),
  chunked over windows so no chunk exceeds ``max_bytes``, simulated by the engine's
  the engine kernel's :func:`backtest.engine.kernels.simulate_columns_nb`. Slower; kept as the
  generic array path and as
  a cross-check of the fused kernel.

Floating-point note: the moving average is a running (fused) or cumulative (columns) sum, the
plain path uses pandas' rolling mean. They differ by rounding only, so they can disagree only
where the close equals its average to the last bits (possible on tick-rounded prices).

Imports the engine's kernels, config, errors and the catalogue; never vectorbt or optuna.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numba import njit, prange

from backtest.catalogue import METRIC_KEYS, periods_per_year
from backtest.config.execution import ExecutionConfig
from backtest.engine import kernels, layout
from backtest.errors import StrategyError

# slots of the per-window accumulator row written by the fused kernel
(A_FINAL, A_RSUM, A_RSQ, A_DSQ, A_MDD, A_EXPOSED, A_FEES, A_CLOSED, A_WINS, A_GAINS,
 A_LOSSES, A_OPEN) = range(12)
N_ACC = 12
#: bytes per bar x window held at once by :func:`sma_cross_columns` (sma f8, 4 compare masks,
#: entries/exits and the two all-False short arrays)
_BYTES_PER_CELL = 16


def _check_execution(execution: ExecutionConfig) -> None:
    """The sweep is long/flat without stops; anything else is a config the user can fix."""
    for key in ("sl_stop", "tp_stop", "tsl_stop"):
        if getattr(execution, key) is not None:
            raise StrategyError(f"sweep: execution.{key}: expected none (the SMA sweep has no "
                                f"stops), found {getattr(execution, key)}")
    if execution.direction == "short":
        raise StrategyError("sweep: execution.direction: expected 'long' or 'both' (the SMA "
                            "sweep is long/flat), found 'short'")


def _windows(windows: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    w = np.asarray(windows)
    if w.ndim != 1 or w.size == 0 or not np.issubdtype(w.dtype, np.integer) or (w < 1).any():
        raise StrategyError(f"sweep: windows: expected a non-empty list of integers >= 1, "
                            f"found {np.asarray(windows).tolist()[:5]}")
    if w.max() > n:
        raise StrategyError(f"sweep: windows: expected windows <= {n} bars, found {w.max()}")
    return w.astype(np.int64)


def _column(values: pd.Series | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64))


@njit(cache=True)
def _fill_nb(sig: int, base: float, cash: float, pos: float, entry_cost: float, fee: float,
             slip: float) -> tuple[float, float, float, float, float]:
    """All-in buy (``sig`` > 0) or full sell at ``base`` moved by the slippage, as the engine
    does it; returns cash, position, entry cost (incl. fees), this order's fees and the pnl
    of the trade it closed (0 for a buy)."""
    if sig > 0:
        px = base * (1.0 + slip)
        size = cash / (px * (1.0 + fee))
        f = size * px * fee
        return cash - size * px - f, size, size * px + f, f, 0.0
    px = base * (1.0 - slip)
    f = pos * px * fee
    return cash + pos * px - f, 0.0, 0.0, f, pos * px - f - entry_cost


@njit(cache=True)
def _book_nb(acc_row: np.ndarray, pnl: float) -> None:
    """Count one closed trade's pnl into a window's accumulators."""
    acc_row[A_CLOSED] += 1.0
    acc_row[A_WINS] += pnl > 0.0
    acc_row[A_GAINS] += max(pnl, 0.0)
    acc_row[A_LOSSES] += max(-pnl, 0.0)


@njit(cache=True, parallel=True)
def _sma_cross_nb(open_: np.ndarray, close: np.ndarray, windows: np.ndarray, init_cash: float,
                  fee: float, slip: float, fill_close: bool, acc: np.ndarray) -> None:
    """Fused indicator + crossover + long/flat simulation + metric accumulators, per window.

    ``acc[c]`` receives the slots ``A_*`` for ``windows[c]``. Equity is marked at each close;
    bar returns are ``equity[i] / equity[i-1] - 1`` with ``equity[-1] = init_cash``. A flat
    bar without an order leaves equity unchanged (return 0), so its metric work is skipped;
    bar 0 never trades (no average crossed yet), so the first equity peak is ``init_cash``.
    """
    n = close.shape[0]
    for c in prange(windows.shape[0]):
        w = windows[c]
        cash, pos, entry_cost = init_cash, 0.0, 0.0
        fees = 0.0
        exposed = 0
        a = acc[c]
        a[A_CLOSED] = a[A_WINS] = a[A_GAINS] = a[A_LOSSES] = 0.0
        s = 0.0
        prev_le = prev_ge = False  # close <= / >= its average on the previous bar
        pending = 0  # next_open: +1 buy / -1 sell decided at the previous close
        prev_eq, peak, mdd = init_cash, init_cash, 0.0
        rsum = rsq = dsq = 0.0
        for i in range(n):
            x = close[i]
            traded = pending != 0
            if traded:  # next_open fill of the previous bar's signal
                cash, pos, entry_cost, f, pnl = _fill_nb(pending, open_[i], cash, pos,
                                                         entry_cost, fee, slip)
                fees += f
                if pending < 0:
                    _book_nb(a, pnl)
                pending = 0
            s += x
            if i >= w:
                s -= close[i - w]
            if i >= w - 1:
                m = s / w
                sig = 0
                if x > m and prev_le and pos == 0.0:
                    sig = 1
                elif x < m and prev_ge and pos > 0.0:
                    sig = -1
                prev_le, prev_ge = x <= m, x >= m
                if sig != 0 and not fill_close:
                    pending = sig if i + 1 < n else 0
                elif sig != 0:
                    traded = True
                    cash, pos, entry_cost, f, pnl = _fill_nb(sig, x, cash, pos, entry_cost,
                                                             fee, slip)
                    fees += f
                    if sig < 0:
                        _book_nb(a, pnl)
            if pos == 0.0 and not traded:
                continue
            exposed += pos != 0.0
            eq = cash + pos * x
            r = eq / prev_eq - 1.0
            rsum += r
            rsq += r * r
            dsq += min(r, 0.0) ** 2
            if eq > peak:
                peak = eq
            elif eq < peak * (1.0 - mdd):
                mdd = 1.0 - eq / peak
            prev_eq = eq
        a[A_FINAL], a[A_RSUM], a[A_RSQ], a[A_DSQ], a[A_MDD] = prev_eq, rsum, rsq, dsq, mdd
        a[A_EXPOSED], a[A_FEES], a[A_OPEN] = exposed, fees, pos != 0.0


def _none_to_nan(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Values where ``ok`` and finite, NaN elsewhere (``metrics`` says None there)."""
    with np.errstate(all="ignore"):
        return np.where(ok & np.isfinite(values), values, np.nan)


def _metrics_frame(acc: np.ndarray, n: int, init_cash: float, freq: str) -> pd.DataFrame:
    """The :data:`METRIC_KEYS` of every window from the accumulators, as
    :func:`backtest.metrics.compute` defines them (NaN where it returns None)."""
    ppy = periods_per_year(freq)
    growth = acc[:, A_FINAL] / init_cash
    mdd = acc[:, A_MDD]
    closed = acc[:, A_CLOSED]
    with np.errstate(all="ignore"):
        log_cagr = np.where(growth > 0, np.log(growth) / (n / ppy), -np.inf)
        cagr = np.where(log_cagr < 700, np.expm1(log_cagr), np.inf)
        mean = acc[:, A_RSUM] / n
        var = (acc[:, A_RSQ] - acc[:, A_RSUM] * mean) / (n - 1) if n > 1 else np.zeros(len(acc))
        std = np.sqrt(np.maximum(var, 0.0))
        downside = np.sqrt(acc[:, A_DSQ] / n)
        return pd.DataFrame({
            "total_return_pct": 100.0 * (growth - 1.0),
            "cagr_pct": _none_to_nan(100.0 * cagr, np.ones(len(acc), dtype=bool)),
            "sharpe": _none_to_nan(mean / std * math.sqrt(ppy), std > 0),
            "sortino": _none_to_nan(mean / downside * math.sqrt(ppy), downside > 0),
            "calmar": _none_to_nan(cagr / mdd, (mdd > 0) & np.isfinite(cagr)),
            "max_drawdown_pct": 100.0 * mdd,
            "n_trades": (closed + acc[:, A_OPEN]).astype(np.int64),
            "n_closed_trades": closed.astype(np.int64),
            "n_open_trades": acc[:, A_OPEN].astype(np.int64),
            "win_rate_pct": _none_to_nan(100.0 * acc[:, A_WINS] / closed, closed > 0),
            "exposure_pct": 100.0 * acc[:, A_EXPOSED] / n,
            "profit_factor": _none_to_nan(acc[:, A_GAINS] / acc[:, A_LOSSES],
                                          acc[:, A_LOSSES] > 0),
            "fees_paid": acc[:, A_FEES],
        }, columns=list(METRIC_KEYS))


def sma_cross_sweep(open_: pd.Series | np.ndarray, close: pd.Series | np.ndarray,
                    windows: Sequence[int] | np.ndarray, execution: ExecutionConfig,
                    freq: str) -> pd.DataFrame:
    """Every headline metric of the SMA-cross strategy for each window, one fused pass each.

    Returns one row per window in the given order: ``window``, ``final_equity``,
    ``open_at_end`` (a position still open at the last bar) and the
    :data:`backtest.catalogue.METRIC_KEYS` (``n_trades`` counts closed trades and a position
    open at the end, as :func:`backtest.metrics.compute` does; NaN where it would return None).
    """
    _check_execution(execution)
    c = _column(close)
    w = _windows(windows, len(c))
    acc = np.empty((len(w), N_ACC))
    _sma_cross_nb(_column(open_), c, w, float(execution.init_cash), execution.fee_rate,
                  execution.slippage_rate, execution.fill == "close", acc)
    out = _metrics_frame(acc, len(c), float(execution.init_cash), freq)
    out.insert(0, "open_at_end", acc[:, A_OPEN] > 0)
    out.insert(0, "final_equity", acc[:, A_FINAL])
    out.insert(0, "window", w)
    return out


def sma_cross_signals(close: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries and exits (n, k) of the SMA cross for each window, from one cumulative sum.

    Same definition as ``signals.crossed_above/below(close, features.sma(close, w))``: a NaN
    average (the first ``w - 1`` bars) never crosses. Fortran order: one column per window.
    """
    n, k = len(close), len(windows)
    cs = np.concatenate(([0.0], np.cumsum(close)))
    sma = np.full((n, k), np.nan, order="F")
    for j, w in enumerate(windows):  # one vectorized column per window, no per-bar loop
        sma[w - 1:, j] = (cs[w:] - cs[:-w]) / w
    col = close[:, None]
    above, below = col > sma, col < sma
    at_most, at_least = col <= sma, col >= sma
    entries = np.zeros((n, k), dtype=bool, order="F")
    exits = np.zeros((n, k), dtype=bool, order="F")
    np.logical_and(above[1:], at_most[:-1], out=entries[1:])
    np.logical_and(below[1:], at_least[:-1], out=exits[1:])
    return entries, exits


def sma_cross_columns(open_: pd.Series | np.ndarray, high: pd.Series | np.ndarray,
                      low: pd.Series | np.ndarray, close: pd.Series | np.ndarray,
                      windows: Sequence[int] | np.ndarray, execution: ExecutionConfig,
                      max_bytes: int = 256 * 2**20) -> pd.DataFrame:
    """The SMA cross through 2-D signals and ``kernels.simulate_columns_nb`` (spot, all-in),
    chunked.

    Windows are processed in chunks of at most ``max_bytes // (16 * n)`` columns (at least
    one), so peak memory stays near ``max_bytes`` whatever the number of windows. Returns
    ``window, final_equity, n_trades`` (incl. a trade still open at the end) ``, fees``.
    """
    _check_execution(execution)
    o, h, lo, c = (_column(a) for a in (open_, high, low, close))
    n = len(c)
    w = _windows(windows, n)
    chunk = max(1, max_bytes // (_BYTES_PER_CELL * n))
    nan_levels = np.full((n, 1), np.nan, order="F")
    none = np.zeros(n)
    mk = layout.Market(o, h, lo, c, kernels.fixed_slip_nb(execution.slippage_rate), none, none,
                        np.empty(0))
    final, n_trades, fees = np.empty(len(w)), np.empty(len(w), dtype=np.int64), np.empty(len(w))
    for start in range(0, len(w), chunk):
        part = w[start:start + chunk]
        entries, exits = sma_cross_signals(c, part)
        off = np.zeros_like(entries)
        terms = layout.terms_record(len(part))
        terms["init_cash"] = execution.init_cash
        terms["fee"] = execution.fee_rate
        terms["sl"] = terms["tp"] = terms["tsl"] = np.nan
        terms["direction"] = layout.DIR_LONG
        terms["fill_close"] = execution.fill == "close"
        terms["notional_cap"] = np.inf
        got = kernels.simulate_columns_nb(mk, entries, exits, off, off, nan_levels, nan_levels,
                                          nan_levels, terms, np.empty((0, 4)))
        sl = slice(start, start + len(part))
        final[sl], n_trades[sl], fees[sl] = got[:3]
    return pd.DataFrame({"window": w, "final_equity": final, "n_trades": n_trades,
                         "fees": fees})


def warm() -> None:
    """Compile and cache the sweep kernels (``backtest.warmup`` calls this at install)."""
    close = np.array([100.0, 101, 99, 98, 102, 103, 101, 100, 104, 99])
    for fill in ("next_open", "close"):
        ex = ExecutionConfig(fill=fill, direction="long")
        sma_cross_sweep(close, close, [2, 3], ex, "1h")
        sma_cross_columns(close, close + 1, close - 1, close, [2, 3], ex)
