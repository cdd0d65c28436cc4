"""Metrics: hand-computed values and properties (365-day annualization, units in key names)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.metrics import performance as metrics

equities = st.lists(st.floats(1.0, 1e6).map(lambda x: round(x, 2)), min_size=2, max_size=200).map(
    np.array)


def test_periods_per_year_uses_365_days() -> None:
    assert metrics.periods_per_year("1h") == 8760.0  # 365 x 24
    assert metrics.periods_per_year("1D") == 365.0
    assert metrics.periods_per_year("15min") == 35040.0  # 365 x 96


def test_hand_computed_daily_curve() -> None:
    # init 100; closes 110, 99, 121 -> returns +10 %, -10 %, +22.22..%
    equity = np.array([110.0, 99.0, 121.0])
    out = metrics.equity_metrics(equity, 100.0, "1D")
    r = np.array([0.10, -0.10, 22.0 / 99.0])
    assert out["total_return_pct"] == pytest.approx(21.0)
    # max drawdown: peak 110 -> 99 = 10 %
    assert out["max_drawdown_pct"] == pytest.approx(10.0)
    # sharpe = mean/std(ddof=1) * sqrt(365)
    assert out["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    # sortino: downside deviation = sqrt(mean(min(r,0)^2)) = sqrt(0.01/3)
    assert out["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 3) * math.sqrt(365))
    # cagr over 3 days of a 365-day year: 1.21 ** (365/3) - 1
    assert out["cagr_pct"] == pytest.approx(100 * (1.21 ** (365 / 3) - 1))
    assert out["calmar"] == pytest.approx(out["cagr_pct"] / 100 / 0.10)


def test_trade_metrics_count_open_trades_and_avoid_inf() -> None:
    trades = pd.DataFrame({"pnl": [10.0, -5.0, 20.0, 3.0], "fees": [1.0, 1.0, 1.0, 0.5],
                           "status": ["closed", "closed", "closed", "open"]})
    out = metrics.trade_metrics(trades)
    assert (out["n_trades"], out["n_closed_trades"], out["n_open_trades"]) == (4, 3, 1)
    # win rate and profit factor over the closed trades only
    assert out["win_rate_pct"] == pytest.approx(200 / 3)
    assert out["profit_factor"] == pytest.approx(30 / 5)
    assert out["fees_paid"] == pytest.approx(3.5)
    winners = trades.assign(pnl=[1.0, 2.0, 3.0, 4.0])
    assert metrics.trade_metrics(winners)["profit_factor"] is None  # no loss: undefined, not inf
    empty = metrics.trade_metrics(trades.iloc[:0])
    assert empty == {"n_trades": 0, "n_closed_trades": 0, "n_open_trades": 0,
                     "win_rate_pct": None, "profit_factor": None, "fees_paid": 0.0}


def test_drawdown_starts_at_the_initial_cash() -> None:
    # the first bar already loses 5 %: the peak is the initial cash 100, not the first close
    equity = np.array([95.0, 98.0, 90.0, 120.0])
    out = metrics.equity_metrics(equity, 100.0, "1D")
    assert out["max_drawdown_pct"] == pytest.approx(10.0)  # 100 -> 90
    assert metrics.max_drawdown(equity) == pytest.approx(1 - 90 / 98)  # no initial cash given
    assert metrics.max_drawdown(equity, 100.0) == pytest.approx(0.10)


def test_a_wiped_out_account_has_null_metrics_where_no_return_is_defined() -> None:
    # 100 -> 50 -> 0, then nothing: the returns after the wipe-out are undefined (0 / 0)
    equity = np.array([50.0, 0.0, 0.0, 0.0])
    returns = metrics.bar_returns(equity, 100.0)
    assert returns[:2].tolist() == [-0.5, -1.0] and np.isnan(returns[2:]).all()
    out = metrics.equity_metrics(equity, 100.0, "1D")
    assert out["total_return_pct"] == -100.0 and out["max_drawdown_pct"] == 100.0
    assert out["cagr_pct"] == -100.0 and out["calmar"] == -1.0
    # the moments use the two defined returns: mean -0.75, sd 0.353553
    assert out["sharpe"] == pytest.approx(-0.75 / math.sqrt(0.125) * math.sqrt(365))
    position = np.zeros(4)
    after = metrics.segment_metrics(equity, position, 100.0, "1D",
                                    np.array([False, False, True, True]))
    assert after == {"bars": 2, "total_return_pct": None, "sharpe": None,
                     "max_drawdown_pct": None, "exposure_pct": 0.0}
    across = metrics.segment_metrics(equity, position, 100.0, "1D",
                                     np.array([False, True, True, False]))
    assert across["total_return_pct"] == -100.0 and across["max_drawdown_pct"] == 100.0


def test_flat_curve_has_undefined_ratios_not_nan() -> None:
    out = metrics.equity_metrics(np.full(10, 100.0), 100.0, "1h")
    assert out["sharpe"] is None and out["sortino"] is None and out["calmar"] is None
    assert out["max_drawdown_pct"] == 0.0 and out["total_return_pct"] == 0.0


@settings(max_examples=200, deadline=None)
@given(equities)
def test_max_drawdown_in_unit_interval(equity: np.ndarray) -> None:
    assert 0.0 <= metrics.max_drawdown(equity) <= 1.0


@settings(max_examples=200, deadline=None)
@given(equities, st.floats(1e-3, 1e3))
def test_metrics_invariant_to_scaling(equity: np.ndarray, scale: float) -> None:
    base = metrics.equity_metrics(equity, float(equity[0]), "1h")
    scaled = metrics.equity_metrics(equity * scale, float(equity[0]) * scale, "1h")
    for key, value in base.items():
        if value is None:
            assert scaled[key] is None
        else:
            assert scaled[key] == pytest.approx(value, rel=1e-7, abs=1e-9), key


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=50).map(sorted))
def test_monotone_rising_equity_has_no_drawdown(values: list[float]) -> None:
    assert metrics.max_drawdown(np.array(values)) == 0.0
