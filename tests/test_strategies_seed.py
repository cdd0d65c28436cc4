"""Seed replays of the crash strategies on the real bundled data (issue 4 acceptance).

Every run goes through :func:`backtest.pipeline.execute` with a RunConfig built here, fees and
slippage 0 unless the test is about fees; prices quoted are rows of datasets/btcusdt_1h / _1d.
Bars are labelled by their OPEN time (UTC); a signal at a bar's close fills at the next open.
The last test runs every strategy's own config through the CLI.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import strategies
from backtest import pipeline
from backtest.cli import main
from backtest.config.loader import parse_config
from backtest.data.bars import load_bars
from backtest.data.external import align_to_bars, load_external
from backtest.features.indicators import hash_ribbons
from scripts.bundle_datasets import shared_data_dir
from strategies import liquidation_flush, miner_capitulation, support_ladder

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()
UTC = "UTC"


def execute(name: str, data: dict[str, Any], params: dict[str, Any] | None = None,
            execution: dict[str, Any] | None = None,
            external: dict[str, Any] | None = None) -> pipeline.RunOutcome:
    raw = {"data": data, "strategy": {"name": name, "params": params or {}},
           "execution": {"fee_rate": 0.0, "slippage_rate": 0.0, **(execution or {})},
           "external": external or {}}
    return pipeline.execute(parse_config(raw, "seed"), strategies.REGISTRY[name], "seed")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# --- break_below_74k ---------------------------------------------------------------------------

def break_below_trades(confirm_bars: int) -> pd.DataFrame:
    out = execute("break_below_74k", {"dataset": "btcusdt_1h", "start": "2026-02-01",
                                      "end": "2026-02-10"},
                  {"confirm_bars": confirm_bars, "stop_level": 76_000.0, "target": 66_000.0})
    return out.result.trades


def test_break_below_74k_confirm_1_is_stopped_out_at_76000() -> None:
    # first 1h close below 74,400: the 2026-02-03 18:00 bar -> short at the 19:00 open 73,139.12;
    # the 20:00 bar's high 76,721.25 reaches the 76,000 stop, which fills at the level.
    first = break_below_trades(1).iloc[0]
    assert (first["direction"], first["entry_time"], first["entry_price"]) == (
        "short", ts("2026-02-03 19:00"), 73_139.12)
    assert (first["exit_time"], first["exit_price"], first["exit_reason"]) == (
        ts("2026-02-03 20:00"), 76_000.0, "stop")


def test_break_below_74k_confirm_2_exits_at_the_66000_target() -> None:
    # two consecutive closes below 74,400 end with the 2026-02-04 15:00 bar -> short at the 16:00
    # open 74,136.48; the 2026-02-05 18:00 bar's low reaches 66,000, filled at the level.
    first = break_below_trades(2).iloc[0]
    assert (first["direction"], first["entry_time"], first["entry_price"]) == (
        "short", ts("2026-02-04 16:00"), 74_136.48)
    assert (first["exit_time"], first["exit_price"], first["exit_reason"]) == (
        ts("2026-02-05 18:00"), 66_000.0, "target")


# --- reclaim_80k -------------------------------------------------------------------------------

def test_reclaim_80k_never_enters_after_the_break() -> None:
    # no daily close above 80,000 from 2026-02-05 to the end of the data (the highest is 78,657.55),
    # so even the loosest close-confirmed reclaim (no volume condition) never fires.
    data = {"dataset": "btcusdt_1d", "start": "2026-02-05"}
    out = execute("reclaim_80k", data, {"volume_k": 0.0})
    assert out.bars["close"].max() < 80_000.0
    assert out.result.trades.empty and (out.result.position == 0).all()
    # the same rule at 70,000 does enter in this period (so the check above can fail)
    control = execute("reclaim_80k", data, {"volume_k": 0.0, "level": 70_000.0})
    assert len(control.result.trades) >= 1
    assert control.result.trades["entry_time"].min() >= ts("2026-02-05")


# --- miner_capitulation ------------------------------------------------------------------------

def test_the_bundled_ribbon_recovers_on_2026_02_26() -> None:
    raw = load_external("hash_rate")
    ribbon = hash_ribbons(raw["hash_rate_ehs"])
    assert ribbon.loc[ts("2026-02-25"), "capitulation"]
    assert ribbon.loc[ts("2026-02-26"), "recovery"]
    # the 30 < 60 run began on 2026-01-06: 51 capitulation days, above min_capitulation_days 7
    assert ribbon.loc[ts("2026-01-06"):ts("2026-02-25"), "capitulation"].all()


def miner_entries(dataset: str, lag: str | None = None) -> pd.Series:
    bars, _ = load_bars(parse_config({"data": {"dataset": dataset, "end": "2026-03-31"},
                                      "strategy": {"name": "x"}}, "seed").data, "seed")
    context = {"hash_rate": load_external("hash_rate", lag=lag)}
    params = miner_capitulation.Params()
    sigs = miner_capitulation.signals(
        bars, miner_capitulation.features(bars, params, context), params)
    return sigs.long_entries.loc[ts("2026-01-06"):]


def test_miner_capitulation_fires_on_the_first_bar_allowed_to_know_the_recovery() -> None:
    # The 2026-02-26 value is published at 2026-02-27 00:00 (default lag 1d). align_to_bars gives
    # bar t the latest row with published_at <= close(t) = t + 1 bar, exact matches allowed: the
    # daily bar OPENING 2026-02-26 closes at 2026-02-27 00:00 and is the first to see it; the bar
    # opening 2026-02-25 closes at 2026-02-26 00:00 and still sees the capitulating 02-25 row.
    raw = load_external("hash_rate")
    seen = align_to_bars(raw, pd.DatetimeIndex([ts("2026-02-25"), ts("2026-02-26")]),
                         ["hash_rate_ehs"], "1d")
    assert seen["hash_rate_ehs"].iloc[0] == raw.loc[ts("2026-02-25"), "hash_rate_ehs"]
    assert seen["hash_rate_ehs"].iloc[1] == raw.loc[ts("2026-02-26"), "hash_rate_ehs"]
    daily = miner_entries("btcusdt_1d")
    assert daily.index[daily].tolist() == [ts("2026-02-26")]
    # on 1h bars the first to know is the bar opening 2026-02-26 23:00 (closes 02-27 00:00)
    hourly = miner_entries("btcusdt_1h")
    assert hourly.index[hourly].tolist() == [ts("2026-02-26 23:00")]
    # a 2-day publication lag moves it one daily bar later: the signal follows the data's clock
    late = miner_entries("btcusdt_1d", lag="2d")
    assert late.index[late].tolist() == [ts("2026-02-27")]


def test_miner_capitulation_run_buys_at_the_next_open() -> None:
    out = execute("miner_capitulation", {"dataset": "btcusdt_1d", "window": "feb-2026"})
    entry = out.result.trades.iloc[0]
    # signal at the 2026-02-26 close -> fill at the 2026-02-27 open
    assert entry["entry_time"] == ts("2026-02-27")
    assert entry["entry_price"] == out.bars.loc[ts("2026-02-27"), "open"]


# --- support_ladder ----------------------------------------------------------------------------

LADDER = {"start": "2026-01-15", "tranche_fraction": 0.25}


def test_support_ladder_buys_each_tranche_once_within_budget() -> None:
    init_cash, fee = 100_000.0, 0.001
    out = execute("support_ladder", {"dataset": "btcusdt_1d", "window": "feb-2026"}, LADDER,
                  {"init_cash": init_cash, "fee_rate": fee})
    orders = out.result.orders
    # lows: 2026-02-04 71,888 (no rung), 2026-02-05 62,345 (70k and 68k), 2026-02-06 60,000.00
    # (60k; touch is <=), 50k never: two buys, at the 02-06 open (two tranches) and 02-07 open
    assert orders["side"].tolist() == ["buy", "buy"]
    assert orders["time"].tolist() == [ts("2026-02-06"), ts("2026-02-07")]
    spent = (orders["size"] * orders["price"] + orders["fees"]).to_numpy()
    # 2 x 0.25 x 100,000 = 50,000 then 25,000, fees included
    assert spent == pytest.approx([50_000.0, 25_000.0], rel=1e-9)
    cash = out.result.equity - out.result.position * out.bars["close"]
    assert cash.min() == pytest.approx(25_000.0) and (cash >= 25_000.0 - 1e-6).all()
    params = strategies.REGISTRY["support_ladder"].make_params(LADDER)
    bars, _ = load_bars(parse_config({"data": {"dataset": "btcusdt_1d"},
                                      "strategy": {"name": "x"}}, "seed").data, "seed")
    fills = support_ladder.tranche_fills(bars, support_ladder.features(bars, params, {}), params)
    # over the whole history (to 2026-04-29) each rung fires at most once
    assert fills.sum().tolist() == [1, 1, 1, 0]


def test_support_ladder_notes_compare_with_lump_sum_and_dca() -> None:
    out = execute("support_ladder", {"dataset": "btcusdt_1d", "window": "feb-2026"}, LADDER)
    notes = out.report["strategy"]["notes"]
    # lump-sum: 100% at the 2026-01-15 open 96,951.78 with fee 0.001, valued at the 2026-02-28
    # close 66,973.26: 66,973.26 / (96,951.78 x 1.001) - 1 = -30.99%
    assert notes["lump_sum_return_pct"] == "-30.99"
    # DCA every 7 days from Thursday 2026-01-15: 01-15, 01-22, 01-29, 02-05, 02-12, 02-19, 02-26
    assert notes["dca_buys"] == "7"
    bench = support_ladder.benchmarks(out.bars, support_ladder.Params(**LADDER), 100_000.0, 0.001)
    buy_opens = out.bars["open"][bench["dca_buy"]]
    units = (100_000.0 / 7 / (buy_opens * 1.001)).sum()
    assert bench["dca"].iloc[-1] == pytest.approx(units * 66_973.26)
    assert notes["dca_return_pct"] == f"{100 * (units * 66_973.26 / 100_000.0 - 1):.2f}"
    assert notes["tranches_signalled"] == "3 of 4"


# --- liquidation_flush -------------------------------------------------------------------------

def flush_entries(external: dict[str, Any]) -> tuple[list[pd.Timestamp], dict[str, str]]:
    out = execute("liquidation_flush", {"dataset": "btcusdt_1d", "window": "feb-2026"},
                  external=external)
    notes = out.report["strategy"]["notes"]
    return out.result.trades["entry_time"].tolist(), notes


def test_liquidation_flush_with_external_series_and_with_the_proxy() -> None:
    # external: long-liq intensity 4.21 / 3.84 and OI -9.8% / -8.1% on 2026-01-31 / 02-05 (known
    # at those bars' closes), RSI(14) 25.2 / 15.8 -> fills at the 02-01 and 02-06 opens
    files = {"liquidations": {"path": str(SHARED / "btc_liquidations_1d.csv")},
             "open_interest": {"path": str(SHARED / "btc_open_interest_1d.csv")}}
    entries, notes = flush_entries(files)
    assert entries == [ts("2026-02-01"), ts("2026-02-06")]
    assert notes["liquidations"].startswith("external liquidations series")
    assert notes["open_interest"].startswith("external open interest series")
    # proxy: 01-31 -6.6% on 2.45x volume, taker-buy share 0.455; 02-05 -14.0%, 5.08x, 0.461
    entries, notes = flush_entries({})
    assert entries == [ts("2026-02-01"), ts("2026-02-06")]
    assert notes["liquidations"].startswith("proxy from bars")


def test_liquidation_proxy_skips_the_taker_filter_without_the_column() -> None:
    bars, _ = load_bars(parse_config({"data": {"dataset": "btcusdt_1d"},
                                      "strategy": {"name": "x"}}, "seed").data, "seed")
    params = liquidation_flush.Params()
    plain = bars.drop(columns=["taker_buy_base_volume"])
    with_taker = liquidation_flush.signals(
        bars, liquidation_flush.features(bars, params, {}), params)
    without = liquidation_flush.signals(
        plain, liquidation_flush.features(plain, params, {}), params)
    assert "taker-sell filter skipped" in without.notes["liquidations"]
    # dropping a condition can only add entries, and here it does
    assert (with_taker.long_entries <= without.long_entries).all()
    assert without.long_entries.sum() > with_taker.long_entries.sum()


# --- every strategy's config runs through the CLI ---------------------------------------------

@pytest.mark.parametrize("name", sorted(strategies.REGISTRY))
def test_each_strategy_config_writes_a_report(name: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "configs" / f"{name}.toml"
    pinned = {"start", "end"} & set(tomllib.loads(config.read_text())["data"])
    # a config pinned to start/end (the spine's break_below_74k) cannot take a window override
    for extra in ([[]] if pinned else [[], ["--set", "data.window=feb-2026"]]):
        out_dir = tmp_path / ("window" if extra else "plain")
        code = main(["run", str(config), "--out", str(out_dir), *extra])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        run_dir = Path(captured.out.splitlines()[0].removeprefix("report: "))
        report = json.loads((run_dir / "report.json").read_text())
        assert report["strategy"]["name"] == name
        assert np.isfinite(report["metrics"]["total_return_pct"])
        if extra:
            assert report["dataset"]["start"] == "2026-01-15T00:00:00Z"


# --- etf_outflow_derisk and fear_greed_contrarian ----------------------------------------------

def test_etf_outflow_derisk_holds_from_the_window_start_and_steps_out_on_outflows() -> None:
    out = execute("etf_outflow_derisk", {"dataset": "btcusdt_1d", "window": "feb-2026"})
    trade = out.result.trades.iloc[0]
    # invested from the run's first bar: its signal (2026-01-15 close) fills at the 01-16 open
    assert (trade["entry_time"], trade["entry_price"]) == (ts("2026-01-16"), 95_604.81)
    # the 12-trading-day sum to 2026-01-30 is -2.27bn < -2.0bn, public at 01-31 00:00 = the close
    # of the 01-30 bar -> sold at the 2026-01-31 open 84,260.50; back in only at >= 0 (March)
    assert (trade["exit_time"], trade["exit_price"]) == (ts("2026-01-31"), 84_260.50)
    assert len(out.result.trades) == 1 and (out.result.position.loc[ts("2026-01-31"):] == 0).all()


def test_fear_greed_contrarian_scales_in_during_the_fear_spell() -> None:
    out = execute("fear_greed_contrarian", {"dataset": "btcusdt_1d", "window": "feb-2026"})
    buys = out.result.orders[out.result.orders["side"] == "buy"]
    # index <= 15 on 02-01, 02-02, then 17 on 02-03, then <= 15 from 02-04 to 02-28. A day's value
    # is known at its daily bar's close: tranches at 02-01 (spell 1) and 02-04, 02-11, 02-18, 02-25
    # (spell 2, every 7 bars) -> fills at the next opens; the fifth finds no cash left
    assert buys["time"].tolist() == [ts("2026-02-02"), ts("2026-02-05"), ts("2026-02-12"),
                                     ts("2026-02-19")]
    assert (buys["size"] * buys["price"]).tolist() == pytest.approx([25_000.0] * 4)
