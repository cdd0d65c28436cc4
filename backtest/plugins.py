"""Strategies from outside the registry, named ``module:SPEC``, imported only when allowed.

A config is data: a registered name is looked up in :data:`strategies.REGISTRY`, never
evaluated. A name of the form ``package.module:SPEC`` (or ``path/to/file.py:SPEC``) imports
user code, so it is refused unless the user passed ``--allow-external-strategies``; the
reference must match a strict pattern (dotted identifiers, or a ``.py`` path, then an
identifier), and the attribute must be a :class:`~backtest.strategy.contract.StrategySpec`. A
relative ``.py`` path is read from the config file's folder, like data paths.

Imports from crashbt only errors, ``strategies`` and ``backtest.strategy.contract``; never the
engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import strategies
from backtest.errors import StrategyError
from backtest.strategy.contract import StrategySpec

FLAG = "--allow-external-strategies"
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_external(name: str) -> bool:
    """True for ``module:SPEC`` references (registered names never contain a colon)."""
    return ":" in name


def resolve(name: str, source: str, allow_external: bool) -> StrategySpec:
    """The strategy a config's ``strategy.name`` names: registered, or external when allowed."""
    if not is_external(name):
        return strategies.get(name, source)
    where = f"{source}: strategy.name"
    if not allow_external:
        raise StrategyError(f"{where}: expected a registered strategy, found external "
                            f"{name!r}; pass {FLAG} to import it")
    module_ref, _, attr = name.rpartition(":")
    is_file = module_ref.endswith(".py")
    if not _ATTR.match(attr) or not (is_file or _DOTTED.match(module_ref)):
        raise StrategyError(f"{where}: expected 'package.module:SPEC' or 'path/file.py:SPEC', "
                            f"found {name!r}")
    if is_file:
        module = _import_file(Path(source).parent / module_ref, where)
    else:
        module = _import(module_ref, where)
    spec = getattr(module, attr, None)
    if not isinstance(spec, StrategySpec):
        raise StrategyError(f"{where}: expected {module_ref}:{attr} to be a StrategySpec, found "
                            f"{type(spec).__name__ if spec is not None else 'no such name'}")
    return spec


def _import(module_ref: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(module_ref)
    except ModuleNotFoundError as exc:
        raise StrategyError(f"{where}: expected an importable module, found no module "
                            f"{exc.name!r} (is it on PYTHONPATH?)") from None


def _import_file(path: Path, where: str) -> ModuleType:
    if not path.is_file():
        raise StrategyError(f"{where}: expected an existing strategy file, found no {path}")
    module_name = f"crashbt_external_{re.sub(r'[^A-Za-z0-9_]', '_', str(path.resolve()))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise StrategyError(f"{where}: expected a Python file, found {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses need the module registered
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
