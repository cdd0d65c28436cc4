"""Config parsing: frozen objects, strict keys with hints, errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backtest.config.loader import apply_overrides, load_config, parse_config
from backtest.config.run import RunConfig
from backtest.errors import ConfigError

MINIMAL = {"data": {"dataset": "btcusdt_1d"}, "strategy": {"name": "break_below_74k"}}


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_frozen() -> None:
    cfg = parse_config(MINIMAL, "x.toml")
    assert cfg.execution.fill == "next_open"
    assert cfg.execution.fee_rate == 0.001
    with pytest.raises(ValidationError):
        cfg.execution.fee_rate = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(("raw", "expected"), [
    ({**MINIMAL, "executon": {}}, "x.toml: executon: unknown key; did you mean 'execution'?"),
    ({"data": {"dataset": "d", "strat": "2020-01-01"}, "strategy": {"name": "s"}},
     "x.toml: data.strat: unknown key; did you mean 'start'?"),
    ({**MINIMAL, "execution": {"fee_rate": "abc"}}, "x.toml: execution.fee_rate: expected a valid number"),
    ({**MINIMAL, "execution": {"fee_rate": -0.1}},
     "x.toml: execution.fee_rate: expected greater than or equal to 0, found -0.1"),
    ({**MINIMAL, "execution": {"fill": "open"}}, "x.toml: execution.fill: expected 'next_open' or 'close', found 'open'"),
    ({"data": {"dataset": "d", "start": "2021-01-01", "end": "2020-01-01"}, "strategy": {"name": "s"}},
     "x.toml: data: expected end after start, found start 2021-01-01 00:00 and end 2020-01-01 00:00"),
    ({"data": {"dataset": "d"}}, "x.toml: (top level): expected exactly one of [strategy] or [[strategies]], found neither"),
    ({**MINIMAL, "strategies": [{"name": "a"}]}, "x.toml: (top level): expected exactly one of [strategy] or [[strategies]], found both"),
    ({"data": {"dataset": "d"}, "strategies": []}, "x.toml: strategies: expected List should have at least 1 item"),
    ({"data": {"dataset": "d"}, "strategies": [{"name": "a", "parms": {}}]}, "x.toml: strategies.0.parms: unknown key; did you mean 'params'?"),
    ({"data": {"dataset": "d"}, "strategies": [{"name": "a"}, {"name": "a"}]}, "x.toml: (top level): expected a distinct label per [[strategies]] entry, found 'a' 2 times"),
    ({**MINIMAL, "external": {"etf_flows": {"lagg": "1d"}}}, "x.toml: external.etf_flows.lagg: unknown key; did you mean 'lag'?"),
    ({"data": {"dataset": "d", "path": "p.csv"}, "strategy": {"name": "s"}},
     "x.toml: data: expected exactly one of 'dataset' or 'path'"),
    ({"data": {"dataset": "d", "start": "yesterday"}, "strategy": {"name": "s"}},
     "x.toml: data.start: expected an ISO-8601 date, found 'yesterday'"),
    ({**MINIMAL, "execution": {"init_cash": float("inf")}}, "x.toml: execution.init_cash: expected a finite number"),
    ({**MINIMAL, "execution": {"init_cash": 1e300}}, "x.toml: execution.init_cash: expected less than or equal to"),
])
def test_errors_name_file_key_expected_found(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "x.toml")
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_toml_dates_and_times_are_utc(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\ndataset = "d"\nstart = 2026-02-01\nend = 2026-02-03T12:00:00+02:00\n'
                           '[strategy]\nname = "s"\n')
    cfg = load_config(path)
    assert cfg.data.start.isoformat() == "2026-02-01T00:00:00+00:00"
    assert cfg.data.end.isoformat() == "2026-02-03T10:00:00+00:00"


def test_extends_merges_and_cycles_are_refused(tmp_path: Path) -> None:
    write(tmp_path, '[execution]\nfee_rate = 0.0005\ninit_cash = 5000.0\n', "base.toml")
    child = write(tmp_path, 'extends = "base.toml"\n[data]\ndataset = "d"\n[strategy]\nname = "s"\n'
                            '[execution]\nfee_rate = 0.0\n')
    cfg = load_config(child)
    assert (cfg.execution.fee_rate, cfg.execution.init_cash) == (0.0, 5000.0)
    write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(ConfigError, match=r"a\.toml: extends: expected no cycle, found .*a\.toml -> .*b\.toml -> .*a\.toml"):
        load_config(tmp_path / "a.toml")


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: file not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(write(tmp_path, "[data\n", "bad.toml"))
    bad_bytes = tmp_path / "latin.toml"
    bad_bytes.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: expected UTF-8 text, found byte 0xe9"):
        load_config(bad_bytes)


def test_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\ndataset = "d"\n[strategy]\nname = "s"\n')
    cfg = load_config(path, ["strategy.params.confirm_bars=2", "execution.fill=close",
                             'strategy.params.mode="short"'])
    assert cfg.strategy.params == {"confirm_bars": 2, "mode": "short"}
    assert cfg.execution.fill == "close"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["nothing"])
    with pytest.raises(ConfigError, match=r"execution\.fee_rate: expected a valid number"):
        load_config(path, ["execution.fee_rate=cheap"])


def test_several_strategies_split_into_runs(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\npath = "bars.csv"\n[[strategies]]\nname = "a"\n'
                 '[[strategies]]\nname = "a"\nlabel = "a-2"\nparams = { x = 2 }\n')
    cfg = load_config(path)
    runs = cfg.runs()
    assert [r.strategy.label for r in runs] == [None, "a-2"]
    assert all(r.strategies is None and r.data == cfg.data for r in runs)
    assert cfg.data.path == str(tmp_path / "bars.csv")  # relative to the config's folder


def test_hash_is_stable_and_sensitive() -> None:
    a = parse_config(MINIMAL, "x")
    b = RunConfig.model_validate(MINIMAL)
    c = parse_config({**MINIMAL, "execution": {"fee_rate": 0.002}}, "x")
    assert a.config_hash() == b.config_hash() != c.config_hash()


# ---------------------------------------------------------------- extends rules (loader docstring)

PARENT = ('[data]\ndataset = "btcusdt_1d"\nstart = 2024-01-01\nend = 2024-06-30\n'
          '[strategy]\nname = "break_below_74k"\nlabel = "parent"\n'
          '[strategy.params]\nlevel = 70000.0\n')


def test_a_child_window_replaces_the_parent_start_and_end(tmp_path: Path) -> None:
    write(tmp_path, PARENT, "parent.toml")
    cfg = load_config(write(tmp_path, 'extends = "parent.toml"\n[data]\nwindow = "feb-2026"\n'))
    assert (cfg.data.window, cfg.data.start, cfg.data.end) == ("feb-2026", None, None)
    assert cfg.strategy.params == {"level": 70000.0}  # the rest of the parent stays


def test_a_child_start_replaces_the_parent_window(tmp_path: Path) -> None:
    write(tmp_path, '[data]\ndataset = "btcusdt_1d"\nwindow = "feb-2026"\n'
                    '[strategy]\nname = "break_below_74k"\n', "parent.toml")
    cfg = load_config(write(tmp_path, 'extends = "parent.toml"\n[data]\nstart = 2025-01-01\n'))
    assert cfg.data.window is None and cfg.data.start.year == 2025


def test_a_child_with_another_strategy_drops_the_parent_params(tmp_path: Path) -> None:
    write(tmp_path, PARENT, "parent.toml")
    cfg = load_config(write(tmp_path, 'extends = "parent.toml"\n'
                                      '[strategy]\nname = "reclaim_80k"\n'))
    assert (cfg.strategy.name, cfg.strategy.params, cfg.strategy.label) == (
        "reclaim_80k", {}, None)
    same = load_config(write(tmp_path, 'extends = "parent.toml"\n[strategy]\n'
                                       'name = "break_below_74k"\n', "same.toml"))
    assert same.strategy.params == {"level": 70000.0} and same.strategy.label == "parent"


def test_set_follows_the_extends_rules(tmp_path: Path) -> None:
    path = write(tmp_path, PARENT)
    cfg = load_config(path, ["data.window=feb-2026", "strategy.name=reclaim_80k"])
    assert (cfg.data.start, cfg.data.window, cfg.strategy.params) == (None, "feb-2026", {})


def test_strategies_replace_the_parent_strategy(tmp_path: Path) -> None:
    write(tmp_path, PARENT, "parent.toml")
    cfg = load_config(write(tmp_path, 'extends = "parent.toml"\n[[strategies]]\n'
                                      'name = "reclaim_80k"\n[[strategies]]\n'
                                      'name = "break_below_74k"\n'))
    assert cfg.strategy is None and [r.strategy.name for r in cfg.runs()] == [
        "reclaim_80k", "break_below_74k"]


def test_an_optimize_table_is_part_of_the_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, PARENT + '[optimize]\ntrials = 7\n'))
    assert cfg.optimize is not None and cfg.optimize.trials == 7
    with pytest.raises(ConfigError, match=r"optimize\.trails: unknown key; did you mean "
                                          r"'trials'"):
        load_config(write(tmp_path, PARENT + '[optimize]\ntrails = 7\n', "bad.toml"))
