"""Suite-wide setup and check.

The kernels run as a user's commands run them: compiled ahead of time (built here, once, when
the kernel sources changed since ``make``; tests/test_native.py compares them with the JIT).

After each test that uses ``tmp_path``, every ``report.json`` and ``optimization.json`` under it
is parsed with NaN and +-Infinity refused (Python's json module accepts them by default; a
browser's JSON.parse and most other readers do not).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPORT_NAMES = ("report.json", "optimization.json")


def _refuse(constant: str) -> Any:
    raise ValueError(f"expected strict JSON, found {constant}")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_refuse)


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    from backtest import aot, native

    if os.environ.get("CRASHBT_JIT") != "1" and native.extension() is None:
        aot.build()
        native.extension.cache_clear()


@pytest.fixture(autouse=True)
def _reports_are_strict_json(request: pytest.FixtureRequest) -> Iterator[None]:
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    for name in REPORT_NAMES:
        for path in Path(tmp).rglob(name):
            try:
                strict_json(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                if "strict JSON" in str(exc):
                    pytest.fail(f"{path}: {exc}")
