"""HTML reports: pure helpers checked by hand, page weight, file modes, byte-for-byte
re-rendering, and every page kind opened in real headless Chromium with the network off (no
console error, every chart drew, numbers match the JSON, no table clipped and no overlapping
text at 1400 px, hostile names shown as text). Screenshots land in each test's tmp_path
(pytest keeps the last runs under its basetemp), named after the page."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import make_run, synthetic_bars_csv, visit

from backtest import catalogue
from backtest.cli import main
from backtest.report import charts, compare, formatting, html
from backtest.report import files as report_io
from backtest.report.pages import optimization as opt_page
from backtest.report.pages import run as run_page

HOSTILE = "<script>alert(1)</script>"
MAX_PAGE_BYTES = 1_500_000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bars_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(synthetic_bars_csv(tmp_path_factory.mktemp("bars") / "synth_1h.csv"))


@pytest.fixture(scope="module")
def run_dir(bars_csv: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run, plus the perp metrics the perpetuals engine adds."""
    path = make_run(tmp_path_factory.mktemp("runs"), bars_csv)
    rep = json.loads((path / "report.json").read_text())
    rep["metrics"] |= {"funding_paid": 12.5, "liquidations": 0}
    (path / "report.json").write_text(json.dumps(rep))
    return path


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def opt_dict(study: str = "break-below search", param: str = "confirm_bars",
             n_trials: int = 24) -> dict[str, Any]:
    """A synthetic optimization.json in backtest.optimize's shape: ``n_trials`` trials of three
    params, two objectives, 3 walk-forward folds (the last without out-of-sample trades, so its
    metric is null), overfitting measures."""
    rng = np.random.default_rng(7)
    folds = [{"name": f"wf-{i}", "is": {"sharpe": 2.0 - i / 2, "total_return_pct": 9.0,
                                        "n_trades": 4.0},
              "oos": {"sharpe": 0.5 - i / 4, "total_return_pct": 1.0, "n_trades": 2.0}}
             for i in range(3)]
    trials = [{"number": n, "state": "COMPLETE", "feasible": True, "folds": folds,
               "params": {"level": 70000.0 + 250.0 * n + 0.123456789, param: n % 3 + 1,
                          "mode": ["short", "long"][n % 2]},
               "values": [float(7 + n / 20 + rng.normal()), float(5 + n % 5)]}
              for n in range(n_trials)]
    trials.append({"number": n_trials, "state": "FAIL", "params": {}, "values": None})
    best = {"number": 23, "values": [8.1, 5.0],
            "params": {"level": 71078.63318458782, param: 1}, "folds": folds}
    walk = [{"fold": f["name"], "trial": 3, "params": {"level": 70750.123456},
             "is": f["is"], "oos": f["oos"]} for f in folds]
    walk[2] = walk[2] | {"oos": {"sharpe": None, "total_return_pct": None, "n_trades": 0.0}}
    return {"study": study, "strategy": "break_below_74k", "storage": "journal",
            "objectives": [{"metric": "sharpe", "direction": "maximize"},
                           {"metric": "max_drawdown_pct", "direction": "minimize"}],
            "trials": trials, "best": best,
            "pareto_front": [{"number": n, "values": trials[n]["values"], "params": {}}
                             for n in (3, 10, 23)],
            "folds": [{"name": f["name"], "train": [], "test": []} for f in folds],
            "walk_forward": {"metric": "sharpe", "is_mean": 1.5, "oos_mean": 0.25,
                             "folds": walk},
            "overfitting": {"n_trials": 24, "deflated_sharpe": {"dsr": 0.31, "sharpe": 0.2},
                            "pbo": {"pbo": 0.62, "n_splits": 20},
                            "decay": [{"number": 3, "params": {"level": 70750.0},
                                       "metric": "sharpe", "is": 2.0, "oos": 0.4,
                                       "decay": -1.6, "oos_over_is": 0.2}]}}


