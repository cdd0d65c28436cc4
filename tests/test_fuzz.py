"""A fuzzer for the promise every command keeps: whatever the config, the data file or the
report, crashbt exits 0 or 2 (never 1, never a traceback) and leaves nothing behind (no temp
file, no partial report directory).

Three generators: configs (known keys with values of every type and size, unknown keys, raw
TOML garbage), CSV files (the corpus bars with cells, rows, bytes and headers mutated) and run
directories (a finished report.json with values replaced at random paths, given to ``report``).
Calls :func:`backtest.cli.main` in-process for speed; ``derandomize`` keeps ``make test``
deterministic and bounded (``max_examples`` per generator below).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backtest.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD_CSV = ROOT / "tests" / "corpus" / "data" / "good.csv"
LEFTOVER = re.compile(r"^\.(.+)\.(tmp|old)-\d+-\w*$")
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- values and TOML text

SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "1h", "1d", "15m", "0m", "feb_2026_crash", "next_open", "close",
                     "short", "long", "both", "perp", "spot", "isolated", "warn", "reject",
                     "parquet", "binance", "csv", "auto", "break_below_74k", "../x", "/dev/zero",
                     "2026-01-20", "2026-02-30", "1500-01-01", "9999-12-31T23:59:59Z"]),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4),
                   st.lists(st.lists(SCALARS, max_size=4), max_size=3))
KNOWN = {
    "data": ["start", "end", "window", "timeframe", "format", "bad_ticks", "symbol", "path",
             "dataset"],
    "strategy": ["name", "label"],
    "strategy.params": ["confirm_bars", "level", "target", "stop_level", "mode"],
    "execution": ["init_cash", "fee_rate", "slippage_rate", "fill", "direction", "sl_stop",
                  "tp_stop", "tsl_stop", "engine", "instrument", "leverage", "margin_mode",
                  "maintenance_tiers"],
    "report": ["html"],
    "optimize": ["trials"],
}
# values that may well be accepted, so that the fuzzer also reaches the engine and the report
PLAUSIBLE: dict[str, list[Any]] = {
    "start": [date(2026, 1, 20), "2026-01-25T00:00:00Z"], "end": [date(2026, 2, 20)],
    "timeframe": ["1d"], "bad_ticks": ["warn"], "symbol": ["BTCUSDT"], "label": ["fuzzed"],
    "confirm_bars": [1, 3, 12], "level": [72000.0, 74400.0], "target": [66000.0, 60000.0],
    "mode": ["short", "derisk"], "init_cash": [1000, 1e9], "fee_rate": [0.0, 0.001, 0.5],
    "slippage_rate": [0.0005], "fill": ["close"], "direction": ["both", "short", "long"],
    "sl_stop": [0.05], "tp_stop": [0.1], "tsl_stop": [0.02], "instrument": ["perp"],
    "leverage": [1, 3], "html": [True],
}


def toml_value(value: Any) -> str:
    """A TOML literal (strings through JSON escaping, which TOML basic strings share)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) \
            if not math.isfinite(value) else repr(value)
    if isinstance(value, (int, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@st.composite
def configs(draw: st.DrawFn) -> str:
    """A config on the corpus bars with some known keys given fuzzed values."""
    tables: dict[str, dict[str, str]] = {
        "data": {"path": json.dumps(str(GOOD_CSV))},
        "strategy": {"name": '"break_below_74k"'},
        "report": {"html": "false"},
    }
    for _ in range(draw(st.integers(1, 4))):
        table = draw(st.sampled_from(sorted(KNOWN)))
        key = draw(st.sampled_from(KNOWN[table]) | st.text("abcdefgh_", min_size=1, max_size=8))
        plausible = st.sampled_from(PLAUSIBLE.get(key, [None])).filter(lambda v: v is not None)
        tables.setdefault(table, {})[key] = toml_value(draw(plausible | VALUES))
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in body.items())
                   for name, body in tables.items())
    if draw(st.integers(0, 9)) == 0:  # sometimes raw garbage at the end
        text += draw(st.text(max_size=40))
    return text


# ---------------------------------------------------------------- CSV mutations

