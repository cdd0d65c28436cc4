"""``crashbt compare``: markdown table + HTML for comparable runs, a one-line refusal otherwise."""

from __future__ import annotations

import json
import re
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


def test_repeated_labels_are_told_apart_by_their_parameters(
        bars_csv: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [make_run(tmp_path, bars_csv, label="same", params={"confirm_bars": c, "level": lv})
            for c, lv in ((1, 74400.0), (3, 74400.0), (3, 74400.0))]
    assert main(["compare", *map(str, runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    # runs 2 and 3 differ in nothing but their ids: a position tells them apart, no hash
    assert header == ["metric", "same (confirm_bars=1)", "same (confirm_bars=3) #2",
                      "same (confirm_bars=3) #3", "buy and hold"]
    diff = next(line for line in lines if line.startswith("| confirm_bars "))
    assert [c.strip() for c in diff.strip("|").split("|")][1:4] == ["1", "3", "3"]


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
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert header == ["metric", "reclaim_80k", "break_below_74k", "miner_capitulation",
                      "buy and hold"]
    assert any(line.startswith("| strategy.name ") for line in text.splitlines())
    page = out.read_text()
    assert len(re.findall(r'data-run="\d" data-metric="sharpe"', page)) == 3
    assert "2026-01-15T00:00:00Z" in page
    # the `make demo` pages are light: at most 1.5 MB each
    sizes = {p.name: p.stat().st_size for p in [out, *(Path(r) / "report.html" for r in runs)]}
    assert max(sizes.values()) <= 1_500_000, sizes