def assert_clean(seen: Any, expected_charts: set[str]) -> None:
    """No errors, no dialogs, no network, every expected chart drew, nothing clipped and no
    text overlapping inside a chart."""
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.dialogs == []
    assert seen.blocked == [] and {u.split(":")[0] for u in seen.requests} == {"file"}
    charts_drawn = {c["id"]: c["drawn"] for c in seen.charts()}
    assert set(charts_drawn) == expected_charts
    assert all(charts_drawn.values()), charts_drawn
    assert seen.clipped_tables() == []
    assert seen.overlapping_text() == []


# ---------------------------------------------------------------- pure helpers


def test_script_json_cannot_close_the_script_tag() -> None:
    text = charts.script_json({"label": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"label": "</script><!-- & \u2028"}


def test_downsample_keeps_extremes_and_bounds_size() -> None:
    n = 100_000
    y = np.sin(np.arange(n) / 500.0)
    y[12_345], y[67_890] = 9.0, -9.0  # lone spikes must survive
    noise = np.random.default_rng(1).normal(size=n)  # extremes in other rows than y's
    keep = charts.downsample_index(n, [y, noise], max_points=5000)
    assert keep.size <= 5000 and keep[0] == 0 and keep[-1] == n - 1
    assert 12_345 in keep and 67_890 in keep
    assert int(np.argmax(noise)) in keep and int(np.argmin(noise)) in keep
    assert np.all(np.diff(keep) > 0)
    assert charts.downsample_index(10, [y[:10]]).tolist() == list(range(10))


def test_numbers_read_as_the_catalogue_says() -> None:
    assert formatting.format_metric("total_return_pct", 12.3456) == "12.35%"
    assert formatting.format_metric("win_rate_pct", 50.0) == "50.0%"
    assert formatting.format_metric("sharpe", -0.4686) == "-0.47"
    assert formatting.format_metric("n_trades", 6.0) == "6"
    assert formatting.format_metric("fees_paid", 3061.6228) == "3,061.62"
    assert formatting.format_metric("sharpe", None) == "n/a"
    assert formatting.format_metric("not_in_catalogue", 1.5) == "1.5000"
    assert formatting.format_param(71078.63318458782) == "71,078.6"
    assert formatting.format_param(0.000123456789) == "0.000123457"
    assert formatting.format_param(-2.5) == "-2.5" and formatting.format_param(7) == "7"
    assert formatting.format_param("short") == "short"
    assert formatting.metric_label("max_drawdown_pct") == "Max drawdown"


def test_metric_order_is_the_catalogues_whatever_the_dict_order() -> None:
    first = {"zeta": 1, "sharpe": 1.0, "total_return_pct": 2.0, "alpha": 0}
    assert formatting.ordered_keys(first) == formatting.ordered_keys(dict(sorted(first.items())))
    assert formatting.ordered_keys(first) == ["total_return_pct", "sharpe", "alpha", "zeta"]
    assert list(catalogue.CATALOGUE)[:2] == ["total_return_pct", "cagr_pct"]


def test_monthly_returns_by_hand() -> None:
    idx = pd.date_range("2026-01-30", periods=4, freq="D", tz="UTC")  # Jan 30, 31, Feb 1, 2
    equity = pd.Series([101.0, 110.0, 105.0, 99.0], index=idx)
    table = run_page.monthly_returns(equity, init_cash=100.0)
    # January: 110 / 100 - 1 = +10 %; February: 99 / 110 - 1 = -10 %.
    assert table.loc[2026, 1] == pytest.approx(10.0)
    assert table.loc[2026, 2] == pytest.approx(-10.0)
    assert table.loc[2026, 3:].isna().all()


def test_gap_summary_by_hand() -> None:
    gaps = [{"first_missing": "2019-03-12T02:00:00Z", "last_missing": "2019-03-12T07:00:00Z",
             "missing_bars": 6},
            {"first_missing": "2019-05-15T03:00:00Z", "last_missing": "2019-05-15T12:00:00Z",
             "missing_bars": 10}]
    got = run_page.gap_summary({"freq": "1h", "gaps": gaps})
    assert got is not None
    assert got["count"] == 2 and got["total_hours"] == 16.0
    assert got["longest"] == {"first": "2019-05-15T03:00:00Z", "last": "2019-05-15T12:00:00Z",
                              "hours": 10.0}
    assert run_page.gap_summary({"freq": "15min", "gaps": gaps[:1]})["total_hours"] == 1.5
    assert run_page.gap_summary({"freq": "1h", "gaps": []}) is None


def test_regime_trade_counts_by_hand() -> None:
    spans = [{"regime": "calm", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T09:00:00Z"},
             {"regime": "crash", "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T19:00:00Z"},
             {"regime": "calm", "start": "2026-01-01T20:00:00Z", "end": "2026-01-02T23:00:00Z"}]
    trades = pd.DataFrame({"entry_time": ["2026-01-01T03:00:00Z", "2026-01-01T10:00:00Z",
                                          "2026-01-01T19:00:00Z", "2026-01-02T05:00:00Z"],
                           "status": ["closed", "closed", "closed", "open"]})
    # 03:00 and the open trade at 05:00 next day calm; 10:00 and 19:00 crash (edges inclusive).
    assert run_page.regime_trade_counts({"regime_spans": spans}, trades) == {"calm": 2,
                                                                            "crash": 2}


def test_regime_bands_merge_close_spans_with_one_legend_entry_each() -> None:
    spans = [{"regime": "crash", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
             {"regime": "calm", "start": "2026-01-02T01:00:00Z", "end": "2026-01-02T02:00:00Z"},
             {"regime": "crash", "start": "2026-01-02T03:00:00Z", "end": "2026-01-03T00:00:00Z"},
             {"regime": "bear", "start": "2026-01-03T01:00:00Z", "end": "2026-06-01T00:00:00Z"},
             {"regime": "crash", "start": "2026-06-01T01:00:00Z", "end": "2026-12-31T00:00:00Z"}]
    bands = charts.regime_bands(spans, "2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z")
    # The two January crash spans (3 h apart, well under a year / 150) merge; the June one not.
    assert [(b["name"], b["x0"], b["x1"]) for b in bands] == [
        ("crash", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
        ("crash", "2026-06-01T01:00:00Z", "2026-12-31T00:00:00Z"),
        ("bear", "2026-01-03T01:00:00Z", "2026-06-01T00:00:00Z")]
    assert [b["showlegend"] for b in bands] == [True, False, True]


def test_many_trades_become_bucketed_markers() -> None:
    times = pd.Series(pd.date_range("2019-01-01", "2025-12-31", periods=3000, tz="UTC"))
    prices = pd.Series(np.linspace(3000.0, 90000.0, 3000))
    pts = charts.aggregated_markers(times, prices, "2019-01-01T00:00:00Z",
                                    "2025-12-31T00:00:00Z")
    assert len(pts["x"]) <= charts.MAX_MARKERS
    assert sum(int(t.split()[0]) for t in pts["text"]) == 3000
    few = charts.aggregated_markers(times[:5], prices[:5], "2019-01-01", "2025-12-31")
    assert len(few["x"]) == 5 and "text" not in few


def test_candles_of_closes_by_hand() -> None:
    idx = pd.date_range("2026-01-01", periods=8, freq="h", tz="UTC")
    close = pd.Series([10.0, 12.0, 9.0, 11.0, 11.0, 15.0, 14.0, 13.0], index=idx)
    period, candles = charts.close_candles(close)
    assert period == "1h" and candles["open"].tolist()[1:] == close.tolist()[:-1]
    assert (candles["high"] == candles[["open", "close"]].max(axis=1)).all()
    long = pd.Series(np.arange(61_308.0), index=pd.date_range(
        "2019-01-01", periods=61_308, freq="h", tz="UTC"))
    period, candles = charts.close_candles(long)
    # 7 years of hours: 4h and 1D give over 600 candles, weeks give 365.
    assert period == "1W" and len(candles) <= charts.MAX_CANDLES
    first = candles.iloc[1]  # the second week: opens at the first week's last close
    week = long[candles.index[1]:candles.index[2] - pd.Timedelta("1h")]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        candles.iloc[0]["close"], week.max(), candles.iloc[0]["close"], week.iloc[-1])


def test_param_importances_by_hand() -> None:
    params = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["p", "q", "p", "q"]})
    y = np.array([0.0, 2.0, 10.0, 12.0])
    # mean 6; total SS = 36+16+16+36 = 104. a: groups 1 and 11 -> 2*25 + 2*25 = 100;
    # b: groups 5 and 7 -> 2*1 + 2*1 = 4. Shares 100/104 and 4/104.
    got = opt_page.param_importances(params, y)
    assert list(got) == ["a", "b"]
    assert got["a"] == pytest.approx(100 / 104) and got["b"] == pytest.approx(4 / 104)


def test_param_heatmap_by_hand() -> None:
    trials = pd.DataFrame({"number": range(5), "obj0": [1.0, 3.0, 2.0, -1.0, 5.0],
                           "p:a": [1, 1, 2, 2, 2], "p:b": ["x", "x", "x", "y", "y"]})
    maps = opt_page.param_heatmaps(trials, {"name": "sharpe", "direction": "maximize"},
                                   {"a": 0.6, "b": 0.4})
    assert len(maps) == 1 and maps[0]["rows"] == ["1", "2"] and maps[0]["cols"] == ["x", "y"]
    # best of (a=1, b=x): max(1, 3) = 3; (2, x): 2; (2, y): max(-1, 5) = 5; (1, y): untried.
    assert [[(v, n) for v, n, _ in row] for row in maps[0]["cells"]] == [
        [(3.0, 2), (None, 0)], [(2.0, 1), (5.0, 2)]]
    lows = opt_page.param_heatmaps(trials, {"name": "dd", "direction": "minimize"},
                                   {"a": 0.6, "b": 0.4})
    assert lows[0]["cells"][1][1][0] == -1.0


def test_best_is_among_runs_that_traded_and_follows_direction() -> None:
    sharpe, drawdown = catalogue.direction("sharpe"), catalogue.direction("max_drawdown_pct")
    assert compare.best_index([1.0, 3.0, None], sharpe, [True] * 3) == 1
    assert compare.best_index([5.0, 2.0, 9.0], drawdown, [True] * 3) == 1
    # the do-nothing run (0 % drawdown) is not "best": it never traded
    assert compare.best_index([5.0, 0.0, 9.0], drawdown, [True, False, True]) == 0
    assert compare.best_index([5.0, 0.0], drawdown, [True, False]) is None
    assert compare.best_index([3, 3], 1, [True, True]) is None
    assert compare.best_index([1, 7], catalogue.direction("n_trades"), [True, True]) is None


# ---------------------------------------------------------------- files and re-rendering


def test_report_rerenders_the_runs_page_byte_for_byte(bars_csv: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, bars_csv)
    written = (run / "report.html").read_bytes()
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").read_bytes() == written
    assert f"report: {run / 'report.html'}" in capsys.readouterr().out
    # plotly.js inlined exactly once, nothing loaded from elsewhere, and the page is light.
    page = written.decode()
    assert page.count("* plotly.js (basic - minified) v") == 1 and "<script src" not in page
    assert len(written) <= MAX_PAGE_BYTES


@pytest.mark.usefixtures("umask_027")
def test_every_output_gets_the_mode_the_umask_gives(bars_csv: str, tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "runs", bars_csv, label=f"c{c}", params={"confirm_bars": c})
            for c in (1, 2)]
    assert main(["report", str(runs[0])]) == 0
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp.html")]) == 0
    report_io.atomic_write_text(tmp_path / "optimization.html", "x")
    files = [tmp_path / "cmp.html", tmp_path / "optimization.html",
             *(p for r in runs for p in r.iterdir())]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
        f.name: "0o640" for f in files}
    assert {oct(r.stat().st_mode & 0o777) for r in runs} == {"0o750"}