CELLS = st.one_of(st.sampled_from(["", "nan", "inf", "-1", "0", "1e400", "12k", "NULL",
                                   "2026-01-01T00:00:00Z", "99999999999999999999", '"', ";"]),
                  st.floats(allow_nan=True).map(repr), st.text(max_size=8))


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """The corpus bars with one to four mutations of cells, rows, header or bytes."""
    lines = GOOD_CSV.read_text().splitlines()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cell", "drop", "repeat", "swap", "header", "column"]))
        row = draw(st.integers(0, len(lines) - 1))
        fields = lines[row].split(",")
        if kind == "cell":
            fields[draw(st.integers(0, len(fields) - 1))] = draw(CELLS)
            lines[row] = ",".join(fields)
        elif kind == "drop" and len(lines) > 1:
            del lines[row]
        elif kind == "repeat":
            lines.insert(row, lines[row])
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[row], lines[other] = lines[other], lines[row]
        elif kind == "header":
            header = lines[0].split(",")
            header[draw(st.integers(0, len(header) - 1))] = draw(st.sampled_from(
                ["close", "timestamp", "Close", "", "volume", "time"]))
            lines[0] = ",".join(header)
        else:
            lines = [f"{line},{draw(CELLS)}" for line in lines]
    blob = ("\n".join(lines) + "\n").encode("utf-8")
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(blob)))
        blob = blob[:cut] + draw(st.binary(max_size=6)) + blob[cut:]
    return blob


# ---------------------------------------------------------------- report mutations

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside plain JSON data."""
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        yield from paths_of(child, (*prefix, key))


# ---------------------------------------------------------------- the property


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="crashbt-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def assert_promise_kept(code: int, stderr: str, folder: Path, out: Path) -> None:
    event(f"exit {code}")  # --hypothesis-show-statistics: how many inputs were accepted
    assert code in (0, 2), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if code == 2:
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists() or not any(out.iterdir()), "a partial report was left"
    elif out.exists():
        assert all((run / "report.json").is_file() for run in out.iterdir())
    leftover = [p.name for p in folder.rglob(".*") if LEFTOVER.match(p.name)]
    assert leftover == [], leftover


@FUZZ
@given(text=configs())
def test_fuzzed_configs_exit_0_or_2(text: str) -> None:
    with scratch() as folder:
        config = folder / "fuzz.toml"
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = folder / "out"
        code, stderr = run_cli(["run", str(config), "--out", str(out)])
        assert_promise_kept(code, stderr, folder, out)


@FUZZ
@given(blob=csv_files())
def test_fuzzed_csv_files_exit_0_or_2(blob: bytes) -> None:
    with scratch() as folder:
        (folder / "bars.csv").write_bytes(blob)
        config = folder / "fuzz.toml"
        config.write_text('[data]\npath = "bars.csv"\n[strategy]\nname = "break_below_74k"\n'
                          '[report]\nhtml = false\n')
        out = folder / "out"
        code, stderr = run_cli(["run", str(config), "--out", str(out)])
        assert_promise_kept(code, stderr, folder, out)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the corpus bars: what the report fuzzer tampers with (a copy per example)."""
    folder = tmp_path_factory.mktemp("finished")
    shutil.copy(GOOD_CSV, folder / "bars.csv")
    (folder / "run.toml").write_text('[data]\npath = "bars.csv"\n[strategy]\n'
                                     'name = "break_below_74k"\n')
    assert run_cli(["run", str(folder / "run.toml"), "--out", str(folder / "runs")])[0] == 0
    (run_dir,) = (folder / "runs").iterdir()
    return run_dir


@FUZZ
@given(data=st.data())
def test_fuzzed_reports_exit_0_or_2(finished_run: Path, data: st.DataObject) -> None:
    with scratch() as folder:
        run_dir = folder / "run"
        shutil.copytree(finished_run, run_dir)
        report = json.loads((run_dir / "report.json").read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(list(paths_of(report))[1:]))
            node = report
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = data.draw(JSON_VALUES)
        (run_dir / "report.json").write_text(json.dumps(report))
        code, stderr = run_cli(["report", str(run_dir)])
        assert_promise_kept(code, stderr, folder, folder / "none")
