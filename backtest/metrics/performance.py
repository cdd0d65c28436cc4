"""Performance metrics as pure functions of a simulation's records.

Units live in the key names: ``*_pct`` are percentages (12.5 means 12.5 %), money is in the quote
currency. Annualization uses a 365-day year (crypto trades 24/7) and the real bar frequency.
Undefined values (a ratio with a zero denominator) are ``None``, never NaN or inf, so that
``report.json`` stays valid JSON.

Drawdowns are measured from the initial cash: the running peak starts at ``init_cash``, so a loss
in the first bar (a fee, an open-to-close fall) counts, as in quantstats and empyrical. A span of
bars without any defined return (all after a wiped-out account, whose equity stays 0) has null
return metrics.

Imports from crashbt only :mod:`backtest.catalogue`, :mod:`backtest.types`, the trade-total
slots of :mod:`backtest.engine.layout` and :mod:`backtest.native`, through which it calls the bar
returns of :mod:`backtest.engine.kernels` and the curve statistics of
:mod:`backtest.metrics.kernels`; never the simulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from backtest import native
from backtest.catalogue import METRIC_KEYS, periods_per_year
from backtest.engine.layout import T_FEES, T_GAINS, T_LOSSES, T_OPEN, T_TRADES, T_WINS
from backtest.types import Bars, SimResult

KERNELS = "backtest.metrics.kernels"


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def max_drawdown(equity: np.ndarray, init_cash: float = -math.inf) -> float:
    """Largest peak-to-trough fall as a fraction in [0, 1], the peak starting at ``init_cash``
    (by default at the first value)."""
    if equity.size == 0:
        return 0.0
    return float(native.kernel(KERNELS, "max_drawdown_nb")(_floats(equity), float(init_cash)))


def bar_returns(equity: np.ndarray, init_cash: float) -> np.ndarray:
    """Each bar's equity change over the previous bar's equity (the first bar over init_cash);
    NaN after a bar of zero equity (no return is defined)."""
    return native.kernel("backtest.engine.kernels", "bar_returns_nb")(_floats(equity),
                                                                  float(init_cash))


def _floats(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def equity_metrics(equity: np.ndarray, init_cash: float, freq: str,
                   returns: np.ndarray | None = None,
                   position: np.ndarray | None = None) -> dict[str, float | None]:
    """Return-based metrics of an equity curve marked at each bar's close (``returns``: its
    :func:`bar_returns`, when already at hand), and ``exposure_pct`` when ``position`` is
    given."""
    if equity.size == 0:
        return {k: None for k in ("total_return_pct", "cagr_pct", "sharpe", "sortino", "calmar",
                                  "max_drawdown_pct")}
    ppy = periods_per_year(freq)
    if returns is None:
        returns = bar_returns(equity, init_cash)
    growth = equity[-1] / init_cash
    years = equity.size / ppy
    log_cagr = math.log(growth) / years if growth > 0 else -math.inf
    cagr = math.expm1(log_cagr) if log_cagr < 700 else math.inf  # inf: too short to annualize
    held = np.zeros(equity.size) if position is None else position
    mean, var, down, mdd, exposed, defined = native.kernel(KERNELS, "curve_stats_nb")(
        _floats(equity), _floats(returns), _floats(held), float(init_cash))
    std = math.sqrt(var)
    downside = math.sqrt(down / defined) if defined else 0.0
    return {
        "total_return_pct": 100.0 * (growth - 1.0),
        "cagr_pct": _finite(100.0 * cagr),
        "sharpe": _finite(mean / std * math.sqrt(ppy)) if std > 0 else None,
        "sortino": _finite(mean / downside * math.sqrt(ppy)) if downside > 0 else None,
        "calmar": _finite(cagr / mdd) if mdd > 0 and math.isfinite(cagr) else None,
        "max_drawdown_pct": 100.0 * mdd,
        **({} if position is None else {"exposure_pct": 100.0 * (exposed / equity.size)}),
    }


def trade_metrics(trades: pd.DataFrame) -> dict[str, float | int | None]:
    """Trade counts (``n_trades`` = closed + a position still open at the end, both also
    apart); win rate and profit factor over closed trades; fees of every fill."""
    if len(trades) == 0:
        return trade_summary(0, 0, 0, 0.0, 0.0, 0.0)
    closed = (trades["status"] == "closed").to_numpy(dtype=bool)
    pnl = trades["pnl"].to_numpy(dtype=float)[closed]
    return trade_summary(len(trades), int(len(trades) - pnl.size), int((pnl > 0).sum()),
                         float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum()),
                         float(trades["fees"].to_numpy(dtype=float).sum()))


def trade_summary(n_trades: int, n_open: int, wins: int, gains: float, losses: float,
                  fees: float) -> dict[str, float | int | None]:
    """The trade metrics from trade totals: ``wins`` closed trades with pnl > 0 summing to
    ``gains``, closed losers summing to ``-losses``, ``fees`` of every trade."""
    n_closed = n_trades - n_open
    return {
        "n_trades": n_trades,
        "n_closed_trades": n_closed,
        "n_open_trades": n_open,
        "win_rate_pct": 100.0 * (wins / n_closed) if n_closed else None,
        "profit_factor": _finite(gains / losses) if losses > 0 else None,
        "fees_paid": fees,
    }


def totals_summary(totals: np.ndarray) -> dict[str, float | int | None]:
    """:func:`trade_summary` of one row of the batched engine's trade totals
    (:data:`backtest.engine.batch_kernels.TOTALS`)."""
    return trade_summary(int(totals[T_TRADES]), int(totals[T_OPEN]), int(totals[T_WINS]),
                         float(totals[T_GAINS]), float(totals[T_LOSSES]),
                         float(totals[T_FEES]))


def compute(result: SimResult, freq: str) -> dict[str, float | int | None]:
    """All headline metrics of one simulation."""
    return curve_metrics(result.equity.to_numpy(dtype=float),
                         result.returns.to_numpy(dtype=float),
                         result.position.to_numpy(dtype=float),
                         trade_metrics(result.trades), result.init_cash, freq)


def curve_metrics(equity: np.ndarray, returns: np.ndarray, position: np.ndarray,
                  trades: Mapping[str, float | int | None], init_cash: float,
                  freq: str) -> dict[str, float | int | None]:
    """All headline metrics from plain arrays (equity, its bar returns and the position at each
    bar) and the trade metrics (:func:`trade_summary`): what :func:`compute` returns."""
    out: dict[str, float | int | None] = dict(equity_metrics(equity, init_cash, freq, returns,
                                                             position))
    out.update(trades)
    out.setdefault("exposure_pct", 0.0)  # no bars
    return {key: out[key] for key in METRIC_KEYS}


def range_metrics(equity: np.ndarray, position: np.ndarray, at: np.ndarray,
                  totals: np.ndarray, which: np.ndarray, init_cash: float, freq: str,
                  needs_trades: Sequence[str] = ()) -> np.ndarray:
    """:func:`curve_metrics` of every column of the batched engine's output
    (:class:`backtest.engine.batch.RangeRuns`) over each range ``which[j]``, in one kernel call:
    an array (columns, ranges, ``METRIC_KEYS``) with NaN for None, and NaN for the metrics
    ``needs_trades`` in a range without a trade."""
    out = np.empty((equity.shape[0], len(which), len(METRIC_KEYS)))
    undefined = np.array([METRIC_KEYS.index(k) for k in needs_trades], dtype=np.int64)
    which = np.asarray(which, dtype=np.int64)
    kernel, ppy = native.kernel(KERNELS, "range_metrics_nb"), float(periods_per_year(freq))

    def columns(lo: int, hi: int) -> None:
        kernel(equity[lo:hi], position[lo:hi], at, totals[lo:hi], which, float(init_cash), ppy,
               undefined, out[lo:hi])

    native.in_halves(equity.shape[0], columns)  # columns are independent
    return out


def defined_means(table: np.ndarray, groups: np.ndarray, summed: str | None = None
                  ) -> np.ndarray:
    """Per column and group of rows of a :func:`range_metrics` table (``groups``: row indices,
    -1 padding), each metric's mean over the rows defining it (NaN if none); metric ``summed``
    is summed instead (a sample's trade count). Python's left-to-right sum, to the last bit."""
    out = np.empty((table.shape[0], groups.shape[0], table.shape[2]))
    native.kernel(KERNELS, "defined_means_nb")(
        table, groups, -1 if summed is None else METRIC_KEYS.index(summed), out)
    return out


def buy_and_hold(bars: Bars, init_cash: float, fee_rate: float, freq: str) -> dict:
    """The same metrics for buying at the first bar's open (paying one fee) and holding."""
    units = init_cash / (bars["open"].iloc[0] * (1.0 + fee_rate))
    equity = units * bars["close"].to_numpy(dtype=float)
    out: dict[str, float | int | None] = dict(equity_metrics(equity, init_cash, freq))
    out.update({"n_trades": 1, "n_closed_trades": 0, "n_open_trades": 1, "win_rate_pct": None,
                "profit_factor": None,
                "fees_paid": init_cash - units * bars["open"].iloc[0], "exposure_pct": 100.0})
    return {key: out[key] for key in METRIC_KEYS}


def buy_and_hold_equity(bars: Bars, init_cash: float, fee_rate: float) -> pd.Series:
    """Buy-and-hold equity at each close, for charts."""
    units = init_cash / (bars["open"].iloc[0] * (1.0 + fee_rate))
    return (units * bars["close"]).rename("buy_and_hold")


def segment_metrics(equity: np.ndarray, position: np.ndarray, init_cash: float, freq: str,
                    mask: np.ndarray | slice, returns: np.ndarray | None = None
                    ) -> dict[str, float | int | None]:
    """Metrics over the bars selected by ``mask``, a boolean mask or a slice of consecutive
    bars (a view, no copy) (bar returns compounded across gaps;
    ``returns``: the curve's :func:`bar_returns`, when already at hand). The undefined returns
    of a wiped-out account are left out; a span without any defined return has null return
    metrics."""
    returns = (bar_returns(equity, init_cash) if returns is None else returns)[mask]
    finite = np.isfinite(returns)
    picked = returns if finite.all() else returns[finite]  # no copy of a span of 10M bars
    if picked.size == 0:
        return {"bars": int(returns.size), "total_return_pct": None, "sharpe": None,
                "max_drawdown_pct": None,
                "exposure_pct": 100.0 * float((position[mask] != 0).mean()) if returns.size
                else None}
    curve = 1.0 + picked
    np.multiply.accumulate(curve, out=curve)  # np.cumprod without a second 10M-bar array
    growth, drawdown = curve[-1], max_drawdown(curve, 1.0)
    del curve  # before std's temporaries: one 10M-bar array less at the peak
    std = picked.std(ddof=1) if picked.size > 1 else 0.0
    return {
        "bars": int(returns.size),
        "total_return_pct": 100.0 * (growth - 1.0),
        "sharpe": _finite(picked.mean() / std * math.sqrt(periods_per_year(freq)))
        if std > 0 else None,
        "max_drawdown_pct": 100.0 * drawdown,
        "exposure_pct": 100.0 * float((position[mask] != 0).mean()),
    }


def by_segment(equity: pd.Series, position: pd.Series, init_cash: float, freq: str,
               segments: dict[str, np.ndarray | slice]
               ) -> dict[str, dict[str, float | int | None]]:
    """:func:`segment_metrics` for each named boolean mask or slice, skipping empty
    segments."""
    eq = equity.to_numpy(dtype=float)
    held = position.to_numpy() != 0  # exposure only asks "held?": 1 byte a bar
    returns = bar_returns(eq, init_cash)  # once for every segment (10M bars: 0.1 s each)
    return {name: segment_metrics(eq, held, init_cash, freq, mask, returns)
            for name, mask in segments.items()
            if (mask.any() if isinstance(mask, np.ndarray) else len(range(eq.size)[mask]))}


def perp_metrics(result: SimResult) -> dict[str, float | int]:
    """Perpetual-futures metrics: funding paid (net, money), liquidations (count), the money lost
    in liquidated trades (a positive number) and the largest leverage used, as the notional
    of an entry over the equity just before it (init_cash before the first bar)."""
    trades = result.trades
    liquidated = trades[trades["exit_reason"] == "liquidation"] if len(trades) else trades
    max_leverage = 0.0
    if len(trades):
        equity = result.equity
        before = equity.shift(1).fillna(result.init_cash).reindex(trades["entry_time"])
        notional = (trades["size"] * trades["entry_price"]).to_numpy(dtype=float)
        max_leverage = float(np.max(notional / before.to_numpy(dtype=float)))
    return {
        "funding_paid": float(trades["funding_paid"].sum()) if len(trades) else 0.0,
        "liquidations": len(liquidated),
        "liquidation_losses": float(-liquidated["pnl"].sum()) if len(liquidated) else 0.0,
        "max_leverage_used": max_leverage,
    }
