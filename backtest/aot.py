"""Build the extension of ahead-of-time compiled kernels that :mod:`backtest.native` loads.

Each module of :data:`backtest.native.KERNEL_MODULES` may list ``EXPORTS``: ``{function name:
signature}`` in a small notation, ``"ret(arg, arg, ...)"`` where a type is ``f8``, ``i8``,
``i1`` or ``b1`` (a scalar), the same followed by ``[]``, ``[,]`` or ``[,,]`` (an array of 1, 2
or 3 dimensions, any strides), ``TERMS`` (one record of the engine's settings) or ``TERMS[]``,
``Market``, ``SignalArrays`` or ``Records`` (the engine's named tuples of arrays), ``none``,
or ``(t, t, ...)`` (a returned tuple). :func:`build` compiles them with numba's ``pycc`` into
``backtest/_compiled/<hash>`` plus the argument specs the loader checks, written beside it;
``python -m backtest.warmup`` (install) and ``python -m backtest.aot`` (every ``make`` target,
a no-op when the sources did not change) call it. Compiling takes ~30 s.

The exported functions release the GIL (the data pipeline runs regime detection on a thread
beside the engine) and keep numba's default error model (division by zero raises), as the JIT
dispatchers do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backtest import native
from backtest.engine import layout

#: scalar notation -> (numba type name, numpy dtype name)
SCALARS = {"f8": ("float64", "float64"), "i8": ("int64", "int64"), "i1": ("int8", "int8"),
           "b1": ("boolean", "bool")}
NAMED = {"Market": (layout.Market, "f8[] f8[] f8[] f8[] f8[,] f8[] f8[] f8[]"),
         "SignalArrays": (layout.SignalArrays, "b1[] b1[] b1[] b1[] f8[] f8[] f8[]"),
         "Records": (layout.Records, "f8[] f8[] f8[,] f8[,]")}


def ensure() -> Path | None:
    """The extension of today's sources, built unless it exists; None (with a line on stderr)
    when this machine cannot build it. ``make`` runs this before its commands, so a changed
    kernel is rebuilt rather than silently served by the JIT."""
    target = native.extension_path(native.source_hash())
    if target.is_file():
        return target
    try:
        target = build()
    except BuildError as exc:
        print(f"crashbt: kernels not compiled ahead of time ({exc}); commands will JIT-compile "
              f"them (numba's start-up cost, ~0.5 s each)", file=sys.stderr)
        return None
    print(f"crashbt: kernels compiled ahead of time into {target}")
    return target


class BuildError(Exception):
    """This machine cannot build the extension (no C compiler, no pycc, a read-only install):
    commands then JIT-compile the kernels. A kernel that does not compile is not this error."""


def build(directory: Path = native.COMPILED) -> Path:
    """Compile every module's EXPORTS into the extension of today's sources; returns its path.

    Written in a temporary directory and moved into place (specs first, extension last), so a
    killed build leaves either nothing or a whole extension; extensions of older sources are
    removed.
    """
    try:
        return _build(directory)
    except (ImportError, OSError, RuntimeError) as exc:
        raise BuildError(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.endswith("distutils.errors"):  # the C compiler or linker failed
            raise BuildError(f"{type(exc).__name__}: {exc}") from exc
        raise


def _build(directory: Path) -> Path:
    from numba.pycc import CC  # numba only here and in the kernel modules

    name = native.source_hash()
    directory.mkdir(parents=True, exist_ok=True)
    specs: dict[str, list[Any]] = {}
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        cc = CC(name)
        cc.output_dir = tmp
        for module_name in native.KERNEL_MODULES:
            module = native.kernel_module(module_name)
            for function, notation in getattr(module, "EXPORTS", {}).items():
                if function in specs:
                    raise ValueError(f"two kernels export {function}")
                returns, args = signature(notation)
                cc.export(function, returns(*(numba_type(a) for a in args)))(
                    getattr(module, function))
                specs[function] = [arg_spec(a) for a in args]
        with _releasing_gil(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
            cc.compile()
        built = next(Path(tmp).glob(f"{name}.*"))
        target = native.extension_path(name)
        (Path(tmp) / "specs.json").write_text(json.dumps(specs), encoding="utf-8")
        os.replace(Path(tmp) / "specs.json", target.with_name(name + ".json"))
        os.replace(built, target)
    for old in directory.glob("k*"):
        if old.is_file() and not old.name.startswith(name + "."):
            old.unlink()
    shutil.rmtree(directory / "__pycache__", ignore_errors=True)
    return target


def signature(notation: str) -> tuple[Any, list[str]]:
    """``"ret(a, b)"`` -> (numba return type, ["a", "b"]): the last parenthesized group holds
    the arguments."""
    depth = 0
    for i in range(len(notation) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(notation[i], 0)
        if depth == 0:
            return numba_type(notation[:i].strip(), result=True), split(notation[i + 1:-1])
    raise ValueError(f"not a signature: {notation}")


def split(args: str) -> list[str]:
    """Top-level comma-separated types (brackets and parentheses nest)."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(args):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            out.append(args[start:i].strip())
            start = i + 1
    tail = args[start:].strip()
    return [*out, tail] if tail else out


def numba_type(text: str, result: bool = False) -> Any:
    """The numba type of one notation: arrays take any strides as arguments and are
    C-contiguous as results."""
    from numba import types
    from numba.np.numpy_support import from_dtype

    if text == "none":
        return types.none
    if text.startswith("("):
        return types.Tuple([numba_type(t, result) for t in split(text[1:-1])])
    if text in NAMED:
        cls, fields = NAMED[text]
        return types.NamedTuple([numba_type(f) for f in fields.split()], cls)
    base, _, dims = text.partition("[")
    scalar = from_dtype(layout.TERMS) if base == "TERMS" else getattr(types, SCALARS[base][0])
    return types.Array(scalar, dims.count(",") + 1, "C" if result else "A") if dims else scalar


def arg_spec(text: str) -> list[Any]:
    """What :mod:`backtest.native` checks of an argument (its ``Spec``)."""
    if text in NAMED:
        return ["t", [arg_spec(f) for f in NAMED[text][1].split()]]
    base, _, dims = text.partition("[")
    dtype = str(layout.TERMS) if base == "TERMS" else SCALARS[base][1]
    if dims:
        return ["a", dtype, dims.count(",") + 1]
    return ["r", dtype] if base == "TERMS" else ["s", base]


@contextlib.contextmanager
def _releasing_gil() -> Iterator[None]:
    """pycc compiles with default flags; its wrappers release the GIL with these."""
    from numba.core.compiler import Flags
    from numba.pycc import compiler

    class ReleasingGil(Flags):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    compiler.Flags = ReleasingGil
    try:
        yield
    finally:
        compiler.Flags = Flags


if __name__ == "__main__":
    ensure()
