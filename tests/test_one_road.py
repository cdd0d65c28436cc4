"""One road for every run: ``run``, ``check`` and ``optimize`` build their inputs with
:func:`backtest.inputs.prepare`, so on the same params and range they agree exactly.

The first test runs every shipped config through the three paths. The others pin each way the
commands used to disagree (each of them failed before the input builder existed)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtest import checks, pipeline, plugins
from backtest.cli import main
from backtest.config.common import iso
from backtest.config.loader import load_config
from backtest.config.optimize import OptimizeConfig
from backtest.data import regimes
from backtest.data.bars import load_bars
from backtest.data.external import load_external
from backtest.optimize.evaluate import NEEDS_TRADES, Evaluator
from backtest.strategy.contract import params_dict

ROOT = Path(__file__).resolve().parents[1]
# run configs only: the crash lab's events_*/stress_* configs belong to `crashbt events/stress`
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.toml")
                 if not p.stem.startswith(("events_", "stress_")))


def single_runs() -> list[tuple[Path, int]]:
    return [(path, k) for path in CONFIGS for k in range(len(load_config(path).runs()))]


@pytest.mark.parametrize(("path", "k"), single_runs(),
                         ids=lambda v: v.stem if isinstance(v, Path) else str(v))
def test_run_check_and_optimize_agree_on_every_shipped_config(path: Path, k: int) -> None:
    cfg = load_config(path).runs()[k]
    spec = plugins.resolve(cfg.strategy.name, str(path), allow_external=False)
    outcome = pipeline.execute(cfg, spec, str(path))
    rep = outcome.report

    evaluator = Evaluator(cfg, OptimizeConfig(), spec, str(path))
    values = params_dict(evaluator.inputs.params)
    sigs = evaluator.signals(values)
    trial = evaluator.inputs.simulate(sigs)
    pd.testing.assert_frame_equal(trial.trades, outcome.result.trades)
    pd.testing.assert_series_equal(trial.equity, outcome.result.equity)
    scored = evaluator.evaluate(values)["is_mean"]
    # the optimizer's batch always runs the numba kernel and sums trades in order: the run's
    # values up to the last bits (vectorbt-rust's arithmetic, numpy's pairwise sums)
    for key, value in scored.items():  # one fold: the run's metrics, no ratio without a trade
        expected = rep["metrics"][key]
        if rep["metrics"]["n_trades"] == 0 and key in NEEDS_TRADES:
            expected = None
        if expected is None:
            assert value is None, key
        else:
            assert value == pytest.approx(float(expected), rel=1e-12, abs=1e-12), key

    # the check path: same range, and the features/signals it tests are the ones that ran
    warm = checks.warmup(cfg, spec, str(path), inputs=evaluator.inputs)
    assert (iso(warm.run_start), iso(warm.run_end)) == (
        rep["dataset"]["start"], rep["dataset"]["end"])
    inp = evaluator.inputs
    checked = checks.evaluate(spec, inp.params, inp.history, inp.context)
    for name in checks.SIGNAL_FIELDS:
        series = getattr(sigs, name)
        if series is not None:
            assert checks.same(checked[f"signal:{name}"], series.to_numpy()).all(), name


# ---------------------------------------------------------------- the "Why" bullets of #13

SEARCH = """
[optimize]
trials = 2
sampler = "random"
{extra}
"""


def optimize(config: Path, out: Path, *flags: str) -> dict:
    code = main(["optimize", str(config), "--out", str(out), "--study", "s", *flags])
    assert code == 0
    return json.loads((out / "s" / "optimization.json").read_text())


def test_optimize_a_perp_config_passes_funding(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "perp.toml"
    config.write_text(f'extends = "{ROOT / "configs" / "break_below_74k_perp.toml"}"\n'
                      + SEARCH.format(extra=""))
    doc = optimize(config, tmp_path / "out")
    assert doc["counts"]["COMPLETE"] == 2
    run = json.loads((tmp_path / "out" / "s" / doc["best_run"] / "report.json").read_text())
    assert run["metrics"]["funding_paid"] != 0  # the best run (pipeline) paid funding


def test_optimize_folds_stay_inside_data_window(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "window.toml"
    config.write_text('[data]\ndataset = "btcusdt_1h"\nwindow = "feb-2026"\n'
                      '[strategy]\nname = "break_below_74k"\n'
                      + SEARCH.format(extra='[optimize.validation]\nkind = "walk_forward"\n'
                                            'folds = 2'))
    doc = optimize(config, tmp_path / "out")
    run = json.loads((tmp_path / "out" / "s" / doc["best_run"] / "report.json").read_text())
    window = regimes.window("feb-2026", "test")
    assert window.start == pd.Timestamp(run["dataset"]["start"])
    dates = [d for fold in doc["folds"] for part in ("train", "test") for rng in fold[part]
             for d in rng]
    assert (min(dates), max(dates)) == (run["dataset"]["start"], run["dataset"]["end"])


def write_user_files(folder: Path) -> None:
    """Bars and ETF flows as user CSVs (from the bundled ones) in ``folder``."""
    folder.mkdir()
    bars, _ = load_bars(load_config(ROOT / "configs" / "etf_outflow_derisk.toml").data)
    bars = bars.loc["2023-06-01":"2026-03-31"]
    bars.reset_index().to_csv(folder / "bars.csv", index=False)
    flows = load_external("etf_flows")[["net_flow_usd"]]
    flows.rename_axis("timestamp").reset_index().to_csv(folder / "flows.csv", index=False)


def test_optimize_reads_relative_paths_from_the_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_user_files(tmp_path / "cfg")
    config = tmp_path / "cfg" / "user.toml"
    config.write_text('[data]\npath = "bars.csv"\ntimeframe = "1d"\n'
                      '[strategy]\nname = "etf_outflow_derisk"\n'
                      '[external.etf_flows]\npath = "flows.csv"\n' + SEARCH.format(extra=""))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    doc = optimize(config, tmp_path / "out")
    run = json.loads((tmp_path / "out" / "s" / doc["best_run"] / "report.json").read_text())
    assert run["strategy"]["external"]["etf_flows"]["name"] == "flows"


def test_optimize_accepts_allow_external_strategies(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.py").write_text(
        "import dataclasses\nfrom strategies.break_below_74k import SPEC as BASE\n"
        "SPEC = dataclasses.replace(BASE, name='mine')\n")
    config = tmp_path / "ext.toml"
    config.write_text('[data]\ndataset = "btcusdt_1d"\nstart = 2024-01-01\nend = 2026-03-31\n'
                      '[strategy]\nname = "mine.py:SPEC"\n' + SEARCH.format(extra=""))
    assert main(["optimize", str(config), "--out", str(tmp_path / "no")]) == 2
    assert "--allow-external-strategies" in capsys.readouterr().err
    doc = optimize(config, tmp_path / "out", "--allow-external-strategies")
    assert doc["counts"]["COMPLETE"] == 2
    # worker processes cannot import a file by path: refused in one line, before any work
    assert main(["optimize", str(config), "--allow-external-strategies", "--jobs", "2",
                 "--out", str(tmp_path / "jobs")]) == 2
    assert "use --jobs 1" in capsys.readouterr().err


def test_show_config_check_and_run_accept_an_optimize_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "configs" / "optimize_break_below.toml"
    assert main(["show-config", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["optimize"]["validation"]["folds"] == 4
    quick = ["--set", "data.start=2026-01-01"]
    assert main(["check", "lookahead", str(config), "--cuts", "3", *quick]) == 0
    assert "OK: no value changes" in capsys.readouterr().out
    assert main(["run", str(config), "--out", str(tmp_path), *quick]) == 0
    out = capsys.readouterr().out
    assert "[optimize] table; run uses its base [strategy.params]" in out


def test_buy_and_hold_pays_the_taker_fee_when_set(tmp_path: Path) -> None:
    path = ROOT / "configs" / "break_below_74k.toml"
    spec = plugins.resolve("break_below_74k", str(path), allow_external=False)
    taker = load_config(path, ["execution.fee_rate=0.001", "execution.taker_fee_rate=0.004"])
    flat = load_config(path, ["execution.fee_rate=0.004"])
    low = load_config(path, ["execution.fee_rate=0.001"])
    bench = [pipeline.execute(c, spec, str(path)).report["benchmark"] for c in (taker, flat, low)]
    assert bench[0] == bench[1] != bench[2]


def test_run_id_covers_the_external_series_files(tmp_path: Path) -> None:
    write_user_files(tmp_path / "cfg")
    flows = pd.read_csv(tmp_path / "cfg" / "flows.csv")
    flows.loc[flows.index[-1], "net_flow_usd"] += 1.0  # one value differs: another input
    flows.to_csv(tmp_path / "cfg" / "flows2.csv", index=False)
    path = tmp_path / "cfg" / "etf.toml"
    path.write_text('[data]\npath = "bars.csv"\ntimeframe = "1d"\n'
                    '[strategy]\nname = "etf_outflow_derisk"\n'
                    '[external.etf_flows]\npath = "flows.csv"\n')
    spec = plugins.resolve("etf_outflow_derisk", str(path), allow_external=False)
    ids = []
    for name in ("flows.csv", "flows2.csv"):
        (tmp_path / "cfg" / name).replace(tmp_path / "cfg" / "current.csv")
        path.write_text(path.read_text().replace('"flows.csv"', '"current.csv"'))
        cfg = load_config(path)
        ids.append(pipeline.execute(cfg, spec, str(path)).report["run_id"])
        (tmp_path / "cfg" / "current.csv").replace(tmp_path / "cfg" / name)
    assert ids[0] != ids[1]


def test_run_id_covers_a_tier_file_read_from_the_config_folder(tmp_path: Path) -> None:
    bundled = (ROOT / "datasets" / "binance_btcusdt_tiers.toml").read_text()
    path = tmp_path / "perp.toml"
    path.write_text(f'extends = "{ROOT / "configs" / "break_below_74k_perp.toml"}"\n'
                    '[execution]\nmaintenance_tiers = "tiers.toml"\n')
    spec = plugins.resolve("break_below_74k", str(path), allow_external=False)
    ids = []
    for text in (bundled, bundled.replace("notional_cap = 300_000", "notional_cap = 310_000")):
        (tmp_path / "tiers.toml").write_text(text)
        cfg = load_config(path)
        assert cfg.execution.maintenance_tiers == str(tmp_path / "tiers.toml")
        ids.append(pipeline.execute(cfg, spec, str(path)).report["run_id"])
    assert ids[0] != ids[1]
