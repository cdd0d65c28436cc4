"""The stress test (``crashbt stress``): the regime-aware block bootstrap keeps the calm data's
mean, volatility and volatility clustering (an i.i.d. shuffle does not), the rebuilt bars are
consistent, the path simulation equals the engine's, and the 3x perp example reports its
probability of liquidation with a Wilson interval, reproducibly."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import strategies
from backtest.cli import main
from backtest.config.data import DataConfig
from backtest.config.loader import load_config
from backtest.config.run import RunConfig
from backtest.data import regimes
from backtest.data.bars import load_bars
from backtest.engine import simulate as engine
from backtest.inputs import prepare
from backtest.lab import bootstrap as bs
from backtest.lab import stress, synthetic
from backtest.lab.config import ShocksConfig, StressConfig

ROOT = Path(__file__).resolve().parents[1]
PATHS, LENGTH = 200, 4000


@pytest.fixture(scope="module")
def calm_source() -> synthetic.Source:
    """BTCUSDT 1h bars whose regime label is "calm" form the pool (everything else is "crash",
    and the paths below draw calm bars only)."""
    bars = load_bars(DataConfig(dataset="btcusdt_1h"))[0]
    return synthetic.source_from(bars, crash=regimes.detect(bars).ne(regimes.CODE["calm"]).to_numpy())


def _abs_acf(returns: np.ndarray, lags: range) -> float:
    """Mean autocorrelation of |returns| over ``lags`` (columns are separate series)."""
    x = np.abs(returns)
    x = x[:, None] if x.ndim == 1 else x
    x = x - x.mean(axis=0)
    var = (x * x).mean(axis=0)
    return float(np.mean([((x[:-k] * x[k:]).mean(axis=0) / var).mean() for k in lags]))


def _calm_draws(source: synthetic.Source, block: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    calm = np.zeros((LENGTH, PATHS), dtype=bool)
    return source.log_return[synthetic.sample_indices(rng, source, calm, block)]


def test_bootstrap_keeps_mean_volatility_and_volatility_clustering(calm_source) -> None:
    history = calm_source.log_return[~calm_source.crash]
    block = bs.block_length(np.abs(history))
    draws = _calm_draws(calm_source, block, seed=1)
    for statistic in (np.mean, np.std):
        per_path = statistic(draws, axis=0)
        low, high = np.percentile(per_path, [2.5, 97.5])
        assert low <= statistic(history) <= high, statistic.__name__
    lags = range(1, 25)
    real = _abs_acf(history, lags)
    kept = _abs_acf(draws, lags)
    shuffled = _abs_acf(_calm_draws(calm_source, 1.0, seed=2), lags)  # block 1: i.i.d. draws
    assert real > 0.1  # hourly |returns| cluster
    assert kept > 0.6 * real
    assert abs(shuffled) < 0.15 * real


def test_paths_keep_the_crash_share_and_crash_volatility() -> None:
    bars = load_bars(DataConfig(dataset="btcusdt_1h"))[0]
    source = synthetic.source_from(bars)
    rng = np.random.default_rng(3)
    crash = synthetic.regime_paths(rng, 8760, 100, source.switch)
    assert crash.mean() == pytest.approx(source.crash.mean(), rel=0.35)
    idx = synthetic.sample_indices(rng, source, crash, 500.0)
    assert np.array_equal(source.crash[idx], crash)  # every bar comes from its own regime
    moves = np.abs(source.log_return[idx])
    assert moves[crash].mean() > 2 * moves[~crash].mean()


def test_rebuilt_bars_keep_each_source_bar_shape() -> None:
    bars = load_bars(DataConfig(dataset="btcusdt_1d"))[0]
    source = synthetic.source_from(bars)
    rng = np.random.default_rng(4)
    crash = synthetic.regime_paths(rng, 300, 5, source.switch)
    idx = synthetic.sample_indices(rng, source, crash, 20.0)
    paths = synthetic.build(source, idx, crash, 50_000.0, ShocksConfig(), rng)
    assert np.allclose(np.diff(np.log(paths.close), axis=0), source.log_return[idx[1:]])
    assert np.allclose(paths.open / paths.close, source.open_rel[idx])
    assert (paths.low <= np.minimum(paths.open, paths.close) * (1 + 1e-12)).all()
    assert (paths.high >= np.maximum(paths.open, paths.close) * (1 - 1e-12)).all()
    shocked = synthetic.build(source, idx, crash, 50_000.0,
                              ShocksConfig(gap_prob=1.0, gap_pct=10.0, wick_prob=1.0,
                                           wick_pct=30.0), rng)
    gaps = np.cumsum(crash, axis=0)
    assert np.allclose(shocked.close, paths.close * 0.9 ** gaps)
    assert np.allclose(shocked.low[crash], np.minimum(paths.low * 0.9 ** gaps,
                                                      shocked.close * 0.7)[crash])


def test_block_length_rule() -> None:
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(5000)
    ar = np.zeros(5000)
    for t in range(1, 5000):
        ar[t] = 0.7 * ar[t - 1] + noise[t]
    assert bs.block_length(noise) < 3 < 10 < bs.block_length(ar)


def test_wilson_by_hand() -> None:
    # z = 1.959964: 0/1000 -> [0, z^2 / (n + z^2)]; 50/1000 -> 0.0381 .. 0.0653
    z2 = 1.959963984540054**2
    assert bs.wilson(0, 1000) == pytest.approx((0.0, z2 / (1000 + z2)), abs=1e-12)
    low, high = bs.wilson(50, 1000)
    assert (round(low, 4), round(high, 4)) == (0.0381, 0.0653)


def test_path_simulation_equals_the_engine() -> None:
    """Cross-path equality: the stress kernel loop on the real bars gives the engine's final
    equity, max drawdown and trade count (perp, 3x, funding, stops and targets)."""
    config = ROOT / "configs" / "break_below_74k_perp.toml"
    run = load_config(config)
    inp = prepare(run, strategies.get(run.strategy.name), str(config))
    bars, spec = inp.bars, inp.spec
    raw, _ = stress.simulate_paths([bars], spec, inp.params, run.execution, inp.freq,
                                   [inp.funding])
    sig = spec.signals(bars, spec.features(bars, inp.params, {}), inp.params)
    result = engine.simulate(bars, sig, run.execution, inp.freq, inp.funding)
    equity = result.equity.to_numpy()
    assert len(result.trades) > 0
    assert raw[0, 0] == pytest.approx(equity[-1], rel=1e-12)
    peak = np.maximum.accumulate(np.concatenate(([run.execution.init_cash], equity)))[1:]
    assert raw[0, 1] == pytest.approx(1 - (equity / peak).min(), abs=1e-12)
    assert raw[0, 5] == len(result.trades)


def test_cli_stress_on_the_3x_perp_example(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    config = ROOT / "configs" / "stress_perp_3x.toml"
    reports = []
    for name in ("a", "b"):
        assert main(["stress", str(config), "--paths", "60", "--out", str(tmp_path / name)]) == 0
        (folder,) = (tmp_path / name).iterdir()
        page = (folder / "stress.html").read_text(encoding="utf-8")
        assert 'data-name="liquidation"' in page
        report = json.loads((folder / "stress.json").read_text(encoding="utf-8"))
        report.pop("timing")
        reports.append(report)
    assert reports[0] == reports[1]
    rep = reports[0]
    assert rep["seed"] == 7 and rep["config"]["stress"]["paths"] == 60
    liq = rep["probabilities"]["liquidation"]
    assert liq["paths"] == 60 and 0 < liq["count"] < 60
    assert liq["p"] == liq["count"] / 60
    assert liq["ci"] == pytest.approx(list(bs.wilson(liq["count"], 60)))
    assert liq["ci"][0] < liq["p"] < liq["ci"][1]
    values = np.array(rep["distribution"]["total_return_pct"]["values"])
    assert len(values) == 60 and values.min() >= -100.0
    rank = rep["real"]["percentile_rank"]["total_return_pct"]
    real = rep["real"]["metrics"]["total_return_pct"]
    below = np.sum(values < round(real, 4)) + 0.5 * np.sum(values == round(real, 4))
    assert rank == pytest.approx(100 * below / 60, abs=100 / 60)
    assert rep["bootstrap"]["block_length"] == rep["bootstrap"]["politis_white_abs_returns"]
    assert "P(liquidation)" in capsys.readouterr().out
    # the JSON alone (config + seed) reproduces the result
    again = stress.stress(RunConfig.model_validate(rep["config"]["run"]),
                          StressConfig.model_validate(rep["config"]["stress"]),
                          strategies.get(rep["strategy"]["name"]), "stress.json")
    again.pop("timing")
    assert json.loads(json.dumps(again)) == rep


def test_stress_refuses_a_strategy_that_needs_external_series(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "miner.toml"
    config.write_text(f'extends = "{ROOT / "configs" / "miner_capitulation.toml"}"\n'
                      "[stress]\npaths = 10\n", encoding="utf-8")
    assert main(["stress", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "strategy.name: expected a strategy that reads bars only" in err
    assert "\n" not in err and not (tmp_path / "out").exists()


def test_unknown_stress_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "typo.toml"
    config.write_text(f'extends = "{ROOT / "configs" / "stress_perp_3x.toml"}"\n'
                      "[stress]\npath = 10\n", encoding="utf-8")
    assert main(["stress", str(config)]) == 2
    assert "stress: path: unknown key; did you mean 'paths'" in capsys.readouterr().err


def test_percentile_rank_counts_ties_half() -> None:
    assert bs.percentile_rank(np.array([1.0, 2.0, 3.0, 4.0]), 2.0) == 37.5
    assert math.isnan(bs.percentile_rank(np.array([]), 1.0))
    assert pd.isna(bs.percentile_rank(np.array([1.0]), math.nan))


@pytest.mark.browser
def test_stress_page_in_browser(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # the browser helpers, as test_html_browser
    from browser import visit
    from test_html_browser import assert_clean

    config = ROOT / "configs" / "stress_perp_3x.toml"
    assert main(["stress", str(config), "--paths", "20", "--out", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    rep = json.loads((folder / "stress.json").read_text(encoding="utf-8"))
    with visit(folder / "stress.html", tmp_path / "stress.png") as seen:
        assert_clean(seen, {f"chart-{key}" for key in stress.METRICS})
        probability = seen.values("#probabilities tr[data-name] td:nth-child(4)", "data-value")
        assert sorted(v for v, _ in probability.values()) == sorted(
            p["p"] for p in rep["probabilities"].values())
