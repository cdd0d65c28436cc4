"""The batched evaluation path (Evaluator.evaluate_many: one kernel call over sets x ranges,
metrics from arrays) scores every set exactly as the old road did: signals, then
``inputs.simulate(sigs, rows)`` (trade and order frames, vectorbt or kernel) and
``metrics.compute`` per fold range. The reference below is written here, from those public
functions only, for every registered strategy on its shipped config with walk-forward folds,
a perp config with funding and liquidation, and every sizing kind and slippage model."""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import catalogue
from backtest.config.loader import load_config
from backtest.config.optimize import OptimizeConfig
from backtest.engine.batch import RangeEngine
from backtest.engine.batch_kernels import T_TRADES
from backtest.errors import StrategyError
from backtest.metrics import overfit
from backtest.metrics import performance as metrics
from backtest.optimize.evaluate import Evaluator, FeatureCache
from backtest.strategy.contract import Choice, FloatRange, IntRange, StrategySpec
from backtest.types import Signals
from strategies import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
TOL = {"rel": 1e-9, "abs": 1e-9}
TRADE_RATIOS = ("sharpe", "sortino", "calmar", "profit_factor", "win_rate_pct")
WALK_FORWARD = {"kind": "walk_forward", "folds": 3, "train_frac": 0.7}


def evaluator(config: str, *overrides: str, **opt: Any) -> Evaluator:
    cfg = load_config(ROOT / "configs" / config, list(overrides))
    cfg = cfg.model_copy(update={"optimize": None})
    options = OptimizeConfig.model_validate({"validation": WALK_FORWARD, **opt})
    return Evaluator(cfg, options, REGISTRY[cfg.strategy.name], config)


def sampled(spec: StrategySpec, rng: random.Random) -> dict[str, Any]:
    """A parameter set drawn from the strategy's search space."""
    out: dict[str, Any] = {}
    for name, dim in spec.space.items():
        if isinstance(dim, Choice):
            out[name] = rng.choice(dim.options)
        elif isinstance(dim, IntRange):
            out[name] = rng.randrange(dim.low, dim.high + 1, dim.step)
        elif isinstance(dim, FloatRange):
            out[name] = rng.uniform(dim.low, dim.high)
    return out


def parameter_sets(spec: StrategySpec, seed: int, count: int = 4) -> list[dict[str, Any]]:
    """The defaults, ``count`` sampled sets, and one set Params refuses (an unknown key)."""
    rng = random.Random(seed)
    return [{}, *(sampled(spec, rng) for _ in range(count)), {"no_such_param": 1}]


# ----------------------------------------------------------------------- the old road, inline

def old_road(ev: Evaluator, values: Mapping[str, Any]) -> tuple[dict, np.ndarray]:
    """Per range: ``inputs.simulate`` + ``metrics.compute``; and the full range's returns."""
    inp = ev.inputs
    params = ev.spec.make_params(values, ev.source)
    sigs = inp.signals(params)
    by_range, full = {}, np.empty(0)
    for rows in ev.ranges:
        result = inp.simulate(sigs, rows)
        by_range[rows] = metrics.compute(result, inp.freq)
        if rows == (0, len(inp.bars)):
            full = result.returns.to_numpy(dtype=float)
    return by_range, full


def as_scored(row: Mapping[str, Any]) -> dict[str, float | None]:
    """A range's metrics as a fold stores them: floats, trade ratios None without a trade."""
    return {k: None if row[k] is None or (row["n_trades"] == 0 and k in TRADE_RATIOS)
            else float(row[k]) for k in catalogue.METRIC_KEYS}


