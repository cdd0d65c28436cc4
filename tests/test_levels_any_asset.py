"""Levels for any asset (issue 16.1): the seed rules on ETH, levels relative to the ATH or the
200-week EMA, and a search space that is a default for optimize, never a limit on a run.

Prices are rows of datasets/ethusdt_1d (bars labelled by their OPEN time, UTC); a signal at a
bar's close fills at the next bar's open.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import strategies
from backtest import pipeline
from backtest.config.loader import parse_config
from backtest.data.bars import load_bars
from backtest.errors import StrategyError
from backtest.features import levels
from backtest.features.indicators import ema_weekly

UTC = "UTC"


def execute(name: str, dataset: str, params: dict[str, Any], **data: Any) -> pipeline.RunOutcome:
    raw = {"data": {"dataset": dataset, **data}, "strategy": {"name": name, "params": params},
           "execution": {"fee_rate": 0.0, "slippage_rate": 0.0}}
    return pipeline.execute(parse_config(raw, "eth"), strategies.REGISTRY[name], "eth")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


ETH_SEED = {"level": 2200.0, "target": 1800.0, "stop_level": 2400.0, "confirm_bars": 1,
            "mode": "short"}


def test_eth_seed_rule_shorts_the_break_of_2200_and_covers_at_1800() -> None:
    # first 2026 daily close below 2,200: the 2026-02-04 bar (close 2,148.26) -> short at the
    # 2026-02-05 open 2,148.25. 02-05's low 1,818.18 stays above 1,800; the 02-06 bar opens at
    # 1,826.83 and its low 1,747.80 reaches the 1,800 target, filled at the level.
    out = execute("break_below_74k", "ethusdt_1d", ETH_SEED, start="2026-01-01",
                  end="2026-03-31")
    trades = out.result.trades
    first = trades.iloc[0]
    assert (first["direction"], first["entry_time"], first["entry_price"]) == (
        "short", ts("2026-02-05"), 2148.25)
    assert (first["exit_time"], first["exit_price"], first["exit_reason"]) == (
        ts("2026-02-06"), 1800.0, "target")
    units = 100_000.0 / 2148.25
    assert first["pnl"] == pytest.approx(units * (2148.25 - 1800.0), rel=1e-9)
    assert out.report["strategy"]["levels"] == {"level": 2200.0, "target": 1800.0,
                                                "stop": 2400.0}


def test_the_space_is_not_a_limit_on_run_but_physics_is() -> None:
    spec = strategies.REGISTRY["break_below_74k"]
    assert not spec.space["level"].contains(2200.0)  # outside the BTC default space...
    assert spec.make_params(ETH_SEED, "eth").level == 2200.0  # ...and accepted by run
    with pytest.raises(StrategyError, match=r"eth: strategy.params: expected target < level < "
                                            r"stop_level, found 2400, 2200, 1800"):
        spec.make_params({**ETH_SEED, "target": 2400.0, "stop_level": 1800.0}, "eth")
    with pytest.raises(StrategyError, match=r"strategy.params.level: expected a number > 0, "
                                            r"found -1"):
        spec.make_params({"level": -1.0}, "eth")
    with pytest.raises(StrategyError, match=r"strategy.params.confirm_bars: expected an "
                                            r"integer, found 1.5"):
        spec.make_params({"confirm_bars": 1.5}, "eth")
    with pytest.raises(StrategyError, match=r"strategy.params: level_mode: expected one of absolute, "):
        spec.make_params({"level_mode": "ath"}, "eth")
    reclaim = strategies.REGISTRY["reclaim_80k"]
    with pytest.raises(StrategyError, match=r"stop_pct: expected a fraction in \[0, 1\)"):
        reclaim.make_params({"stop_pct": 1.5}, "eth")


def test_ath_fraction_on_eth_matches_the_absolute_rule() -> None:
    # ETH's running ATH at 2026-02-04 is the 4,956.78 high of 2025-08-24; 2,200 / ATH as a
    # fraction gives the same break and the same fills as the absolute levels.
    bars, _ = load_bars(parse_config({"data": {"dataset": "ethusdt_1d", "end": "2026-03-31"},
                                      "strategy": {"name": "break_below_74k"}}, "t").data)
    ath = float(bars.loc[:"2026-02-04", "high"].max())
    assert ath == float(bars.loc["2025-08-01":"2026-03-31", "high"].max())
    fractions = {"level": 2200.0 / ath, "target": 1800.0 / ath, "stop_level": 2400.0 / ath,
                 "confirm_bars": 1, "mode": "short", "level_mode": "ath_fraction"}
    absolute = execute("break_below_74k", "ethusdt_1d", ETH_SEED, start="2026-01-01",
                       end="2026-03-31").result.trades.iloc[0]
    relative = execute("break_below_74k", "ethusdt_1d", fractions, start="2026-01-01",
                       end="2026-03-31").result.trades.iloc[0]
    assert (relative["entry_time"], relative["entry_price"]) == (
        absolute["entry_time"], absolute["entry_price"])
    assert relative["exit_time"] == absolute["exit_time"]
    assert relative["exit_price"] == pytest.approx(1800.0, rel=1e-12)


def test_ema_level_is_the_fraction_of_the_weekly_ema() -> None:
    bars, _ = load_bars(parse_config({"data": {"dataset": "btcusdt_1d", "end": "2026-03-31"},
                                      "strategy": {"name": "break_below_74k"}}, "t").data)
    series = levels.level_series(bars, levels.anchored("ema_200w", 1.02, 200))
    expected = 1.02 * ema_weekly(bars["close"], 200)
    pd.testing.assert_series_equal(series, expected.rename("level"))
    # DOMAIN.md: the 200-week EMA is 68,356 at 2026-02-01 (a week ending that Sunday)
    assert series.loc["2026-02-02"] / 1.02 == pytest.approx(68_356, abs=1)
    assert levels.anchored("absolute", 74_400.0) == 74_400.0
    with pytest.raises(StrategyError, match="level_mode: expected one of"):
        levels.anchored("ema", 1.0)


@pytest.mark.parametrize("mode", levels.LEVEL_MODES)
def test_every_level_mode_runs_on_eth(mode: str) -> None:
    values = {"absolute": (2200.0, 1800.0, 2400.0), "ath_fraction": (0.444, 0.363, 0.484),
              "ema_200w": (1.0, 0.8, 1.1)}[mode]
    params = dict(zip(("level", "target", "stop_level"), values, strict=True))
    out = execute("break_below_74k", "ethusdt_1d", {**params, "level_mode": mode},
                  window="feb-2026")
    assert out.report["strategy"]["params"]["level_mode"] == mode
    assert set(out.report["strategy"]["levels"]) == {"level", "target", "stop"}


def test_a_btc_level_on_eth_bars_says_it_is_never_reached() -> None:
    # the silent 0 trades: break_below_74k's BTC default on ETH now says why
    out = execute("break_below_74k", "ethusdt_1d", {}, window="feb-2026")
    assert out.report["metrics"]["n_trades"] == 0
    assert out.report["strategy"]["notes"]["level"] == (
        "never reached: 74,400 vs prices 81.79..4,956.78; give a level for this asset or a "
        "relative level_mode")
    reclaim = execute("reclaim_80k", "ethusdt_1d", {}, window="feb-2026")
    assert reclaim.report["strategy"]["notes"]["level"].startswith("never reached: 80,000 vs")
    eth = execute("break_below_74k", "ethusdt_1d", ETH_SEED, window="feb-2026")
    assert "level" not in eth.report["strategy"]["notes"]
