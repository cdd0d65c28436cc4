"""The strategy contract, checked for every strategy in strategies.REGISTRY (new ones are picked
up automatically) and for the strategy guide's example (docs/examples/my_strategy.py): aligned boolean signals, determinism, no look-ahead including external series,
NaN (not 0) warm-up, and a search space that matches the Params.

All on BTCUSDT 1d, run range 2024-03-01 .. 2026-03-31 (ETF flows exist from 2024-01-11), default
params. Kinds a strategy requires or lists as optional are supplied: bundled ones from datasets/,
the others (open interest, liquidations, daily funding) from ../shared/data.

Warm-up rule (see backtest.checks.zero_placeholders): with history starting at the run start
instead of 2017, a float feature must not be exactly 0.0 before its first non-zero value where
the full history gives something else. An honest indicator without enough data is NaN; a 0.0
there is ta's fillna or a zero-filled ATR. A state that legitimately starts at 0 must be a bool
column. Back-filled warm-ups are caught by the look-ahead check's early cuts.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies
from backtest import checks, plugins
from backtest.config.loader import parse_config
from backtest.config.run import RunConfig
from backtest.data import external
from backtest.data.files import manifest
from backtest.errors import StrategyError
from backtest.inputs import RunInputs, prepare
from backtest.strategy.contract import Choice, Dimension, FloatRange, IntRange, StrategySpec
from scripts.bundle_datasets import shared_data_dir

SHARED = shared_data_dir()
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "my_strategy.toml"
SPECS = {**strategies.REGISTRY,
         "my_strategy": plugins.resolve("my_strategy.py:SPEC", str(EXAMPLE), True)}
USER_FILES = {"open_interest": "btc_open_interest_1d.csv",
              "liquidations": "btc_liquidations_1d.csv",
              "funding_1d": "btc_funding_1d_cryptoquant.csv"}
BUNDLED_KINDS = {entry["kind"] for entry in manifest().values()}


def contract_config(spec: StrategySpec) -> RunConfig:
    """BTCUSDT 1d 2024-03-01 .. 2026-03-31 with every kind the strategy can read supplied."""
    ext: dict[str, dict[str, Any]] = {}
    for kind in (*spec.requires, *spec.optional):
        assert kind in external.KINDS, f"{spec.name}: unknown external kind {kind!r}"
        if kind in BUNDLED_KINDS:
            ext[kind] = {}
        else:
            assert kind in USER_FILES, f"{spec.name}: no test file for {kind!r}"
            ext[kind] = {"path": str(SHARED / USER_FILES[kind])}
    return parse_config({"data": {"dataset": "btcusdt_1d", "start": "2024-03-01",
                                  "end": "2026-03-31"},
                         "strategy": {"name": spec.name}, "external": ext}, "contract")


@dataclasses.dataclass(frozen=True)
class Run:
    spec: StrategySpec
    cfg: RunConfig
    inputs: RunInputs
    first: dict[str, np.ndarray]
    second: dict[str, np.ndarray]
    lookahead: checks.LookaheadReport
    warmup: checks.WarmupReport


@pytest.fixture(scope="module", params=sorted(SPECS))
def run(request: pytest.FixtureRequest) -> Run:
    """Everything computed once per strategy and shared by the tests below."""
    spec = SPECS[request.param]
    cfg = contract_config(spec)
    inputs = prepare(cfg, spec, "contract")
    first = checks.evaluate(spec, inputs.params, inputs.history, inputs.context)
    second = checks.evaluate(spec, inputs.params, inputs.history, inputs.context)
    return Run(spec, cfg, inputs, first, second,
               checks.lookahead(cfg, spec, "contract", inputs=inputs),
               checks.warmup(cfg, spec, "contract", inputs=inputs))


def test_signals_are_boolean_series_on_the_bars_index(run: Run) -> None:
    bars = run.inputs.history
    feats = run.spec.features(bars, run.inputs.params, run.inputs.context)
    sigs = run.spec.signals(bars, feats, run.inputs.params)
    assert feats.index.equals(bars.index)
    for name in ("long_entries", "long_exits", "short_entries", "short_exits"):
        series = getattr(sigs, name)
        if series is not None:
            assert series.dtype == bool and series.index.equals(bars.index), name
    for name in ("stop_price", "target_price", "entry_fraction"):
        series = getattr(sigs, name)
        if series is not None:
            assert series.index.equals(bars.index) and series.dtype.kind == "f", name


def test_two_runs_are_identical(run: Run) -> None:
    assert run.first.keys() == run.second.keys()
    for column, values in run.first.items():
        assert checks.same(values, run.second[column]).all(), column


def test_no_look_ahead_including_external_series(run: Run) -> None:
    assert len(run.lookahead.cuts) >= 30
    assert run.lookahead.clean, checks.render_lookahead(run.lookahead)


def test_warm_up_is_nan_not_zero(run: Run) -> None:
    assert [r.days for r in run.warmup.rows] == list(checks.WARMUP_DAYS)
    bad = [o for r in run.warmup.rows for o in r.zero_placeholders]
    assert not bad, checks.render_warmup(run.warmup)


def _documented_as_fixed(spec: StrategySpec, name: str) -> bool:
    docs = (inspect.getdoc(spec.params) or "") + (sys.modules[spec.signals.__module__].__doc__
                                                  or "")
    return name in docs and "fixed" in docs


@pytest.mark.parametrize("name", sorted(SPECS))
def test_space_matches_params_and_holds_the_defaults(name: str) -> None:
    spec = SPECS[name]
    fields = [f.name for f in dataclasses.fields(spec.params)]
    assert set(spec.space) <= set(fields), f"space keys without a Params field: {spec.space}"
    for field in fields:
        assert field in spec.space or _documented_as_fixed(spec, field), (
            f"{name}: Params.{field} is not in the space; name it as fixed in the docstring")
    defaults = spec.defaults()
    for key, dim in spec.space.items():
        assert dim.contains(getattr(defaults, key)), f"{name}: default {key} outside {dim}"


def draw(dim: Dimension) -> st.SearchStrategy[Any]:
    if isinstance(dim, IntRange):
        return st.integers(0, (dim.high - dim.low) // dim.step).map(lambda k: dim.low
                                                                    + k * dim.step)
    if isinstance(dim, FloatRange):
        return st.floats(dim.low, dim.high, allow_nan=False)
    assert isinstance(dim, Choice)
    return st.sampled_from(dim.options)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_random_draw_from_the_space_gives_params_that_run(run: Run, data: st.DataObject) -> None:
    values = data.draw(st.fixed_dictionaries({k: draw(d) for k, d in run.spec.space.items()}))
    try:
        params = run.spec.make_params(values, "draw")
    except StrategyError as exc:
        assert str(exc).startswith("draw: strategy.params") and "\n" not in str(exc)
        return
    assert {k: getattr(params, k) for k in values} == values
    bars = run.inputs.history.iloc[-400:]
    sigs = run.spec.signals(bars, run.spec.features(bars, params, run.inputs.context), params)
    assert sigs.long_entries.index.equals(bars.index)
