"""The event study (``crashbt events``): pinned February 2026 event dates on bundled BTC data,
hand-computed outcomes, the cooldown, truncation invariance (no look-ahead), the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.config.data import DataConfig
from backtest.data.bars import load_bars
from backtest.data.external import load_external
from backtest.lab import detect as det
from backtest.lab import events
from backtest.lab.config import (
    EtfOutflowStreak,
    EventStudyConfig,
    FastDrawdown,
    FearGreed,
    HashRibbon,
    LevelBreak,
)

WEEK = pd.Timedelta("7D")
FEB_CONFIG = """
name = "feb-2026"
[events]
symbols = ["BTCUSDT"]
timeframe = "1h"
horizons = ["1d", "7d"]
path = "1d"
cooldown = "30d"
bootstrap = 100
seed = 3

[[events.types]]
name = "hash-ribbon recovery"
kind = "hash_ribbon"
timeframe = "1d"

[[events.types]]
name = "daily close below 74,400"
kind = "level_break"
level = 74400
timeframe = "1d"

[[events.types]]
name = "liquidation spike"
kind = "liquidation_spike"
"""


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return load_bars(DataConfig(dataset="btcusdt_1d"))[0]


@pytest.fixture(scope="module")
def context() -> dict[str, pd.DataFrame]:
    return {kind: load_external(kind) for kind in ("hash_rate", "fear_greed", "etf_flows")}


@pytest.fixture(scope="module")
def feb_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("ev") / "feb.toml"
    path.write_text(FEB_CONFIG, encoding="utf-8")
    from backtest.lab.config import load_events_config

    return events.study(load_events_config(path), str(path))


def _dates(flags: pd.Series, since: str) -> list[str]:
    return [f"{t:%Y-%m-%d}" for t in flags.index[flags.to_numpy()] if t >= pd.Timestamp(since,
                                                                                         tz="UTC")]


def test_february_2026_event_dates_on_bundled_btc(daily: pd.DataFrame, context: dict) -> None:
    """DOMAIN.md: the 30-day hash-rate mean crossed back above the 60-day one on 2026-02-26
    (published 2026-02-27 00:00, the close of the 2026-02-26 daily bar); the first daily close
    below 74,400 is the 2026-02-04 bar (close 73,165.83); 74,400 is 59% of the 126,199.63 ATH,
    so the ATH-fraction break fires on the same bar.

    The data adds one thing DOMAIN.md leaves out: a two-day whipsaw recovery on 2026-01-04
    (30-day mean 1,070.5 vs 60-day 1,064.5 EH/s) before the capitulation of 2026-01-06.
    """
    recovery = det.detect(daily, context, HashRibbon(kind="hash_ribbon", name="r"), WEEK)
    assert _dates(recovery, "2026-01-01") == ["2026-01-04", "2026-02-26"]
    capitulation = det.detect(daily, context, HashRibbon(kind="hash_ribbon", name="c",
                                                         signal="capitulation"), WEEK)
    assert _dates(capitulation, "2026-01-01")[0] == "2026-01-06"
    below = det.detect(daily, context, LevelBreak(kind="level_break", name="b", level=74_400),
                       WEEK)
    assert _dates(below, "2026-01-01")[0] == "2026-02-04"
    assert daily.loc["2026-02-04", "close"].item() == 73_165.83
    assert (daily.loc["2026-01-01":"2026-02-03", "close"] >= 74_400).all()
    ath = det.detect(daily, context, LevelBreak(kind="level_break", name="a", ath_fraction=0.59),
                     WEEK)
    assert _dates(ath, "2026-01-01")[0] == "2026-02-04"


def test_publication_lag_dates_the_event_at_the_close_that_knew_it(daily: pd.DataFrame,
                                                                   context: dict) -> None:
    """The same hash-rate row published with no lag would be known a day earlier."""
    etype = HashRibbon(kind="hash_ribbon", name="r")
    eager = context["hash_rate"].assign(published_at=context["hash_rate"].index)
    early = det.detect(daily, {"hash_rate": eager}, etype, WEEK)
    assert _dates(early, "2026-01-01") == ["2026-01-03", "2026-02-25"]


def test_study_pins_dates_and_hand_computed_forward_returns(feb_study: dict) -> None:
    by_type = {r["type"]: r for r in feb_study["results"]}
    brk = next(e for e in by_type["daily close below 74,400"]["events"]
               if e["decided_at"].startswith("2026"))
    assert brk["decided_at"] == "2026-02-04T00:00:00Z"
    assert brk["known_at"] == "2026-02-05T00:00:00Z"
    assert brk["entry_at"] == "2026-02-05T00:00:00Z" and brk["entry_price"] == 73_165.84
    # 1d: open of the 1h bar 2026-02-05T00:00 to the close of 2026-02-05T23:00 (62,909.86)
    assert brk["return_pct"]["1d"] == pytest.approx(100 * (62_909.86 / 73_165.84 - 1), abs=1e-9)
    rec = next(e for e in by_type["hash-ribbon recovery"]["events"]
               if e["decided_at"].startswith("2026-02"))
    assert (rec["decided_at"], rec["entry_at"]) == ("2026-02-26T00:00:00Z",
                                                     "2026-02-27T00:00:00Z")
    # 7d: 67,485.19 (open 2026-02-27T00:00) -> 70,890.72 (close 2026-03-05T23:00)
    assert rec["return_pct"]["7d"] == pytest.approx(100 * (70_890.72 / 67_485.19 - 1), abs=1e-9)
    window = by_type["daily close below 74,400"]["windows"]["feb-2026"]
    assert window["events"] == ["2026-02-04T00:00:00Z"]
    assert by_type["liquidation spike"]["skipped"].startswith("no liquidations series")


def test_horizon_table_against_an_independent_recount(feb_study: dict) -> None:
    res = next(r for r in feb_study["results"] if r["type"] == "hash-ribbon recovery")
    row = res["horizons"]["7d"]
    values = [e["return_pct"]["7d"] for e in res["events"] if e["return_pct"]["7d"] is not None]
    assert row["n_events"] == len(values)
    assert row["event"]["return_pct"]["mean"] == pytest.approx(np.mean(values))
    assert row["event"]["hit_rate_pct"]["mean"] == pytest.approx(100 * np.mean(np.array(values)
                                                                               > 0))
    low, high = row["event"]["return_pct"]["ci"]
    assert low < row["event"]["return_pct"]["mean"] < high
    uncond = row["unconditional"]["return_pct"]
    assert row["excess_return_pct"]["mean"] == pytest.approx(row["event"]["return_pct"]["mean"]
                                                             - uncond["mean"])
    assert uncond["ci"][0] < uncond["mean"] < uncond["ci"][1]


def test_outcomes_by_hand() -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    bars = pd.DataFrame({"open": [100.0, 110, 90, 95], "high": [112.0, 115, 100, 99],
                         "low": [95.0, 85, 88, 90], "close": [110.0, 90, 95, 97],
                         "volume": 1.0}, index=index)
    out = events.outcomes(bars, 2).values
    # start at bar 0: open 100, close of bar 1 = 90, lowest low 85, highest high 115
    assert out[0].tolist() == pytest.approx([-10.0, -15.0, 15.0, 0.0])
    # start at bar 2: open 90, close 97, low 88, high 100
    assert out[2].tolist() == pytest.approx([100 * 7 / 90, 100 * -2 / 90, 100 * 10 / 90, 100.0])
    assert len(out) == 3
    assert events.independent(np.array([0, 1, 2, 5]), 2) == 3


def test_cooldown_keeps_the_first_event_of_each_burst() -> None:
    index = pd.date_range("2024-01-01", periods=20, freq="1D", tz="UTC")
    flags = pd.Series(False, index=index)
    flags.iloc[[0, 1, 6, 7, 15]] = True
    kept = det.apply_cooldown(flags, WEEK)
    assert np.flatnonzero(kept).tolist() == [0, 7, 15]


@pytest.mark.parametrize("etype", [
    HashRibbon(kind="hash_ribbon", name="recovery"),
    HashRibbon(kind="hash_ribbon", name="capitulation", signal="capitulation"),
    FearGreed(kind="fear_greed", name="fg", threshold=10),
    EtfOutflowStreak(kind="etf_outflow_streak", name="etf", days=3),
    LevelBreak(kind="level_break", name="ath", ath_fraction=0.59, hold=2),
    FastDrawdown(kind="fast_drawdown", name="fast", drop_pct=10, within="3d"),
], ids=lambda t: t.name)
def test_removing_the_future_changes_no_past_event(daily: pd.DataFrame, context: dict,
                                                   etype: object) -> None:
    lags = {kind: pd.Timedelta("1D") for kind in context}
    assert det.lookahead_offences(daily, context, lags, etype, WEEK, cuts=25) == []


def test_lookahead_check_catches_a_series_read_before_publication(daily: pd.DataFrame,
                                                                  context: dict) -> None:
    """Control: a fear & greed series declared public on its own timestamp (lag 0) is truncated
    at its true 1-day lag, so events that used it early change."""
    eager = {"fear_greed": context["fear_greed"].assign(
        published_at=context["fear_greed"].index)}
    etype = FearGreed(kind="fear_greed", name="fg", threshold=25)
    found = det.lookahead_offences(daily, eager, {"fear_greed": pd.Timedelta("1D")}, etype,
                                   pd.Timedelta("1D"), cuts=200)
    assert found


def test_cli_events_writes_a_reproducible_report(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "ev.toml"
    config.write_text(FEB_CONFIG.replace('timeframe = "1h"', 'timeframe = "1d"'),
                      encoding="utf-8")
    outs = []
    for name in ("a", "b"):
        assert main(["events", str(config), "--out", str(tmp_path / name)]) == 0
        (folder,) = (tmp_path / name).iterdir()
        assert (folder / "events.html").read_text(encoding="utf-8").count("event-type") >= 2
        report = json.loads((folder / "events.json").read_text(encoding="utf-8"))
        report.pop("timing")
        outs.append(report)
    assert outs[0] == outs[1]
    assert outs[0]["seed"] == 3 and outs[0]["config"]["events"]["seed"] == 3
    again = events.study(EventStudyConfig.model_validate(outs[0]["config"]), "events.json")
    again.pop("timing")
    assert json.loads(json.dumps(again)) == outs[0]  # the JSON alone reproduces the study
    assert "daily close below 74,400" in capsys.readouterr().out
    assert main(["events", str(config), "--lookahead"]) == 0


def test_cli_events_refuses_a_bad_event_type(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(FEB_CONFIG.replace("level = 74400", "level = 74400\nath_fraction = 0.5"),
                      encoding="utf-8")
    assert main(["events", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "events.types.1" in err and "exactly one of 'level' or 'ath_fraction'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.browser
def test_events_page_in_browser(feb_study: dict, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # the browser helpers, as test_html_browser
    from browser import visit
    from test_html_browser import assert_clean

    from backtest.lab import pages

    page = tmp_path / "events.html"
    page.write_text(pages.render_events(feb_study), encoding="utf-8")
    with visit(page, tmp_path / "events.png") as seen:
        assert_clean(seen, {"chart-path-0", "chart-path-1"})
        means = seen.values("#event-1 tr[data-horizon] td:nth-child(4)", "data-value")
        table = feb_study["results"][1]["horizons"]
        assert sorted(v for v, _ in means.values()) == sorted(
            row["event"]["return_pct"]["mean"] for row in table.values())
        assert "Skipped: no liquidations series" in seen.page.locator("#event-2").inner_text()


def test_liquidation_spike_and_fast_drawdown_by_hand() -> None:
    """A user liquidations series (published a day later) and a 3-day drawdown, on daily bars."""
    index = pd.date_range("2024-01-01", periods=10, freq="1D", tz="UTC")
    close = np.array([100.0, 101, 100, 99, 100, 92, 85, 86, 87, 88])
    bars = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 1.0}, index=index)
    liq = pd.DataFrame({"long_liq_usd": [1.0, 1, 1, 1, 5, 6, 1, 1, 1, 1],
                        "short_liq_usd": 1.0}, index=index)
    liq["published_at"] = index + pd.Timedelta("1D")
    from backtest.lab.config import LiquidationSpike

    spike = det.raw_events(bars, {"liquidations": liq},
                           LiquidationSpike(kind="liquidation_spike", name="l", k=3.0, window=3))
    # day 4 (5 >= 3 x mean(1, 1, 1)) is published at day 5 00:00 = the close of bar day 4;
    # day 5 (6 vs mean(1, 1, 5) = 2.33) stays on: no new event
    assert np.flatnonzero(spike).tolist() == [4]
    fast = det.raw_events(bars, {}, FastDrawdown(kind="fast_drawdown", name="f", drop_pct=10,
                                                 within="3d"))
    # highest high of the last 3 bars (incl. the bar): day 5 -> 101 (92 / 101 - 1 = -8.9%),
    # day 6 -> 101 (85 / 101 - 1 = -15.8%: fires), day 7 -> 93 (86 / 93 - 1 = -7.5%: off)
    assert np.flatnonzero(fast).tolist() == [6]
