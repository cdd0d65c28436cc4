"""The one-way data flow, enforced: config -> data -> features -> signals -> engine -> metrics ->
report, with the CLI on top; vectorbt only in the engine, ta only in features, optuna only in the
optimizer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower layers never import higher ones. Modules in one layer (or one package) may import each
# other. A package is named once and covers every module inside it.
LAYERS: list[set[str]] = [
    {"backtest", "backtest.errors", "backtest.types", "backtest.redact", "backtest.limits",
     "backtest.native"},
    {"backtest.config"},
    {"backtest.data"},
    {"backtest.features"},
    {"backtest.strategy"},
    {"strategies"},
    {"backtest.engine"},
    {"backtest.metrics"},
    {"backtest.report"},
    {"backtest.inputs", "backtest.pipeline", "backtest.checks", "backtest.optimize",
     "backtest.plugins", "backtest.lab"},
    {"backtest.api"},
    {"backtest.cli", "backtest.warmup", "backtest.aot", "backtest.__main__"},
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


def unit_graph(sources: list[Path]) -> dict[str, set[str]]:
    """Which layer unit (package or module of LAYERS) imports which other units."""
    graph: dict[str, set[str]] = {}
    for path in sources:
        me = unit_of(module_name(path))
        for target in imports(path):
            theirs = unit_of(target)
            if me and theirs and theirs != me and theirs != "backtest":
                graph.setdefault(me, set()).add(theirs)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of units that reach each other through imports."""
    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    return sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})


def test_no_import_cycles_between_packages() -> None:
    """Units of one layer may import each other, but never in a circle."""
    assert cycles(unit_graph(SOURCES)) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]


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


# ---------------------------------------------------------------- docstrings agree with the code

DOTTED = re.compile(r"\b(?:backtest|strategies)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
ONLY = re.compile(r"[Ii]mports?\s+(?:from crashbt\s+)?only\s+(.*?)(?:;|\.\s|\.$)|"
                  r"[Ii]mports from crashbt:\s+(.*?)(?:;|\.\s|\.$)", re.S)


def docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


def top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def names_something(dotted: str) -> bool:
    """``a.b.c`` is a module or package, or a module plus one of its top-level names."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.name else base
        for candidate in (module, base / "__init__.py"):
            if candidate.is_file():
                rest = parts[cut:]
                return not rest or (len(rest) == 1 and rest[0] in top_level_names(candidate))
    return False


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_docstrings_name_modules_that_exist(path: Path) -> None:
    stale = [name for name in DOTTED.findall(docstring(path)) if not names_something(name)]
    assert not stale, f"{module_name(path)}'s docstring names {stale}, which do not exist"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_only_sentences_cover_the_imports(path: Path) -> None:
    """A docstring saying "imports only X, Y" names every crashbt module the file imports (by
    full name, by package, or by last component: ``errors``, ``data``, ``backtest.types``)."""
    for match in ONLY.finditer(docstring(path)):
        sentence = match.group(1) or match.group(2)
        said = set()
        for token in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", sentence.replace("/", " ")):
            said.update({token, token.split(".")[-1]})
        me = unit_of(module_name(path))
        for target in imports(path):
            if not target.startswith(("backtest.", "strategies")) or unit_of(target) == me:
                continue
            if not names_something(target):  # ``from backtest.x import name``: the name itself
                continue
            parts = target.split(".")
            spelled = {".".join(parts[i:j]) for i in range(len(parts))
                       for j in range(i + 1, len(parts) + 1)}
            assert spelled & said, (f"{module_name(path)} says it imports only {sentence!r} "
                                    f"but imports {target}")


def test_the_docstring_rules_can_fail() -> None:
    assert not names_something("strategies.base") and names_something("backtest.inputs.prepare")
    assert names_something("backtest.engine") and not names_something("backtest.signals")


def test_readme_layout_and_architecture_name_every_package_and_only_real_paths() -> None:
    for doc in ("README.md", "docs/architecture.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        if doc == "README.md":
            text = text.split("## Layout", 1)[1]
        paths = set(re.findall(r"`((?:backtest|strategies)/[A-Za-z0-9_/.<>]*)`", text))
        missing = [p for p in paths if "<" not in p and not (ROOT / p).exists()]
        assert not missing, f"{doc} names paths that do not exist: {missing}"
        packages = [p.name for p in (ROOT / "backtest").iterdir()
                    if (p / "__init__.py").is_file()]
        unnamed = [p for p in packages if f"backtest/{p}/" not in text]
        assert not unnamed, f"{doc} does not describe the packages {unnamed}"
