"""The notebook API: the README example runs, and its objects are the ones ``crashbt run`` writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from backtest import api
from backtest.cli import main
from backtest.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_and_writes_what_the_cli_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    result, path = scope["result"], scope["path"]
    assert path.parent.resolve() == (tmp_path / "reports").resolve()
    code = main(["run", "configs/break_below_74k.toml", "--set", "data.window=feb-2026",
                 "--set", "strategy.params.confirm_bars=2", "--out", str(tmp_path / "cli")])
    assert code == 0
    cli_dir = tmp_path / "cli" / result.run_id  # same config and inputs: the same run id
    written = json.loads((cli_dir / "report.json").read_text())
    assert written["metrics"] == json.loads((path / "report.json").read_text())["metrics"]
    assert result.metrics["strategy"].to_dict() == pytest.approx(written["metrics"])
    trades = pd.read_csv(cli_dir / "trades.csv")
    assert len(trades) == len(result.trades) > 0
    assert trades["pnl"].to_numpy() == pytest.approx(result.trades["pnl"].to_numpy())
    equity = pd.read_csv(cli_dir / "equity.csv")
    assert list(equity.columns[1:]) == list(result.equity.columns)
    assert equity["equity"].to_numpy() == pytest.approx(result.equity["equity"].to_numpy())
    assert {"time", "side", "price", "fees"} <= set(result.orders.columns)


def test_config_from_dict_and_several_strategies(tmp_path: Path) -> None:
    cfg = api.config_from_dict({"data": {"dataset": "btcusdt_1d", "window": "feb-2026"},
                                "strategies": [{"name": "reclaim_80k"},
                                               {"name": "break_below_74k"}]})
    with pytest.raises(ConfigError, match="use run_all"):
        api.run(cfg)
    results = api.run_all(cfg)
    assert [r.report["strategy"]["name"] for r in results] == ["reclaim_80k", "break_below_74k"]
    inputs = api.prepare_inputs(cfg.runs()[0])
    assert inputs.run_start == pd.Timestamp(results[0].report["dataset"]["start"])


def test_api_module_lists_what_it_offers() -> None:
    assert all(hasattr(api, name) for name in api.__all__)
    assert "pipeline" not in api.__all__ and "plugins" not in api.__all__
