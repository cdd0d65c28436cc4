"""The report JSON encoder (orjson) writes exactly what Python's json wrote, and compiled page
templates are cached without changing a page.

report.json, optimization.json and the run id's hash are the text of ``files.to_json``: it must
stay byte for byte ``json.dumps(data, indent=2, sort_keys=True, default=str)`` for every value
json accepted. The reference here is json itself, an independent encoder.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.report import charts, files, formatting

ROOT = Path(__file__).resolve().parents[1]


def reference(data: Any) -> str:
    """What ``to_json`` wrote before orjson."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def floats_near(exponent: int) -> st.SearchStrategy[float]:
    return st.floats(1.0, 10.0, exclude_max=True).map(lambda m: m * 10.0 ** exponent)


FLOATS = (st.floats(allow_nan=False, allow_infinity=False)
          | st.integers(-323, 307).flatmap(floats_near).filter(math.isfinite)
          | st.sampled_from([0.0, -0.0, 1e-5, -1e-5, 4.3462530391300864e-05, 1e-7, 1e-9, 1e-10,
                             0.0001, 1e16, 1e15, 5e-324, 1.7976931348623157e308]))
SCALARS = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1) | FLOATS
           | st.text() | st.text(alphabet=st.characters(max_codepoint=0x80)))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_to_json_writes_what_json_wrote(data: Any) -> None:
    assert files.to_json(data) == reference(data)
    assert files.as_json(data) == json.loads(reference(data))


@settings(max_examples=200, deadline=None)
@given(st.lists(FLOATS, min_size=1, max_size=30), st.text(max_size=8))
def test_small_floats_in_arrays_and_objects_keep_pythons_form(values: list[float],
                                                              key: str) -> None:
    data = {key + " 1e-7\": 0.00001": values, "nested": [{"x": v, "y": [v]} for v in values]}
    assert files.to_json(data) == reference(data)


@dataclasses.dataclass
class Params:
    level: float = 1e-05


Pair = collections.namedtuple("Pair", "a b")


def test_values_json_has_no_type_for_are_written_as_before() -> None:
    data = {"np_float": np.float64(1e-05), "np_int": np.int64(3), "np_float32": np.float32(1.5),
            "np_bool": np.bool_(True), "array": np.array([1, 2]), "tuple": (1, 2.5e-6),
            "named": Pair(1, "é"), "stamp": pd.Timestamp("2024-01-01", tz="UTC"),
            "naive": dt.datetime(2024, 1, 1, 12), "date": dt.date(2024, 1, 1),
            "params": Params(), "path": Path("/tmp/x"), "bytes": b"ab", "big": 2 ** 70,
            "na": pd.NA, "nat": pd.NaT, "text": "\x00\x1f\x7f\u2028\U0001f600\"\\/"}
    assert files.to_json(data) == reference(data)
    assert files.to_json({1: "int key", 2: None}) == reference({1: "int key", 2: None})
    assert files.to_json("\ud800") == reference("\ud800")  # a lone surrogate: json's escape


def test_nan_and_infinity_are_written_as_null() -> None:
    """NaN/inf are null at any depth, from orjson and from the json fallback alike (an integer
    beyond 64 bits sends the whole document to the fallback)."""
    data = {"a": math.nan, "b": [math.inf, (-math.inf, 1.5)], "c": np.float64("nan")}
    nulled = {"a": None, "b": [None, [None, 1.5]], "c": None}
    for extra in ({}, {"big": 2 ** 70}):
        want = nulled | extra
        assert json.loads(files.to_json(data | extra)) == want
        assert files.as_json(data | extra) == want
    assert files.to_json(data | {"big": 2 ** 70}) == reference(nulled | {"big": 2 ** 70})


def test_shipped_optimization_and_report_shapes_round_trip_byte_for_byte() -> None:
    """The committed golden report, re-encoded, is the same text json writes."""
    golden = json.loads((ROOT / "tests" / "golden" / "report.json").read_text())
    assert files.to_json(golden) == reference(golden)


