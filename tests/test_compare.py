"""``crashbt compare``: markdown table + HTML for comparable runs, a one-line refusal otherwise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import make_run, synthetic_bars_csv

from backtest.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bars_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(synthetic_bars_csv(tmp_path_factory.mktemp("bars") / "synth_1h.csv"))


def test_compare_prints_table_and_writes_html(bars_csv: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    runs = [make_run(tmp_path, bars_csv, label=f"c{c}", params={"confirm_bars": c})
            for c in (1, 3)]
    out = tmp_path / "cmp.html"
    assert main(["compare", str(runs[0]), str(runs[1] / "report.json"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    sharpe = [json.loads((r / "report.json").read_text())["metrics"]["sharpe"] for r in runs]
    row = next(line for line in text.splitlines() if line.startswith("| sharpe "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    best = sharpe.index(max(sharpe))
    assert cells[1 + best].endswith("*") and not cells[2 - best].endswith("*")
    assert [c.strip() for c in text.splitlines()[0].split("|")[2:4]] == ["c1", "c3"]
    assert out.is_file() and 'class="best"' in out.read_text()
    assert not list(tmp_path.glob(".cmp.html.*"))  # atomic write left no temp file


def test_mismatched_ranges_are_refused_unless_allowed(bars_csv: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    full = make_run(tmp_path, bars_csv, label="full")
    cfg_start = make_run_with_start(tmp_path, bars_csv)
    assert main(["compare", str(full), str(cfg_start)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset.start: expected 2026-01-01T00:00:00Z" in err
    assert "--allow-mismatch" in err
    assert main(["compare", str(full), str(cfg_start), "--allow-mismatch"]) == 0


def make_run_with_start(tmp_path: Path, bars_csv: str) -> Path:
    """The same strategy on the same file, starting five days later."""
    import strategies
    from backtest import pipeline
    from backtest.config.run import RunConfig

    cfg = RunConfig.model_validate({
        "data": {"path": bars_csv, "symbol": "SYNTHUSDT", "timeframe": "1h",
                 "start": "2026-01-06T00:00:00Z"},
        "strategy": {"name": "break_below_74k", "label": "late"}})
    outcome = pipeline.execute(cfg, strategies.get("break_below_74k"), "test")
    return pipeline.write(outcome, tmp_path)


def test_one_run_or_missing_run_is_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path)]) == 2
    assert "expected at least 2 runs, found 1" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a report.json" in err


@pytest.mark.slow
def test_compare_real_runs_on_february_2026(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The three seed strategies (reclaim_80k, break_below_74k, miner_capitulation) on real
    BTCUSDT 1h bars over the February 2026 window, then compared."""
    config = str(ROOT / "configs" / "demo_feb_2026.toml")
    assert main(["run", config, "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out.splitlines()
    runs = [line.removeprefix("report: ") for line in printed if line.startswith("report: ")]
    assert [Path(r).name.rsplit("-", 1)[0] for r in runs] == [
        "reclaim_80k", "break_below_74k", "miner_capitulation"]
    out = tmp_path / "feb.html"
    assert main(["compare", *runs, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| metric " in text and "| total_return_pct " in text and f"compare: {out}" in text
    page = out.read_text()
    assert page.count('data-metric="sharpe"') == 3 and "2026-01-15T00:00:00Z" in page
