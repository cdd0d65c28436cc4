"""backtest.checks on real bundled data: the look-ahead check fails, naming bar and feature, for
strategies that peek one bar ahead or read an external series without its publication lag (in
the strategy or through a config override), and passes for honest ones; the warm-up check counts
signal bars that depend on history and finds zero placeholders; and the ``crashbt check`` CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import strategies
from backtest import checks
from backtest.cli import main
from backtest.cli.common import EXIT_LOOKAHEAD
from backtest.config.loader import parse_config
from backtest.config.run import RunConfig
from backtest.data.external import load_external
from backtest.strategy.contract import StrategySpec
from tests import peeking_strategies as peek

ROOT = Path(__file__).resolve().parents[1]
RUN_START = pd.Timestamp("2024-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def config(name: str, timeframe: str = "1d", external: dict[str, Any] | None = None) -> RunConfig:
    return parse_config({"data": {"dataset": f"btcusdt_{timeframe}", "start": "2024-03-01",
                                  "end": "2026-03-31"},
                         "strategy": {"name": name}, "external": external or {}}, "test")


def check(spec: StrategySpec, timeframe: str = "1d",
          external: dict[str, Any] | None = None) -> checks.LookaheadReport:
    return checks.lookahead(config(spec.name, timeframe, external), spec, "test")


def test_same_treats_nan_as_equal_and_allows_tiny_relative_error() -> None:
    a = np.array([1.0, np.nan, 1e6, 1e6, np.inf, 0.0])
    b = np.array([1.0, np.nan, 1e6 * (1 + 1e-12), 1e6 * (1 + 1e-6), np.inf, np.nan])
    assert checks.same(a, b).tolist() == [True, True, True, False, True, False]
    words = np.array(["fear", None], dtype=object)
    assert checks.same(words, np.array(["fear", None], dtype=object)).tolist() == [True, True]
    assert checks.same(words, np.array(["greed", None], dtype=object)).tolist() == [False, True]


def test_cut_positions_cover_the_run_range_and_the_warm_up_but_never_the_last_bar() -> None:
    index = pd.date_range("2020-01-01", periods=1000, freq="1D", tz="UTC")
    cuts = checks.cut_positions(index, index[600], cuts=30)
    assert cuts[0] == 20 and list(cuts[:4]) == list(checks.EARLY_CUTS)
    in_run = cuts[cuts >= 600]
    # 30 - 30 // 5 = 24 evenly spaced from 600 to 998 (the last bar, 999, has no future)
    assert in_run[0] == 600 and in_run[-1] == 998 and cuts.max() < 999
    assert len(in_run) >= 24 and np.all(np.diff(cuts) > 0)


def test_peek_one_bar_is_caught_naming_bar_and_feature() -> None:
    rep = check(peek.PEEK_ONE_BAR)
    assert not rep.clean
    first_in_run = next(o for o in rep.offences if o.bar >= RUN_START)
    # the first cut of the run range is its first bar, 2024-03-01: the full run reads the close
    # of 2024-03-02 (61,987.28 in btcusdt_1d), the truncated run has no next bar (NaN)
    assert first_in_run.bar == RUN_START and first_in_run.column == "feature:next_close"
    assert first_in_run.full == 61_987.28 and np.isnan(first_in_run.truncated)
    # every offence sits on a cut bar: only the last bar of a truncation lacks its future
    assert {o.bar for o in rep.offences} <= set(rep.cuts)
    assert "feature:next_close" in checks.render_lookahead(rep)


def _fear_greed_by_day() -> pd.Series:
    return load_external("fear_greed")["value"]


def test_zero_lag_external_is_caught_with_the_value_of_the_next_day() -> None:
    rep = check(peek.ZERO_LAG_EXTERNAL)
    values = _fear_greed_by_day()
    hits = [o for o in rep.offences if o.column == "feature:fear_greed" and o.bar >= RUN_START]
    assert hits, checks.render_lookahead(rep)
    # daily bar D closes at D+1 00:00: with zero lag it sees day D+1's value, which is public
    # only at D+2 00:00; the truncation keeps day D's value (2024-04-03: 70 full vs 71 truncated)
    assert (hits[0].bar, hits[0].full, hits[0].truncated) == (
        pd.Timestamp("2024-04-03", tz="UTC"), 70.0, 71.0)
    for hit in hits:
        assert hit.full == values[hit.bar + DAY] and hit.truncated == values[hit.bar]


def test_config_override_to_zero_lag_is_caught_and_the_default_lag_passes() -> None:
    assert check(peek.HONEST_EXTERNAL).clean
    rep = check(peek.HONEST_EXTERNAL, external={"fear_greed": {"lag": "0s"}})
    assert not rep.clean
    assert "feature:fear_greed" in rep.by_column()


def test_joining_a_daily_series_by_date_is_honest_on_daily_bars_only() -> None:
    assert check(peek.BY_DATE_EXTERNAL, "1d").clean
    rep = check(peek.BY_DATE_EXTERNAL, "1h")
    hit = rep.by_column()["feature:fear_greed"][0]
    # the hourly bar opening 2024-03-01 00:00 closes at 01:00 and already holds the value of
    # 2024-03-01 (80), public only at 2024-03-02 00:00; the truncated run has nothing for it
    assert hit.bar == RUN_START and hit.full == 80.0 and np.isnan(hit.truncated)


def test_back_filled_warm_up_is_caught_by_the_early_cuts() -> None:
    rep = check(peek.BFILL_SMA)
    hit = rep.by_column()["feature:sma_50"][0]
    # the first 49 SMA-50 values are back-filled from bar 49 (2017-10-05); cut at bar 20
    # (2017-09-06) has no SMA yet, so bar 0 (2017-08-17) is NaN there
    assert hit.bar == pd.Timestamp("2017-08-17", tz="UTC") and np.isnan(hit.truncated)
    assert hit.cut == pd.Timestamp("2017-09-06", tz="UTC")
    assert check(peek.SMA_TREND).clean and check(peek.ZERO_FILL_SMA).clean


def test_break_below_74k_config_passes() -> None:
    from backtest.config.loader import load_config

    cfg = load_config(ROOT / "configs" / "break_below_74k.toml")
    rep = checks.lookahead(cfg, strategies.get("break_below_74k"), "config")
    assert rep.clean and len(rep.cuts) >= 30 and "signal:short_entries" in rep.columns


def test_warm_up_counts_bars_that_need_more_history() -> None:
    cfg = config("sma_trend")
    rows = {r.days: r for r in checks.warmup(cfg, peek.SMA_TREND, "test", extra=[10]).rows}
    assert sorted(rows) == [0, 10, 30, 90, 365]
    # SMA-50 needs 49 earlier bars: history from the run start -> the first 49 run bars have
    # no SMA and no signal, agreement from 2024-03-01 + 49 days = 2024-04-19; 30 days earlier
    # -> 49 - 30 = 19 bars (to 2024-03-20); 90 days -> none
    assert (rows[0].differing, rows[0].first_agreeing) == (49, pd.Timestamp("2024-04-19", tz="UTC"))
    assert (rows[10].differing, rows[30].differing, rows[90].differing) == (39, 19, 0)
    assert rows[30].first_agreeing == pd.Timestamp("2024-03-20", tz="UTC")
    assert rows[0].bars == 761  # 2024-03-01 .. 2026-03-31 is 366 + 365 + 30 days
    assert all(not r.zero_placeholders for r in rows.values())


def test_warm_up_finds_zero_placeholders() -> None:
    rep = checks.warmup(config("zero_fill_sma"), peek.ZERO_FILL_SMA, "test")
    row = rep.rows[0]
    # history from 2024-03-01: the 49 bars before the first SMA-50 are 0.0, the full history
    # has real averages there
    assert len(row.zero_placeholders) == 49
    first = row.zero_placeholders[0]
    assert (first.bar, first.column) == (RUN_START, "feature:sma_50") and first.full > 40_000
    assert "zero placeholder" in checks.render_warmup(rep)


def test_cli_check_lookahead_passes_for_the_shipped_config(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "lookahead", str(ROOT / "configs" / "break_below_74k.toml")])
    out = capsys.readouterr().out
    assert code == 0 and "OK" in out


def cli_config(tmp_path: Path, spec: str, extra: str = "") -> Path:
    """A config naming a test strategy of peeking_strategies.py (needs the external flag)."""
    path = tmp_path / "check.toml"
    path.write_text('[data]\ndataset = "btcusdt_1d"\nstart = 2024-03-01\nend = 2026-03-31\n'
                    f'[strategy]\nname = "{PEEK_FILE}:{spec}"\n{extra}')
    return path


PEEK_FILE = Path(peek.__file__).resolve()


def test_cli_check_lookahead_exits_3_on_a_zero_lag_override(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_config(tmp_path, "HONEST_EXTERNAL", '[external.fear_greed]\nlag = "0s"\n')
    code = main(["check", "lookahead", str(path), "--allow-external-strategies"])
    out = capsys.readouterr().out
    assert code == EXIT_LOOKAHEAD == 3
    assert "LOOK-AHEAD" in out and "feature:fear_greed" in out and "2024-04-03 00:00" in out


def test_cli_check_lookahead_names_bar_and_feature_of_a_one_bar_peek(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_config(tmp_path, "PEEK_ONE_BAR")
    code = main(["check", "lookahead", str(path), "--allow-external-strategies"])
    out = capsys.readouterr().out
    assert code == 3
    assert "2024-03-01 00:00  feature:next_close  61987.28  nan" in out


def test_cli_check_refuses_an_unregistered_strategy_without_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "lookahead", str(cli_config(tmp_path, "PEEK_ONE_BAR"))])
    err = capsys.readouterr().err
    assert code == 2 and "--allow-external-strategies" in err and len(err.splitlines()) == 1


def test_cli_check_warmup_prints_one_row_per_setting(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "warmup", str(ROOT / "configs" / "break_below_74k.toml"),
                 "--days", "7"])
    out = capsys.readouterr().out
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[2:7]] == ["0", "7", "30", "90", "365"]
