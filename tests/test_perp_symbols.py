"""Per-symbol derivatives data (issue 16.2): a perp run pays the funding of its own symbol and
uses that symbol's maintenance tiers, or refuses in one line; report.json names both sources."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main

ROOT = Path(__file__).resolve().parents[1]
PERP = str(ROOT / "configs" / "break_below_74k_perp.toml")
ETH = ["--set", "data.dataset=ethusdt_1h", "--set", "strategy.params.level=2200.0",
       "--set", "strategy.params.target=1800.0", "--set", "strategy.params.stop_level=2400.0"]
TIERS = "execution.maintenance_tiers=[[5e6, 0.005, 0, 50], [2e7, 0.01, 25000, 20]]"


def run(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "reports"
    code = main(["run", PERP, "--out", str(out), "--set", "report.html=false", *extra])
    reports = sorted(out.glob("*/report.json"))
    return code, json.loads(reports[0].read_text()) if reports else {}


def test_eth_perp_with_funding_on_refuses_btc_funding(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(tmp_path, *ETH)
    err = capsys.readouterr().err
    assert code == 2 and not report
    assert err.count("\n") == 1
    assert "expected a funding series for ETHUSDT, found bundled funding only for BTCUSDT" in err
    assert "[external.funding_8h] path" in err and "execution.funding = false" in err


def test_eth_perp_without_funding_still_needs_eth_tiers(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(tmp_path, *ETH, "--set", "execution.funding=false")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "execution.maintenance_tiers: expected a tier table for ETHUSDT" in err


def test_eth_perp_with_user_funding_and_tiers_names_them(tmp_path: Path) -> None:
    # a hand-made ETH funding file: +0.01% every 8 hours over the run (a short receives it)
    stamps = pd.date_range("2025-12-01", "2026-04-30", freq="8h", tz="UTC")
    funding = tmp_path / "eth_funding_8h.csv"
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "funding_rate": 0.0001}).to_csv(funding, index=False)
    code, report = run(tmp_path, *ETH, "--set", f"external.funding_8h.path={funding}",
                       "--set", TIERS)
    assert code == 0
    derivatives = report["derivatives"]
    assert derivatives["symbol"] == "ETHUSDT"
    assert derivatives["funding"]["name"] == "eth_funding_8h"
    assert derivatives["maintenance_tiers"] == "the inline execution.maintenance_tiers"
    assert report["metrics"]["n_trades"] >= 1
    assert report["metrics"]["funding_paid"] < 0  # received on the short


def test_btc_perp_names_the_bundled_sources(tmp_path: Path) -> None:
    code, report = run(tmp_path)
    assert code == 0
    derivatives = report["derivatives"]
    assert (derivatives["symbol"], derivatives["funding"]["name"], derivatives["funding"]["lag"]) \
        == ("BTCUSDT", "btc_funding_8h", "0 days 00:00:00")
    assert len(derivatives["funding"]["sha256"]) == 64
    assert derivatives["maintenance_tiers"].endswith("datasets/binance_btcusdt_tiers.toml")
