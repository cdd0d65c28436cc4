"""The one-way data flow, enforced: config -> data -> features -> signals -> engine -> metrics ->
report, with the CLI on top; vectorbt only in the engine, ta only in features, optuna only in the
optimizer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower layers never import higher ones. Modules in one layer (or one package) may import each
# other. A package is named once and covers every module inside it.
LAYERS: list[set[str]] = [
    {"backtest", "backtest.errors", "backtest.types", "backtest.redact"},
    {"backtest.config"},
    {"backtest.data"},
    {"backtest.features"},
    {"backtest.strategy"},
    {"strategies"},
    {"backtest.engine"},
    {"backtest.metrics"},
    {"backtest.report"},
    {"backtest.pipeline", "backtest.checks", "backtest.optimize", "backtest.plugins"},
    {"backtest.cli", "backtest.warmup", "backtest.__main__"},
]

# Third-party packages that only one package may import.
EXCLUSIVE = {"vectorbt": {"backtest.engine"}, "ta": {"backtest.features"},
             "optuna": {"backtest.optimize"}, "ccxt": {"backtest.data"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str | None:
    """The layer entry that owns ``module``: itself, or the package it sits in."""
    owners = [u for layer in LAYERS for u in layer if module == u or module.startswith(u + ".")]
    return max(owners, key=len) if owners else None


def layer_of(module: str) -> int | None:
    unit = unit_of(module)
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    return None


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted([*ROOT.glob("backtest/**/*.py"), *ROOT.glob("strategies/*.py")])


def test_every_module_has_a_layer() -> None:
    missing = [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None]
    assert not missing, f"add these modules to LAYERS: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_flow_one_way(path: Path) -> None:
    me = module_name(path)
    mine = layer_of(me)
    assert mine is not None
    for target in imports(path):
        theirs = layer_of(target)
        if theirs is not None and unit_of(target) != unit_of(me):
            assert theirs <= mine, f"{me} (layer {mine}) imports {target} (layer {theirs})"
        top = target.split(".")[0]
        if top in EXCLUSIVE:
            assert unit_of(me) in EXCLUSIVE[top], f"{me} imports {top}; only {EXCLUSIVE[top]} may"


def test_strategies_only_see_the_contract_features_and_types() -> None:
    allowed = {"backtest.errors", "backtest.types", "backtest.features", "backtest.strategy"}
    for path in ROOT.glob("strategies/*.py"):
        for target in imports(path):
            if target.startswith("backtest."):
                assert any(target == a or target.startswith(a + ".") for a in allowed), \
                    f"{module_name(path)} imports {target}"


def test_package_init_imports_nothing() -> None:
    """``backtest/__init__.py`` stays empty so ``crashbt --help`` and layer checks stay cheap."""
    assert imports(ROOT / "backtest" / "__init__.py") <= {"__future__", "__future__.annotations"}


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a features module importing the engine is flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text("from backtest.engine import simulate\nimport vectorbt\n")
    assert layer_of("backtest.engine") > layer_of("backtest.features")
    assert "backtest.engine" in imports(bad) and "vectorbt" in imports(bad)
