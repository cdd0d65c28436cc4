"""Issue 15 on real bundled data, end to end through the CLI: the engine's time exit in
reclaim_80k, a wiped-out perp account, the tier table's max leverage and the buy-and-hold
drawdown measured from the initial cash."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtest.cli import main
from tests.conftest import strict_json

ROOT = Path(__file__).resolve().parents[1]
TIERS = ROOT / "datasets" / "binance_btcusdt_tiers.toml"


def run(tmp_path: Path, config: str, *sets: str) -> tuple[int, Path | None]:
    """``crashbt run`` with ``--set`` overrides; the exit code and the one report directory."""
    out = tmp_path / "reports"
    args = ["run", str(ROOT / "configs" / config), "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    code = main(args)
    runs = list(out.iterdir()) if out.exists() else []
    return code, runs[0] if len(runs) == 1 else None


def test_reclaim_80k_holds_the_january_entry_to_its_stop(tmp_path: Path) -> None:
    # the reproduction: a 30-bar hold from the FILL; the 2025-12-07 entry signal, ignored
    # while a position was open, no longer closes the 2026-01-04 entry three days in
    code, run_dir = run(
        tmp_path, "reclaim_80k.toml", "data.start=2025-10-01", "data.end=2026-03-31",
        "strategy.params.level=90000", "strategy.params.volume_k=0.0",
        "strategy.params.hold_bars=30", "strategy.params.buffer_pct=0.05",
        "strategy.params.stop_pct=0.03", "execution.slippage_rate=0")
    assert code == 0 and run_dir is not None
    trades = pd.read_csv(run_dir / "trades.csv")
    last = trades.iloc[-1]
    assert (last.entry_time, last.entry_price) == ("2026-01-04T00:00:00Z", 90628.01)
    assert (last.exit_time, last.exit_price, last.exit_reason) == ("2026-01-21T00:00:00Z",
                                                                   87300.0, "stop")
    equity = pd.read_csv(run_dir / "equity.csv")["equity"]
    assert equity.iloc[-1] == pytest.approx(88356.22, abs=0.005)


def test_a_wiped_out_perp_account_reports_minus_100_percent(tmp_path: Path) -> None:
    code, run_dir = run(
        tmp_path, "break_below_74k_perp.toml", "execution.leverage=10",
        "strategy.params.mode=derisk", "data.start=2026-01-20", "data.end=2026-02-10",
        "execution.funding=false")
    assert code == 0 and run_dir is not None
    report = strict_json((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["total_return_pct"] == -100.0
    assert report["metrics"]["max_drawdown_pct"] == 100.0
    assert report["metrics"]["liquidations"] == 1
    equity = pd.read_csv(run_dir / "equity.csv")["equity"]
    wiped = equity.index[equity == 0.0][0]
    assert (equity.iloc[wiped:] == 0.0).all() and (equity >= 0.0).all()  # exactly 0, never below
    trades = pd.read_csv(run_dir / "trades.csv")
    orders = pd.read_csv(run_dir / "orders.csv")
    assert trades["exit_reason"].tolist() == ["liquidation"]  # no dust trade after it
    assert len(orders) == 2
    # regimes after the wipe-out have no defined return: null, never NaN
    after = [row for row in report["by_regime"]["strategy"].values()
             if row["total_return_pct"] is None]
    assert after and all(row["sharpe"] is None and row["max_drawdown_pct"] is None
                         for row in after)


def test_tier_1_allows_150x_and_refuses_151x_naming_the_tier_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ("data.start=2026-02-01", "data.end=2026-02-03", "execution.funding=false")
    code, _ = run(tmp_path, "break_below_74k_perp.toml", "execution.leverage=150", *common)
    assert code == 0
    capsys.readouterr()
    code, run_dir = run(tmp_path / "refused", "break_below_74k_perp.toml",
                        "execution.leverage=151", *common)
    err = capsys.readouterr().err.strip()
    assert code == 2 and run_dir is None
    assert err.count("\n") == 0
    assert "execution.leverage: expected at most 150" in err and str(TIERS) in err
    assert "found 151" in err


def test_buy_and_hold_drawdown_counts_the_first_bar_loss(tmp_path: Path) -> None:
    # feb-2026 on 1d: the first bar already loses to the open-to-close fall and the fee;
    # empyrical (the curve with the initial cash prepended) and quantstats give 35.18 %
    code, run_dir = run(tmp_path, "reclaim_80k.toml", "data.window=feb-2026")
    assert code == 0 and run_dir is not None
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert round(report["benchmark"]["max_drawdown_pct"], 2) == 35.18


def test_tranche_buys_show_in_orders_csv_and_an_open_position_counts(tmp_path: Path) -> None:
    # support_ladder on feb-2026 buys two tranches and still holds them at the end
    code, run_dir = run(tmp_path, "support_ladder.toml", "data.window=feb-2026")
    assert code == 0 and run_dir is not None
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    orders = pd.read_csv(run_dir / "orders.csv")
    trades = pd.read_csv(run_dir / "trades.csv")
    assert report["files"]["orders"] == "orders.csv"
    assert list(orders.columns) == ["time", "side", "size", "price", "fees", "reason"]
    assert orders["side"].tolist() == ["buy"] * len(orders) and len(orders) >= 2
    (position,) = trades.itertuples()  # the tranches are one position, still open
    assert (position.status, position.exit_reason) == ("open", "end")
    assert position.size == pytest.approx(orders["size"].sum(), rel=1e-9)
    last_close = pd.read_csv(run_dir / "equity.csv")["close"].iloc[-1]
    assert position.exit_price == pytest.approx(last_close)  # marked to the last close
    metrics = report["metrics"]
    assert (metrics["n_trades"], metrics["n_closed_trades"], metrics["n_open_trades"]) == (1, 0, 1)
    assert metrics["win_rate_pct"] is None  # over closed trades only