def test_page_weight_of_a_200_trial_study() -> None:
    page = html.render_optimization(opt_dict(n_trials=200)).encode()
    assert len(page) <= MAX_PAGE_BYTES
    assert b"71078.63318458782</" not in page and b"71,078.6</td>" in page


def test_report_command_on_a_missing_dir_is_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a report.json" in err


# ---------------------------------------------------------------- in Chromium


@pytest.mark.browser
def test_run_report_in_browser(run_dir: Path, tmp_path: Path) -> None:
    page_path = tmp_path / "report.html"
    page_path.write_text(html.render_run_dir(run_dir))
    rep = json.loads((run_dir / "report.json").read_text())
    trades = pd.read_csv(run_dir / "trades.csv")
    with visit(page_path, tmp_path / "run.png", width=1400) as seen:
        assert_clean(seen, {"chart-equity", "chart-underwater", "chart-price"})
        assert seen.table_fits("#trades-table")
        shown = seen.values("#headline [data-metric]", "data-metric")
        assert {k: v for k, (v, _) in shown.items()} == rep["metrics"]
        assert {k: t for k, (_, t) in shown.items()} == {
            k: formatting.format_metric(k, v) for k, v in rep["metrics"].items()}
        assert list(shown) == formatting.ordered_keys(rep["metrics"], rep["benchmark"])
        bench = seen.values("[data-benchmark]", "data-benchmark")
        assert {k: v for k, (v, _) in bench.items()} == rep["benchmark"]
        page = seen.page
        names = page.eval_on_selector_all("#headline .name", "els => els.map(e => e.textContent)")
        assert names[0] == "Total return" and "total_return_pct" not in names
        regimes = rep["by_regime"]["strategy"]
        cells = seen.page.eval_on_selector_all(
            "#by_regime td[data-segment]", "els => els.map(e => [e.dataset.segment, "
                                           "e.dataset.metric, JSON.parse(e.dataset.value)])")
        assert cells and all(regimes[s][m] == v for s, m, v in cells if m != "n_trades")
        assert {s for s, _, _ in cells} == set(regimes)
        per_regime = {s: v for s, m, v in cells if m == "n_trades"}
        assert per_regime == run_page.regime_trade_counts(rep, trades)
        assert sum(per_regime.values()) == rep["metrics"]["n_trades"] == 2
        assert page.locator("#by_window td", has_text="feb-2026").count() == 1
        rows = page.locator("#trades-table tbody tr")
        assert rows.count() == len(trades) == 2
        assert page.locator("#trades-table td.reason-stop").count() == 1
        # Sorting: click "pnl" twice -> descending, the target trade (largest pnl) first.
        header = page.locator("#trades-table thead th", has_text="pnl")
        header.click()
        header.click()
        first_pnl = rows.first.locator("td").nth(6).inner_text()
        assert first_pnl == formatting.format_trade(trades["pnl"].max(), "pnl")
        shown_trades = page.eval_on_selector_all(
            "#trades-table tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => "
                                      "c.textContent))")
        columns = page.eval_on_selector_all("#trades-table thead th",
                                            "ths => ths.map(t => t.textContent)")
        by_entry = trades.set_index(trades["entry_time"].str[:16].str.replace("T", " "))
        for row in shown_trades:
            csv_row = by_entry.loc[row[0]]
            for column, text in zip(columns[2:], row[2:], strict=True):
                if column not in ("direction", "exit_reason", "status"):
                    assert text == formatting.format_trade(csv_row[column], column), column
        # Monthly returns: a table of the equity's calendar months.
        equity = pd.read_csv(run_dir / "equity.csv", index_col="timestamp", parse_dates=True)
        months = run_page.monthly_returns(equity["equity"], 100000.0)
        jan = json.loads(page.locator("#monthly-table tbody td").nth(1).get_attribute(
            "data-value"))
        assert jan == pytest.approx(months.loc[2026, 1])
        # Levels are named lines in the legend; regimes are bands, one legend entry each.
        levels = page.evaluate("() => document.getElementById('chart-price').data"
                               ".filter(t => t.meta === 'level').map(t => [t.name, t.y[0]])")
        assert sorted(v for _, v in levels) == sorted(rep["strategy"]["levels"].values())
        assert all(name.split()[0] in rep["strategy"]["levels"] for name, _ in levels)
        shapes = page.evaluate("() => document.getElementById('chart-equity').layout.shapes"
                               ".map(s => [s.name, s.showlegend])")
        expected = charts.regime_bands(rep["regime_spans"], rep["dataset"]["start"],
                                       rep["dataset"]["end"])
        assert shapes == [[b["name"], b["showlegend"]] for b in expected] and shapes
        assert sorted(n for n, first in shapes if first) == sorted(
            {s["regime"] for s in rep["regime_spans"]} - {"calm"})
        # The scale buttons switch the price axis to log and back.
        axis = "() => document.getElementById('chart-price').layout.yaxis.type"
        assert page.evaluate(axis) == "linear"
        page.locator("#chart-price .updatemenu-button", has_text="log").click()
        assert page.evaluate(axis) == "log"
        assert seen.overlapping_text() == []
        # Zoomed in to three days, the close line gives way to hourly candles; zoomed out, back.
        page.locator("#chart-price .updatemenu-button", has_text="linear").click()
        assert page.evaluate(axis) == "linear"
        # back to automatic ticks, not log's 1-2-5 rule read as a tick every 1.0 (slow)
        assert page.evaluate("() => document.getElementById('chart-price')._fullLayout"
                             ".yaxis.tickmode") == "auto"
        visible = "() => document.getElementById('chart-price').data.map(t => t.visible)"
        assert page.evaluate(visible)[-2:] == [False, False]
        page.evaluate("() => Plotly.relayout('chart-price', {'xaxis.range': "
                      "['2026-02-03 00:00', '2026-02-06 00:00']})")
        shown = page.evaluate(visible)
        assert shown[0] is False and shown[-2:] == [True, True]
        bodies = page.evaluate("() => document.getElementById('chart-price').data.at(-1)"
                               ".customdata.length")
        candles = charts.close_candles(equity["close"])[1]
        assert bodies == len(candles)
        # the price axis fits the candles in view (5 % margin each side)
        in_view = candles[(candles.index >= "2026-02-02T23:30Z") &
                          (candles.index <= "2026-02-05T23:30Z")]
        low, high = in_view["low"].min(), in_view["high"].max()
        y_range = page.evaluate("() => document.getElementById('chart-price').layout.yaxis"
                                ".range")
        pad = (high - low) * 0.05
        assert y_range == pytest.approx([low - pad, high + pad], rel=1e-4)
        page.evaluate("() => Plotly.relayout('chart-price', {'xaxis.autorange': true})")
        assert page.evaluate(visible)[0] is True and page.evaluate(visible)[-1] is False
        assert page.evaluate("() => document.getElementById('chart-price').layout.yaxis"
                             ".autorange") is True
        # Data gaps: none in the synthetic file, so no gaps section.
        assert page.locator("#gaps").count() == 0
    assert (tmp_path / "run.png").stat().st_size > 10_000


