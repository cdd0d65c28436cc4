"""HTML reports: pure helpers checked by hand, and every page kind opened in real headless
Chromium with the network off (no console error, every chart drew, numbers match the JSON,
hostile names shown as text). Screenshots land in each test's tmp_path."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import make_run, synthetic_bars_csv, visit

from backtest import catalogue
from backtest.cli import main
from backtest.report import compare, html

HOSTILE = "<script>alert(1)</script>"


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


def opt_dict(study: str = "break-below search", param: str = "confirm_bars") -> dict[str, Any]:
    """A synthetic optimization.json in backtest.optimize's shape: 24 trials of three params,
    two objectives, 3 walk-forward folds, overfitting measures."""
    rng = np.random.default_rng(7)
    folds = [{"name": f"wf-{i}", "is": {"sharpe": 2.0 - i / 2, "total_return_pct": 9.0},
              "oos": {"sharpe": 0.5 - i / 4, "total_return_pct": 1.0}} for i in range(3)]
    trials = [{"number": n, "state": "COMPLETE", "feasible": True, "folds": folds,
               "params": {"level": 70000.0 + 250.0 * n, param: n % 3 + 1,
                          "mode": ["short", "long"][n % 2]},
               "values": [float(7 + n / 20 + rng.normal()), float(5 + n % 5)]}
              for n in range(24)]
    trials.append({"number": 24, "state": "FAIL", "params": {}, "values": None})
    best = {"number": 23, "values": [8.1, 5.0], "params": {"level": 75750.0, param: 1},
            "folds": folds}
    return {"study": study, "strategy": "break_below_74k", "storage": "journal",
            "objectives": [{"metric": "sharpe", "direction": "maximize"},
                           {"metric": "max_drawdown_pct", "direction": "minimize"}],
            "trials": trials, "best": best,
            "pareto_front": [{"number": n, "values": trials[n]["values"], "params": {}}
                             for n in (3, 10, 23)],
            "folds": [{"name": f["name"], "train": [], "test": []} for f in folds],
            "walk_forward": {"metric": "sharpe", "is_mean": 1.5, "oos_mean": 0.25,
                             "folds": [{"fold": f["name"], "trial": 3, "params": {},
                                        "is": f["is"], "oos": f["oos"]} for f in folds]},
            "overfitting": {"n_trials": 24, "deflated_sharpe": {"dsr": 0.31, "sharpe": 0.2},
                            "pbo": {"pbo": 0.62, "n_splits": 20},
                            "decay": [{"number": 3, "params": {"level": 70750.0},
                                       "metric": "sharpe", "is": 2.0, "oos": 0.4,
                                       "decay": -1.6, "oos_over_is": 0.2}]}}


def assert_clean(seen: Any, expected_charts: set[str]) -> None:
    """No errors, no dialogs, no network, and every expected chart drew."""
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.dialogs == []
    assert {u.split(":")[0] for u in seen.requests} == {"file"}
    charts = {c["id"]: c["drawn"] for c in seen.charts()}
    assert set(charts) == expected_charts
    assert all(charts.values()), charts


# ---------------------------------------------------------------- pure helpers


def test_script_json_cannot_close_the_script_tag() -> None:
    text = html.script_json({"label": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"label": "</script><!-- & \u2028"}


def test_downsample_keeps_extremes_and_bounds_size() -> None:
    n = 100_000
    y = np.sin(np.arange(n) / 500.0)
    y[12_345], y[67_890] = 9.0, -9.0  # lone spikes must survive
    keep = html.downsample_index(n, [y], max_points=5000)
    assert keep.size <= 5000 and keep[0] == 0 and keep[-1] == n - 1
    assert 12_345 in keep and 67_890 in keep
    assert np.all(np.diff(keep) > 0)
    assert html.downsample_index(10, [y[:10]]).tolist() == list(range(10))


def test_monthly_returns_by_hand() -> None:
    idx = pd.date_range("2026-01-30", periods=4, freq="D", tz="UTC")  # Jan 30, 31, Feb 1, 2
    equity = pd.Series([101.0, 110.0, 105.0, 99.0], index=idx)
    table = html.monthly_returns(equity, init_cash=100.0)
    # January: 110 / 100 - 1 = +10 %; February: 99 / 110 - 1 = -10 %.
    assert table.loc[2026, 1] == pytest.approx(10.0)
    assert table.loc[2026, 2] == pytest.approx(-10.0)
    assert table.loc[2026, 3:].isna().all()


def test_param_importances_by_hand() -> None:
    params = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["p", "q", "p", "q"]})
    y = np.array([0.0, 2.0, 10.0, 12.0])
    # mean 6; total SS = 36+16+16+36 = 104. a: groups 1 and 11 -> 2*25 + 2*25 = 100;
    # b: groups 5 and 7 -> 2*1 + 2*1 = 4. Shares 100/104 and 4/104.
    got = html.param_importances(params, y)
    assert list(got) == ["a", "b"]
    assert got["a"] == pytest.approx(100 / 104) and got["b"] == pytest.approx(4 / 104)


def test_best_index_follows_metric_direction() -> None:
    assert html.best_index([1.0, 3.0, None], catalogue.direction("sharpe")) == 1
    assert html.best_index([5.0, 2.0, 9.0], catalogue.direction("max_drawdown_pct")) == 1
    assert html.best_index([3, 3], 1) is None
    assert html.best_index([1, 7], catalogue.direction("n_trades")) is None


def test_report_command_rerenders_without_rerun(run_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert page == html.render_run_dir(run_dir)
    # plotly.js inlined exactly once, nothing loaded from elsewhere.
    assert page.count("* plotly.js v") == 1 and "<script src" not in page
    assert f"report: {run_dir / 'report.html'}" in capsys.readouterr().out


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
    with visit(page_path, tmp_path / "run.png") as seen:
        assert_clean(seen, {"chart-equity", "chart-underwater", "chart-price", "chart-monthly"})
        shown = seen.values("#headline [data-metric]", "data-metric")
        assert {k: v for k, (v, _) in shown.items()} == rep["metrics"]
        assert {k: t for k, (_, t) in shown.items()} == {
            k: html.format_number(v) for k, v in rep["metrics"].items()}
        bench = seen.values("[data-benchmark]", "data-benchmark")
        assert {k: v for k, (v, _) in bench.items()} == rep["benchmark"]
        page = seen.page
        regimes = rep["by_regime"]["strategy"]
        cells = seen.page.eval_on_selector_all(
            "#by_regime td[data-segment]", "els => els.map(e => [e.dataset.segment, "
                                           "e.dataset.metric, JSON.parse(e.dataset.value)])")
        assert cells and all(regimes[s][m] == v for s, m, v in cells)
        assert {s for s, _, _ in cells} == set(regimes)
        assert page.locator("#by_window td", has_text="feb-2026").count() == 1
        rows = page.locator("#trades-table tbody tr")
        assert rows.count() == len(trades) == 2
        assert page.locator("#trades-table td.reason-stop").count() == 1
        # Sorting: click "pnl" twice -> descending, the target trade (largest pnl) first.
        header = page.locator("#trades-table thead th", has_text="pnl")
        header.click()
        header.click()
        first_pnl = json.loads(rows.first.locator("td").nth(6).get_attribute("data-value"))
        assert first_pnl == trades["pnl"].max()
        # Level lines and regime shading reached the charts.
        shapes = page.evaluate("() => document.getElementById('chart-price').layout.shapes"
                               ".map(s => s.y0)")
        assert sorted(shapes) == sorted(rep["strategy"]["levels"].values())
        shaded = [s for s in rep["regime_spans"] if s["regime"] != "calm"]
        assert shaded  # the synthetic path has a correction
        assert page.evaluate("() => document.getElementById('chart-equity').layout.shapes"
                             ".length") == len(shaded)
    assert (tmp_path / "run.png").stat().st_size > 10_000


@pytest.mark.browser
def test_optimization_report_in_browser(tmp_path: Path) -> None:
    opt = opt_dict()
    page_path = tmp_path / "optimization.html"
    page_path.write_text(html.render_optimization(opt))
    with visit(page_path, tmp_path / "optimization.png") as seen:
        assert_clean(seen, {"chart-history", "chart-importance", "chart-parallel", "chart-pareto",
                            "chart-folds", "chart-slice-0", "chart-slice-1", "chart-slice-2"})
        best = seen.values("[data-best-value]", "data-best-value")
        assert [best[k][0] for k in sorted(best)] == opt["best"]["values"]
        text = seen.page.locator("#overfitting").inner_text()
        assert "not distinguishable from luck" in text and "0.3100" in text  # DSR 0.31
        assert "high: the in-sample winner" in text  # PBO 0.62 > 0.5
        assert seen.page.locator("#folds tbody tr").count() == 3
        assert "mean out-of-sample 0.2500" in seen.page.locator("#walk-forward").inner_text()
        pareto = seen.page.evaluate("() => document.getElementById('chart-pareto').data[1].x"
                                    ".length")
        assert pareto == 3


@pytest.mark.browser
def test_compare_in_browser(bars_csv: str, tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "runs", bars_csv, label=f"confirm {c}",
                     params={"confirm_bars": c}) for c in (1, 2, 3)]
    out = tmp_path / "compare.html"
    compare.compare(runs, out)
    reps = [json.loads((r / "report.json").read_text()) for r in runs]
    with visit(out, tmp_path / "compare.png") as seen:
        assert_clean(seen, {"chart-compare-equity"})
        cells = seen.page.eval_on_selector_all(
            "td[data-run]", "els => els.map(e => [+e.dataset.run, e.dataset.metric, "
                            "JSON.parse(e.dataset.value), e.classList.contains('best')])")
        for run, metric, value, _ in cells:
            assert value == reps[run]["metrics"][metric]
        sharpes = [r["metrics"]["sharpe"] for r in reps]
        best = [run for run, metric, _, is_best in cells if metric == "sharpe" and is_best]
        assert best == [sharpes.index(max(sharpes))]
        diff = seen.page.locator("#config-diff").inner_text()
        assert "strategy.params.confirm_bars" in diff and "strategy.label" in diff
        assert seen.page.evaluate("() => document.getElementById('chart-compare-equity')"
                                  ".data.length") == 4  # three runs + buy and hold


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
