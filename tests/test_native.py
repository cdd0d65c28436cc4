"""The kernels compiled ahead of time (:mod:`backtest.native`, built by :mod:`backtest.aot`).

- Cross-path equality: every kernel call the warm-up makes (synthetic engine paths, then every
  shipped config the way its command runs it) is replayed through the JIT dispatcher, and the
  result and every array the kernel wrote must be equal to the bit.
- A user's commands import neither numba nor llvmlite when the extension is built.
- A wrong dtype or shape is refused, not read as garbage (numba's AOT wrappers check only the
  item size).
- The extension is named by its sources: an edited kernel is never served stale machine code.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest import native, warmup
from backtest.engine import layout

ROOT = Path(__file__).resolve().parents[1]


def _exports() -> dict[str, str]:
    """Every exported kernel and its module."""
    return {name: module for module in native.KERNEL_MODULES
            for name in getattr(native.kernel_module(module), "EXPORTS", {})}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and a.dtype.names:  # TERMS records, field by field
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype
                and all(_same(a[field], b[field]) for field in a.dtype.names))
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, tuple):
        return (isinstance(b, tuple) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, np.void):  # a TERMS record, field by field (NaN fields are "off")
        return (isinstance(b, np.void) and a.dtype == b.dtype
                and all(_same(a[field], b[field]) for field in a.dtype.names))
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return bool(a == b) and type(a) is type(b)


def test_the_extension_of_todays_sources_is_loaded() -> None:
    built = native.extension()
    assert built is not None, "run `python -m backtest.warmup` (make does) to build the kernels"
    module, specs = built
    assert module.__name__ == native.source_hash()
    assert set(specs) == set(_exports())


def test_every_kernel_call_of_the_warm_up_equals_the_jit(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    calls: list[tuple[str, str, tuple[Any, ...], tuple[Any, ...], Any]] = []
    compiled = native.kernel

    def recording(module: str, name: str) -> Callable[..., Any]:
        function = compiled(module, name)

        def call(*args: Any) -> Any:
            before = copy.deepcopy(args)
            out = function(*args)
            calls.append((module, name, before, copy.deepcopy(args), out))
            return out

        return call

    monkeypatch.setattr(native, "kernel", recording)
    warmup.warm()
    assert {name for _, name, *_ in calls} == set(_exports())  # every kernel was reached
    for module, name, before, after, out in calls:
        jit = getattr(native.kernel_module(module), name)
        assert compiled(module, name) is not jit  # the extension's function was recorded
        args = copy.deepcopy(before)
        assert _same(jit(*args), out), name
        assert _same(args, after), f"{name} wrote different arrays"


COMMANDS = """
import json, sys
from backtest.cli import main
out = sys.argv[1]
main(["run", "configs/break_below_74k.toml", "--out", out])
main(["optimize", "configs/optimize_break_below.toml", "--trials", "16", "--out", out])
main(["stress", "configs/stress_perp_3x.toml", "--paths", "2", "--out", out])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite"))))
"""


def test_commands_import_no_numba(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CRASHBT_JIT"}
    done = subprocess.run([sys.executable, "-c", COMMANDS, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_wrong_dtype_or_shape_is_refused() -> None:
    bar_returns = native.kernel("backtest.engine.kernels", "bar_returns_nb")
    assert _same(bar_returns(np.array([1.0, 2.0]), 1.0), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="float64 1-d array expected, int64 1-d array given"):
        bar_returns(np.array([1, 2]), 1.0)
    with pytest.raises(TypeError, match="float64 1-d array expected, float64 2-d array given"):
        bar_returns(np.ones((2, 2)), 1.0)
    with pytest.raises(TypeError, match="f8 expected, str given"):
        bar_returns(np.ones(2), "1")
    simulate = native.kernel("backtest.engine.kernels", "simulate_column_nb")
    n = 3
    market = layout.Market(*[np.ones(n)] * 4, np.zeros((1, 4)), np.zeros(n),
                           np.zeros(n, dtype=np.int64), np.empty(0))
    signals = layout.SignalArrays(*[np.zeros(n, dtype=bool)] * 4, *[np.full(n, np.nan)] * 3)
    with pytest.raises(TypeError, match=r"argument 0\.6: float64 1-d array expected, int64"):
        simulate(market, signals, layout.terms_record()[0], np.empty((0, 4)),
                 layout.no_records())


def test_only_kernel_modules_are_imported_by_name() -> None:
    with pytest.raises(ValueError, match="os is not a kernel module"):
        native.kernel("os", "system")


def test_the_extension_name_follows_the_kernel_sources(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    today = native.source_hash()
    for module in native.KERNEL_MODULES:
        path = module.replace(".", "/") + ".py"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes((ROOT / path).read_bytes())
    monkeypatch.setattr(native, "ROOT", tmp_path)
    assert native.source_hash() == today
    edited = tmp_path / "backtest/engine/kernels.py"
    edited.write_text(edited.read_text() + "\n# an edit\n")
    assert native.source_hash() != today


def test_crashbt_jit_forces_the_dispatchers() -> None:
    code = ("from backtest import native; "
            "print(type(native.kernel('backtest.engine.kernels', 'bar_returns_nb')).__name__)")
    for jit, expected in (("1", "CPUDispatcher"), ("0", "function")):
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=True,
                              env={**os.environ, "CRASHBT_JIT": jit})
        assert done.stdout.strip() == expected