@pytest.mark.browser
def test_optimization_report_in_browser(tmp_path: Path) -> None:
    opt = opt_dict()
    page_path = tmp_path / "optimization.html"
    page_path.write_text(html.render_optimization(opt))
    with visit(page_path, tmp_path / "optimization.png", width=1400) as seen:
        assert_clean(seen, {"chart-history", "chart-importance", "chart-parallel", "chart-pareto",
                            "chart-folds", "chart-slice-0", "chart-slice-1", "chart-slice-2"})
        page = seen.page
        best = seen.values("[data-best-value]", "data-best-value")
        assert [best[k][0] for k in sorted(best)] == opt["best"]["values"]
        params = seen.values("#best-params [data-param]", "data-param")
        assert params == {"level": (71078.63318458782, "71,078.6"), "confirm_bars": (1, "1")}
        text = page.locator("#overfitting").inner_text()
        assert "not distinguishable from luck" in text and "0.3100" in text  # DSR 0.31
        assert "high: the in-sample winner" in text  # PBO 0.62 > 0.5
        assert "level=70,750" in text  # decay candidates' parameters, rounded
        fold_cells = page.eval_on_selector_all(
            "#folds-table td[data-fold]", "els => els.map(e => [e.dataset.fold, "
                                          "e.dataset.metric, JSON.parse(e.dataset.value)])")
        folds = opt["best"]["folds"]
        assert fold_cells == [[f["name"], m, f[part][m]]
                              for m in ("total_return_pct", "sharpe", "n_trades")
                              for f in folds for part in ("is", "oos")]
        walk = page.locator("#walk-forward").inner_text()
        assert "mean out-of-sample 0.25" in walk
        cells = page.eval_on_selector_all("#walk-table tbody tr", "rows => rows.map(r => "
                                          "Array.from(r.cells).map(c => c.textContent))")
        assert [c[1:6] for c in cells] == [["3", "2.00", "4", "0.50", "2"],
                                           ["3", "1.50", "4", "0.25", "2"],
                                           ["3", "1.00", "4", "no trades", "0"]]
        # Heat maps: each shown cell is the best objective of the trials in it.
        trials = opt_page.trial_frame(opt, 2)
        imps = opt_page.param_importances(
            trials[["p:level", "p:confirm_bars", "p:mode"]].set_axis(
                ["level", "confirm_bars", "mode"], axis=1), trials["obj0"].to_numpy())
        maps = opt_page.param_heatmaps(trials, {"name": "sharpe", "direction": "maximize"},
                                       imps)
        shown = page.eval_on_selector_all(
            "table.param-heat", "ts => ts.map(t => [t.dataset.rows, t.dataset.cols, "
            "Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells).slice(1)"
            ".map(c => JSON.parse(c.dataset.value)))])")
        assert shown == [[m["row_param"], m["col_param"],
                          [[v for v, _, _ in row] for row in m["cells"]]] for m in maps]
        visible = "() => Array.from(document.querySelectorAll('#heatmap [data-pick]'))" \
                  ".filter(d => !d.hidden).map(d => d.dataset.pick)"
        assert page.evaluate(visible) == [maps[0]["key"]]
        page.select_option("#heatmap-pick", maps[-1]["key"])
        assert page.evaluate(visible) == [maps[-1]["key"]]
        pareto = page.evaluate("() => document.getElementById('chart-pareto').data[1].x"
                               ".length")
        assert pareto == 3