def run_python(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    return out.stdout.strip()


def test_jinja2_is_imported_only_to_render_a_page() -> None:
    code = ("import sys, backtest.pipeline, backtest.report.html, backtest.optimize.search; "
            "print('jinja2' in sys.modules)")
    assert run_python(code, {}) == "False"


RENDER = """
import hashlib, json
import pandas as pd
from backtest.report import files, html, templating
report = json.loads(open("tests/golden/report.json").read())
report["strategy"]["source_sha256"] = "0" * 64
report |= {"versions": {}, "timing": {"created_at": "2026-01-01T00:00:00Z", "duration_s": 1.0}}
trades = files.trades_records(pd.read_csv("tests/golden/trades.csv"))
print(templating.cache_dir())
print(sorted(templating.precompile()))
print(hashlib.sha256(html.render_run(report, trades).encode()).hexdigest())
"""


def test_compiled_templates_are_cached_per_user_and_reused(tmp_path: Path) -> None:
    """The first process compiles into $XDG_CACHE_HOME/crashbt, the second loads them: the
    cache holds one file per template and pages are unchanged."""
    first = run_python(RENDER, {"XDG_CACHE_HOME": str(tmp_path)}).splitlines()
    folder = Path(first[0])
    assert folder.parent == tmp_path / "crashbt"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    names = json.loads(first[1].replace("'", '"'))
    assert "run.html" in names and "optimization.html" in names
    cached = sorted(folder.glob("__jinja2_*.cache"))
    assert len(cached) == len(names)
    stamps = [p.stat().st_mtime_ns for p in cached]
    second = run_python(RENDER, {"XDG_CACHE_HOME": str(tmp_path)}).splitlines()
    assert second == first
    assert [p.stat().st_mtime_ns for p in sorted(folder.glob("__jinja2_*.cache"))] == stamps


def test_an_unusable_cache_is_a_miss_not_a_failure(tmp_path: Path) -> None:
    """A cache folder others can write is not used; garbage in a cache file is recompiled."""
    shared = tmp_path / "shared"
    (shared / "crashbt").mkdir(parents=True)
    first = run_python(RENDER, {"XDG_CACHE_HOME": str(shared)}).splitlines()
    folder = Path(first[0])
    for path in folder.glob("__jinja2_*.cache"):
        path.write_bytes(b"not a cache")
    assert run_python(RENDER, {"XDG_CACHE_HOME": str(shared)}).splitlines() == first
    folder.chmod(0o777)
    again = run_python(RENDER, {"XDG_CACHE_HOME": str(shared)}).splitlines()
    assert again[0] == "None" and again[1:] == first[1:]
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder would go: no cache
    assert run_python(RENDER, {"XDG_CACHE_HOME": str(blocked)}).splitlines()[0] == "None"


@settings(max_examples=300, deadline=None)
@given(SCALARS | st.floats() | st.lists(SCALARS, max_size=3))
def test_raw_value_is_the_json_text_of_the_value(value: Any) -> None:
    """``data-value`` attributes: json's text, null for NaN/inf (the fast paths skip json)."""
    expected = ("null" if isinstance(value, float) and not math.isfinite(value)
                else json.dumps(value, default=str))
    assert formatting.raw_value(value) == expected
    assert formatting.raw_value(np.float64(1.5)) == "1.5"
    assert formatting.raw_value(np.float64("nan")) == "null"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats() | FLOATS, max_size=40), st.integers(1, 17))
def test_chart_numbers_are_rounded_to_significant_digits(values: list[float],
                                                        digits: int) -> None:
    expected = [float(f"{v:.{digits}g}") if np.isfinite(v) else None for v in values]
    assert charts.finite_list(values, digits) == expected


def pandas_records(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """The trades' records by pandas' own where/to_dict (the former implementation)."""
    frame = trades.copy()
    for col in ("entry_time", "exit_time"):
        if col in frame:
            frame[col] = frame[col].map(
                lambda t: None if pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def test_trades_records_match_pandas_records_for_engine_and_csv_trades() -> None:
    """The page's trade rows: from the engine's frame (UTC times, categories, an open trade
    with NaN/NaT) and from the same frame read back from its CSV."""
    times = pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-02T05:00:00Z"], utc=True)
    engine = pd.DataFrame({
        "entry_time": times, "exit_time": pd.DatetimeIndex([times[1], pd.NaT]),
        "direction": pd.Categorical(["long", "short"]), "size": [0.5, 1e-05],
        "exit_price": [101.25, np.nan], "exit_reason": pd.Categorical(["target", None]),
        "bars": np.array([3, 7], dtype=np.int64), "flag": [True, False]})
    read_back = pd.read_csv(io.StringIO(files.records_csv(engine)))
    for frame in (engine, read_back, engine.iloc[:0]):
        got = files.trades_records(frame)
        assert got == pandas_records(frame)
        assert [[type(v) for v in row.values()] for row in got] == \
            [[type(v) for v in row.values()] for row in pandas_records(frame)]