def mean(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    out = {}
    for k in catalogue.METRIC_KEYS:
        defined = [r[k] for r in rows if r[k] is not None]
        out[k] = sum(defined) / len(defined) if defined else None
    return out


def assert_close(got: Mapping[str, Any], want: Mapping[str, Any], where: str) -> None:
    for key in catalogue.METRIC_KEYS:
        if want[key] is None:
            assert got[key] is None, f"{where}: {key}: {got[key]} vs None"
        else:
            assert got[key] == pytest.approx(want[key], **TOL), f"{where}: {key}"


def assert_same_as_old_road(ev: Evaluator, values: Mapping[str, Any],
                            got: dict[str, Any] | StrategyError) -> list[int]:
    """``got`` (one slot of evaluate_many) against the old road; returns the trade counts of
    the ranges compared (so a caller can see both traded and untraded ranges were seen)."""
    try:
        by_range, full = old_road(ev, values)
    except StrategyError as exc:
        assert isinstance(got, StrategyError) and str(got) == str(exc)
        return []
    assert isinstance(got, dict), got
    counts = []
    for fold, scored in zip(ev.folds, got["folds"], strict=True):
        ((train,), (test,)) = fold.train, fold.test  # walk-forward: one range each
        assert_close(scored["is"], as_scored(by_range[train]), f"{values} {fold.name} is")
        assert_close(scored["oos"], as_scored(by_range[test]), f"{values} {fold.name} oos")
        counts += [by_range[train]["n_trades"], by_range[test]["n_trades"]]
    is_mean = mean([as_scored(by_range[f.train[0]]) for f in ev.folds])
    assert_close(got["is_mean"], is_mean, f"{values} is_mean")
    assert_close(got["oos_mean"], mean([as_scored(by_range[f.test[0]]) for f in ev.folds]),
                 f"{values} oos_mean")
    objectives = [is_mean[o.metric] or 0.0 for o in ev.opt.objectives]
    assert got["objectives"] == pytest.approx(objectives, **TOL)
    assert got["undefined"] == [o.metric for o in ev.opt.objectives if is_mean[o.metric] is None]
    stats = overfit.return_stats(full)
    for key, value in got["full_stats"].items():
        assert value == pytest.approx(getattr(stats, key), **TOL), key
    blocks = overfit.block_sums(full, ev.blocks)[:, :, 0]
    np.testing.assert_allclose(got["blocks"], blocks, rtol=1e-9, atol=1e-9)
    return counts


STRATEGY_CONFIGS = {name: f"{name}.toml" for name in REGISTRY}


def test_every_registered_strategy_has_a_shipped_config() -> None:
    for name, config in STRATEGY_CONFIGS.items():
        assert load_config(ROOT / "configs" / config).strategy.name == name


@pytest.mark.parametrize("name", sorted(STRATEGY_CONFIGS))
def test_batch_equals_old_road_for_every_strategy(name: str) -> None:
    ev = evaluator(STRATEGY_CONFIGS[name])
    sets = parameter_sets(ev.spec, seed=sorted(REGISTRY).index(name))
    got = ev.evaluate_many(sets)
    assert len(got) == len(sets)
    assert isinstance(got[-1], StrategyError)  # the refused set has its error in its slot
    for values, scored in zip(sets, got, strict=True):
        assert_same_as_old_road(ev, values, scored)


# break_below_74k: traded and untraded folds, a set without any trade, sets Params refuses
BREAK_BELOW_SETS = [
    {},
    {"level": 70_500.0, "target": 60_000.0, "stop_level": 84_000.0, "confirm_bars": 3},
    {"level": 1_000.0, "target": 500.0, "stop_level": 2_000.0},  # never reached: no trade
    {"mode": "derisk", "level": 90_000.0, "confirm_bars": 2},
    {"level": 70_000.0, "target": 75_000.0},  # target above the level: refused by Params
    {"confirm_bars": "three"},  # wrong kind: refused by make_params
]


@pytest.mark.parametrize(("config", "overrides"), [
    ("optimize_break_below.toml", ()),
    ("break_below_74k_perp.toml", ()),  # funding, tiers, liquidation, 3x leverage
    ("break_below_74k_perp.toml", ("execution.leverage=20.0", "execution.sl_stop=0.2")),
    ("optimize_break_below.toml", ('execution.size={kind = "fraction", fraction = 0.4}',)),
    ("optimize_break_below.toml", ('execution.size={kind = "notional", notional = 3000.0}',)),
    ("break_below_74k_perp.toml", ('execution.size={kind = "risk", risk = 0.02}',)),
    ("optimize_break_below.toml", ('execution.size={kind = "vol_target", target = 0.5}',
                                   'execution.slippage_model="sqrt_impact"',
                                   "execution.slippage_vol_coef=0.1")),
    ("optimize_break_below.toml", ('execution.fill="close"', "execution.tp_stop=0.05")),
    ("optimize_break_below.toml", ('execution.direction="long"',)),
], ids=lambda v: v if isinstance(v, str) else "-".join(v) or "as-shipped")
def test_batch_equals_old_road_on_execution_variants(config: str, overrides: tuple) -> None:
    ev = evaluator(config, *overrides)
    got = ev.evaluate_many(BREAK_BELOW_SETS)
    counts = []
    for values, scored in zip(BREAK_BELOW_SETS, got, strict=True):
        counts += assert_same_as_old_road(ev, values, scored)
    assert sum(isinstance(g, StrategyError) for g in got) == 2
    assert 0 in counts and max(counts) > 0  # ranges without and with trades were compared


def test_a_batch_equals_single_evaluations_in_any_order() -> None:
    ev = evaluator("fear_greed_contrarian.toml")
    sets = parameter_sets(ev.spec, seed=11, count=5)
    one_by_one = [ev.evaluate_many([values])[0] for values in sets]
    order = [3, 0, 5, 1, 4, 2, 6]
    batch = ev.evaluate_many([sets[i] for i in order])
    for i, got in zip(order, batch, strict=True):
        if isinstance(got, StrategyError):
            assert str(got) == str(one_by_one[i])
        else:
            assert got == one_by_one[i]  # bit for bit: the same kernel on the same slices


def test_evaluate_is_one_set_of_evaluate_many() -> None:
    ev = evaluator("optimize_break_below.toml")
    assert ev.evaluate(BREAK_BELOW_SETS[1]) == ev.evaluate_many([BREAK_BELOW_SETS[1]])[0]
    with pytest.raises(StrategyError, match="target < level < stop_level"):
        ev.evaluate(BREAK_BELOW_SETS[4])


def test_small_chunks_change_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    ev = evaluator("optimize_break_below.toml")
    together = ev.evaluate_many(BREAK_BELOW_SETS)
    monkeypatch.setattr("backtest.optimize.evaluate.BATCH_BYTES", 1)  # one set per call
    alone = ev.evaluate_many(BREAK_BELOW_SETS)
    assert [str(g) if isinstance(g, StrategyError) else g for g in alone] == \
        [str(g) if isinstance(g, StrategyError) else g for g in together]


@pytest.mark.parametrize("config", ["optimize_break_below.toml", "fear_greed_contrarian.toml"])
def test_a_batch_split_over_two_cores_changes_no_result(config: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels' second half of the columns on another thread (stop/target rows per column
    in the first config, one shared unset row in the second; 4 and 5 valid sets beside
    refused ones) gives what one call over all columns gives, bit for bit."""
    ev = evaluator(config)
    sets = BREAK_BELOW_SETS if config.startswith("optimize") else \
        parameter_sets(ev.spec, seed=5, count=4)
    with ThreadPoolExecutor(1) as spare:
        monkeypatch.setattr("backtest.native._spare_core", lambda: spare)
        split = ev.evaluate_many(sets)
    monkeypatch.setattr("backtest.native._spare_core", lambda: None)
    whole = ev.evaluate_many(sets)
    assert [str(g) if isinstance(g, StrategyError) else g for g in split] == \
        [str(g) if isinstance(g, StrategyError) else g for g in whole]
    assert sum(not isinstance(g, StrategyError) for g in whole) in (4, 5)


@pytest.fixture(scope="module")
def reclaim() -> Evaluator:
    return evaluator("reclaim_80k.toml", "execution.sl_stop=0.08")


@settings(max_examples=12, deadline=None)
@given(level=st.floats(40_000.0, 110_000.0), hold=st.integers(1, 5),
       confirm=st.sampled_from(["close", "wick"]), rearm=st.floats(0.0, 0.05))
def test_property_any_reclaim_set_scores_as_the_old_road(reclaim: Evaluator, level: float,
                                                         hold: int, confirm: str,
                                                         rearm: float) -> None:
    values = {"level": level, "hold": hold, "confirm": confirm, "rearm_pct": rearm}
    (got,) = reclaim.evaluate_many([values])
    assert_same_as_old_road(reclaim, values, got)
    if isinstance(got, dict):
        assert all(math.isfinite(v) for v in got["objectives"])


@functools.cache
def kernel_evaluator(config: str) -> Evaluator:
    """An evaluator whose runs take the numba kernel whatever the config (no vectorbt)."""
    return evaluator(config, 'execution.engine="numba"')


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, 2_000), st.integers(1, 2_000)), min_size=1,
                     max_size=4),
       config=st.sampled_from(["break_below_74k_perp.toml", "support_ladder.toml",
                               "miner_capitulation.toml"]))
def test_property_a_range_of_a_batch_is_the_run_of_that_range(cuts: list, config: str) -> None:
    """Equity and position of every (set, range) equal, bit for bit, the kernel run of that
    range with the signals restricted to it (the claim of backtest.engine.batch)."""
    ev = kernel_evaluator(config)
    inp = ev.inputs
    n = len(inp.bars)
    ranges = sorted({(min(a, n - 1), min(a + length, n)) for a, length in cuts})
    engine = RangeEngine(inp.history, inp.first, ranges, inp.cfg.execution, inp.freq,
                         inp.funding)
    sets = [{}, sampled(ev.spec, random.Random(len(ranges)))]
    columns = [inp.signals(ev.spec.make_params(values)) for values in sets]
    runs = engine.run(columns)
    for c, sigs in enumerate(columns):
        for r, rows in enumerate(ranges):
            result = inp.simulate(sigs, rows)
            equity, position = runs.curve(c, r)
            np.testing.assert_array_equal(equity, result.equity.to_numpy())
            np.testing.assert_array_equal(position, result.position.to_numpy())
            assert runs.totals[c, r, T_TRADES] == len(result.trades)


def test_signals_off_the_bars_index_are_that_sets_error() -> None:
    base = REGISTRY["break_below_74k"]

    def shifted(bars, feats, params):  # a strategy bug: signals on the wrong index
        sigs = base.signals(bars, feats, params)
        if params.confirm_bars == 2:
            return Signals(sigs.long_entries.iloc[1:], sigs.long_exits.iloc[1:])
        return sigs

    plain = evaluator("optimize_break_below.toml")
    ev = Evaluator(plain.cfg, plain.opt, dataclasses.replace(base, signals=shifted), "test")
    got = ev.evaluate_many([{}, {"confirm_bars": 2}, {"confirm_bars": 3}])
    assert isinstance(got[1], StrategyError)
    assert str(got[1]).startswith("signals: index: expected the index of the bars")
    assert got[0] == plain.evaluate({}) and got[2] == plain.evaluate({"confirm_bars": 3})


@pytest.mark.parametrize("size", [1, 3])
def test_feature_cache_keeps_the_newest_frames(size: int) -> None:
    ev = evaluator("optimize_reclaim_ath.toml")
    cache = FeatureCache(ev.spec, size)
    frames = {}
    ath = ev.inputs.history["high"].max()
    for fraction in (0.5, 0.6, 0.7, 0.8, 0.7):
        params = ev.spec.make_params({"level_mode": "ath_fraction", "ath_fraction": fraction})
        frames[fraction] = cache.get(ev.inputs.history, params, ev.inputs.context)
        assert frames[fraction]["level"].iloc[-1] == fraction * ath
    assert len(cache.entries) == size
    assert cache.hits == (1 if size >= 2 else 0)  # 0.7 again, two fractions later


def test_break_below_features_are_computed_once_per_search() -> None:
    """break_below_74k's features (the anchor of its levels) read only level_mode and
    ema_weeks: every set of a search over levels, targets and stops shares one frame."""
    ev = evaluator("optimize_break_below.toml")
    sets = [{"level": 70_000.0 + 500 * k, "target": 60_000.0 + k, "stop_level": 85_000.0 - k,
             "confirm_bars": 1 + k % 3} for k in range(12)]
    ev.evaluate_many(sets)
    assert (len(ev.features.entries), ev.features.hits) == (1, 11)


# ------------------------------------------- the batched metrics, bit for bit the per-range road

def per_range_road(ev: Evaluator, sets: list[dict[str, Any]]) -> tuple[Any, list[dict]]:
    """The engine's batch output and, per (set, scored range), ``curve_metrics`` of its arrays
    with the trade ratios None in a range without a trade (what the search scored before the
    metrics were batched)."""
    runs = ev.engine.run([ev.signals(values) for values in sets])
    init_cash = float(ev.cfg.execution.init_cash)
    rows = []
    for c in range(len(sets)):
        for r in ev.scored_at:
            equity, position = runs.curve(c, int(r))
            row = metrics.curve_metrics(equity, metrics.bar_returns(equity, init_cash), position,
                                        metrics.totals_summary(runs.totals[c, r]), init_cash,
                                        ev.inputs.freq)
            if not row["n_trades"]:
                row.update(dict.fromkeys(TRADE_RATIOS))
            rows.append(row)
    return runs, rows


def python_mean(rows: list[dict], summed: str | None) -> dict[str, float | None]:
    """Mean of each metric over the rows defining it, in Python (``summed``: summed)."""
    out: dict[str, float | None] = {}
    for key in catalogue.METRIC_KEYS:
        defined = [float(r[key]) for r in rows if r[key] is not None]
        out[key] = (float(sum(defined)) if key == summed
                    else sum(defined) / len(defined) if defined else None)
    return out


def as_rows(table: np.ndarray) -> list[dict]:
    return [{k: None if math.isnan(v) else v for k, v in zip(catalogue.METRIC_KEYS, row, strict=True)}
            for row in table.reshape(-1, table.shape[-1]).tolist()]


@pytest.mark.parametrize("config", ["optimize_break_below.toml", "optimize_reclaim_ath.toml"])
def test_range_metrics_are_curve_metrics_to_the_last_bit(config: str) -> None:
    ev = evaluator(config, validation={"kind": "walk_forward", "folds": 4, "train_frac": 0.7})
    sets = [{}, *(sampled(ev.spec, random.Random(seed)) for seed in range(7))]
    sets = [s for s in sets if not isinstance(ev.evaluate_many([s])[0], StrategyError)]
    runs, want = per_range_road(ev, sets)
    table = metrics.range_metrics(runs.equity, runs.position, runs.at, runs.totals, ev.scored_at,
                                  float(ev.cfg.execution.init_cash), ev.inputs.freq,
                                  TRADE_RATIOS)
    assert as_rows(table) == want  # ==, not approx: the same operations in the same order
    assert any(r["n_trades"] for r in want) and any(not r["n_trades"] for r in want)


def test_defined_means_are_pythons_means_to_the_last_bit() -> None:
    rng = np.random.default_rng(3)
    table = rng.normal(size=(3, 6, len(catalogue.METRIC_KEYS))) * 10.0 ** rng.integers(-3, 9)
    table[rng.random(table.shape) < 0.3] = np.nan  # undefined metrics, some groups all NaN
    table[:, :, 0] = [-0.0, -0.0, np.nan, 1e300, -1e300, 1e-300]
    groups = [[0, 2, 5], [1], [3, 4, 0, 2], [2]]
    padded = np.full((len(groups), 4), -1, dtype=np.int64)
    for g, members in enumerate(groups):
        padded[g, :len(members)] = members
    for summed in (None, "n_trades"):
        got = metrics.defined_means(table, padded, summed)
        for c in range(table.shape[0]):
            rows = as_rows(table[c])
            want = [python_mean([rows[i] for i in members], summed) for members in groups]
            assert as_rows(got[c]) == want
