"""The strategy guide's example (docs/strategies.md, docs/examples/my_strategy.py) as a user
meets it: ``crashbt new-strategy`` writes it, ``run``, ``check lookahead`` and ``optimize``
accept it with --allow-external-strategies. The contract suite runs it too
(tests/test_strategy_contract.py lists it beside the registered strategies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtest.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
ALLOW = "--allow-external-strategies"


def test_new_strategy_writes_the_template_and_it_runs(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-strategy", "fear_at_support", "--dir", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["fear_at_support.py", "fear_at_support.toml"]
    source = (tmp_path / "fear_at_support.py").read_text()
    assert 'name="fear_at_support"' in source and "my_strategy" not in source
    capsys.readouterr()
    out = tmp_path / "reports"
    assert main(["run", str(tmp_path / "fear_at_support.toml"), ALLOW, "--out", str(out),
                 "--set", "report.html=false"]) == 0
    (report,) = out.glob("*/report.json")
    got = json.loads(report.read_text())
    assert got["strategy"]["name"] == "fear_at_support"
    assert got["strategy"]["external"]["fear_greed"]["name"] == "fear_greed_1d"
    # the renamed copy decides exactly what the guide's example decides
    example_out = tmp_path / "example"
    assert main(["run", str(EXAMPLES / "my_strategy.toml"), ALLOW, "--out", str(example_out),
                 "--set", "report.html=false"]) == 0
    (example,) = example_out.glob("*/report.json")
    assert json.loads(example.read_text())["metrics"] == got["metrics"]
    assert got["metrics"]["n_trades"] >= 1


def test_new_strategy_never_overwrites_and_checks_the_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.toml").write_text("# my own config\n")
    assert main(["new-strategy", "mine", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mine.toml: expected a new file, found an existing one" in err
    assert err.count("\n") == 1
    assert (tmp_path / "mine.toml").read_text() == "# my own config\n"
    assert not (tmp_path / "mine.py").exists()
    assert main(["new-strategy", "../evil", "--dir", str(tmp_path)]) == 2
    assert "NAME: expected a lower-case Python identifier" in capsys.readouterr().err


def test_the_example_passes_the_lookahead_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "lookahead", str(EXAMPLES / "my_strategy.toml"), ALLOW]) == 0
    assert "OK: no value changes when the future is removed" in capsys.readouterr().out


def test_the_example_needs_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLES / "my_strategy.toml")]) == 2
    assert ALLOW in capsys.readouterr().err


def test_the_example_optimizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = EXAMPLES / "my_strategy_optimize.toml"
    assert main(["optimize", str(config), ALLOW, "--trials", "6", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    (study,) = tmp_path.iterdir()
    doc = json.loads((study / "optimization.json").read_text())
    assert doc["best"]["params"]["level_mode"] == "ath_fraction"  # fixed by [optimize.params]
    assert 0.4 <= doc["best"]["params"]["level"] <= 0.7  # narrowed by [optimize.params]
    best = json.loads((study / doc["best_run"] / "report.json").read_text())
    assert best["strategy"]["name"] == "my_strategy"
