"""Numba kernels compiled ahead of time, so that a command neither imports numba nor compiles.

Every module of :data:`KERNEL_MODULES` lists the kernels crashbt calls from Python in
``EXPORTS`` (name -> signature, in the small notation of :mod:`backtest.aot`). ``python -m
backtest.warmup`` (run by ``make``) compiles them all into one extension module,
``backtest/_compiled/k<hash>``, named by a hash of those modules' sources and numpy's version.
:func:`kernel` returns the extension's function when the extension of today's sources exists,
and the module's JIT dispatcher otherwise (numba is imported and its cache loaded then, ~0.5 s):
an edited kernel never runs stale machine code, and a checkout without the build still runs.
``CRASHBT_JIT=1`` forces the JIT (the tests compare both ways).

numba's AOT wrappers check only an array's item size, so a float64 slot handed an int64 array
would read its bits as floats. Each call therefore checks every argument against the exported
signature (``k<hash>.json`` beside the extension: dtype and dimensions of arrays, fields of
named tuples, kind of scalars) and raises TypeError, a crashbt bug, on a mismatch.

The compiled kernels release the GIL: :func:`in_halves` runs a kernel whose columns are
independent on two CPUs at once when the process may use two.

Imports the standard library and numpy only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

#: the modules whose numba functions the extension holds (their sources name it)
KERNEL_MODULES = (
    "backtest.engine.margin",
    "backtest.engine.layout",
    "backtest.engine.kernels",
    "backtest.engine.batch_kernels",
    "backtest.engine.vectorbt_kernels",
    "backtest.metrics.kernels",
    "backtest.features.kernels",
    "backtest.data.regimes",  # the regime codes compiled into the detector
    "backtest.data.kernels",
    "backtest.lab.kernels",
)
ROOT = Path(__file__).resolve().parents[1]
COMPILED = ROOT / "backtest" / "_compiled"

# A checked argument: ["a", dtype, ndim] array, ["t", [fields]] named tuple, ["s", "f8"|"i8"|"b1"]
Spec = list[Any]
_SCALARS = {"f8": (float, int, np.floating, np.integer), "i8": (int, np.integer),
            "b1": (bool, np.bool_)}


def source_hash() -> str:
    """Hash of the kernel modules' sources and numpy's version: the extension's name."""
    digest = hashlib.sha256(np.__version__.encode())
    for module in KERNEL_MODULES:
        digest.update(module.encode())
        digest.update((ROOT / (module.replace(".", "/") + ".py")).read_bytes())
    return "k" + digest.hexdigest()[:16]


def extension_path(name: str) -> Path:
    """Where the extension called ``name`` lives (this interpreter's suffix)."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return COMPILED / f"{name}{suffix}"


@functools.cache
def extension() -> tuple[ModuleType, dict[str, Spec]] | None:
    """The extension built from today's sources and its argument specs, or None (JIT)."""
    if os.environ.get("CRASHBT_JIT") == "1":
        return None
    name = source_hash()
    path = extension_path(name)
    if not path.is_file():
        return None
    specs = json.loads(path.with_name(name + ".json").read_text(encoding="utf-8"))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, specs


@functools.cache
def kernel(module: str, name: str) -> Callable[..., Any]:
    """The kernel ``module.name``: compiled ahead of time when built, else JIT-compiled."""
    built = extension()
    if built is None or name not in built[1]:
        return getattr(kernel_module(module), name)
    return _checked(name, getattr(built[0], name), built[1][name])


def in_halves(count: int, call: Callable[[int, int], None]) -> None:
    """``call(0, count)``; with a spare CPU, ``call(h, count)`` on another thread while
    ``call(0, h)`` runs here (h = count // 2), for a kernel over ``count`` independent columns
    writing disjoint rows (what it computes does not depend on the split)."""
    spare = _spare_core() if count > 1 else None
    if spare is None:
        call(0, count)
        return
    half = count // 2
    other = spare.submit(call, half, count)
    call(0, half)
    other.result()


@functools.cache
def _spare_core() -> ThreadPoolExecutor | None:
    """One worker thread when this process may use more than one CPU, else None."""
    return ThreadPoolExecutor(1, thread_name_prefix="kernel") \
        if len(os.sched_getaffinity(0)) > 1 else None


def kernel_module(module: str) -> ModuleType:
    """One of :data:`KERNEL_MODULES`, imported (with numba); never any other module."""
    if module not in KERNEL_MODULES:
        raise ValueError(f"{module} is not a kernel module: {', '.join(KERNEL_MODULES)}")
    return importlib.import_module(module)


def _checked(name: str, function: Callable[..., Any], specs: list[Spec]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if len(args) != len(specs):
            raise TypeError(f"kernel {name}: {len(specs)} arguments expected, {len(args)} given")
        for i, (value, spec) in enumerate(zip(args, specs, strict=True)):
            _check(value, spec, name, str(i))
        return function(*args)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{name}, compiled ahead of time (arguments checked: {specs})"
    return call


#: a dtype's name as the specs spell it (``str(dtype)`` runs Python code: ~3 us, 4k per search)
_dtype_name = functools.cache(str)


def _check(value: Any, spec: Spec, name: str, where: str) -> None:
    kind = spec[0]
    if kind == "a":
        if (not isinstance(value, np.ndarray) or value.ndim != spec[2]
                or _dtype_name(value.dtype) != spec[1]):
            found = (f"{value.dtype} {value.ndim}-d array" if isinstance(value, np.ndarray)
                     else type(value).__name__)
            raise TypeError(f"kernel {name} argument {where}: {spec[1]} {spec[2]}-d array "
                            f"expected, {found} given")
    elif kind == "t":
        if not isinstance(value, tuple) or len(value) != len(spec[1]):
            raise TypeError(f"kernel {name} argument {where}: a tuple of {len(spec[1])} "
                            f"expected, {type(value).__name__} given")
        for i, (field, inner) in enumerate(zip(value, spec[1], strict=True)):
            _check(field, inner, name, f"{where}.{i}")
    elif kind == "r":
        if not isinstance(value, np.void) or _dtype_name(value.dtype) != spec[1]:
            raise TypeError(f"kernel {name} argument {where}: a {spec[1]} record expected, "
                            f"{type(value).__name__} given")
    elif not isinstance(value, _SCALARS[spec[1]]) or (spec[1] != "b1" and
                                                      isinstance(value, bool | np.bool_)):
        raise TypeError(f"kernel {name} argument {where}: {spec[1]} expected, "
                        f"{type(value).__name__} given")