@pytest.mark.browser
def test_compare_in_browser(bars_csv: str, tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "runs", bars_csv, label=f"confirm {c}",
                     params={"confirm_bars": c}) for c in (1, 2, 3)]
    # A run that never trades: a level nothing breaks. Its 0 % drawdown is not "best".
    runs.append(make_run(tmp_path / "runs", bars_csv, label="idle",
                         params={"level": 60_000.0, "target": 55_000.0, "stop_level": 70_000.0}))
    out = tmp_path / "compare.html"
    compare.compare(runs, out)
    reps = [json.loads((r / "report.json").read_text()) for r in runs]
    assert reps[3]["metrics"]["n_trades"] == 0 and reps[3]["metrics"]["exposure_pct"] == 0
    with visit(out, tmp_path / "compare.png", width=1400) as seen:
        assert_clean(seen, {"chart-compare-equity"})
        page = seen.page
        cells = page.eval_on_selector_all(
            "#metrics td[data-run]", "els => els.map(e => [+e.dataset.run, e.dataset.metric, "
                                     "JSON.parse(e.dataset.value), e.classList.contains('best')])")
        for run, metric, value, _ in cells:
            assert value == reps[run]["metrics"][metric]
        sharpes = [r["metrics"]["sharpe"] for r in reps[:3]]
        best = {m: run for run, m, _, is_best in cells if is_best}
        assert best["sharpe"] == sharpes.index(max(sharpes))
        assert 3 not in best.values()  # the idle run is never highlighted
        bench = seen.values("#metrics [data-benchmark]", "data-benchmark")
        assert {k: v for k, (v, _) in bench.items()
                if k in reps[0]["benchmark"]} == reps[0]["benchmark"]
        counts = page.eval_on_selector_all(
            "#by_regime td[data-metric='n_trades'][data-run]",
            "els => els.map(e => [+e.dataset.run, e.dataset.segment, JSON.parse("
            "e.dataset.value)])")
        for run, regime, n in counts:
            trades = pd.read_csv(runs[run] / "trades.csv")
            assert n == run_page.regime_trade_counts(reps[run], trades).get(regime, 0)
        for run, rep in enumerate(reps):
            assert sum(n for r, _, n in counts if r == run) == rep["metrics"]["n_trades"]
        diff = page.locator("#config-diff").inner_text()
        assert "strategy.params.confirm_bars" in diff and "strategy.label" not in diff
        assert page.evaluate("() => document.getElementById('chart-compare-equity')"
                             ".data.length") == 5  # four runs + buy and hold


@pytest.mark.browser
def test_hostile_names_are_text_in_every_report(bars_csv: str, tmp_path: Path) -> None:
    bad = make_run(tmp_path / "runs", bars_csv, label=HOSTILE)
    good = make_run(tmp_path / "runs", bars_csv, label="plain")
    pages = {"run": tmp_path / "run.html", "compare": tmp_path / "compare.html",
             "optimization": tmp_path / "optimization.html"}
    pages["run"].write_text(html.render_run_dir(bad))
    compare.compare([bad, good], pages["compare"])
    pages["optimization"].write_text(html.render_optimization(opt_dict(HOSTILE, HOSTILE)))
    for kind, path in pages.items():
        assert "<script>alert(1)" not in path.read_text(), kind
        with visit(path, tmp_path / f"{kind}-hostile.png") as seen:
            assert seen.dialogs == [] and seen.page_errors == [] and seen.console_errors == []
            body = seen.page.locator("body").inner_text()
            assert HOSTILE in body, kind
            assert all(c["drawn"] for c in seen.charts()), kind


@pytest.mark.slow
@pytest.mark.browser
def test_seven_years_of_hourly_bars_stay_readable(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """liquidation_flush on BTCUSDT 1h 2019-2025 (61,308 bars, 20 data gaps): a light page,
    equity on a log axis, gaps summarized behind a toggle, the trades table unclipped."""
    config = tmp_path / "long.toml"
    config.write_text(f'extends = "{ROOT / "configs" / "liquidation_flush.toml"}"\n'
                      '[data]\ndataset = "btcusdt_1h"\nstart = 2019-01-01\n'
                      'end = 2025-12-31T23:00:00Z\n')
    assert main(["run", str(config), "--out", str(tmp_path / "r")]) == 0
    run = Path(next(line.removeprefix("report: ") for line in capsys.readouterr().out
                    .splitlines() if line.startswith("report: ")))
    page_path = run / "report.html"
    assert page_path.stat().st_size <= MAX_PAGE_BYTES
    rep = json.loads((run / "report.json").read_text())
    with visit(page_path, tmp_path / "seven-years.png", width=1400) as seen:
        assert_clean(seen, {"chart-equity", "chart-underwater", "chart-price"})
        page = seen.page
        assert seen.table_fits("#trades-table")
        assert page.evaluate("() => document.getElementById('chart-equity').layout.yaxis"
                             ".type") == "log"
        header = page.locator("header").inner_text()
        assert "first_missing" not in header and f"{len(rep['dataset']['gaps'])} data gaps" \
            in header
        assert not page.locator("#gaps-table").is_visible()
        page.locator("#gaps summary").click()
        assert page.locator("#gaps-table tbody tr").count() == len(rep["dataset"]["gaps"])
        shapes = page.evaluate("() => document.getElementById('chart-equity').layout.shapes"
                               ".length")
        assert shapes <= 200 < len(rep["regime_spans"])
