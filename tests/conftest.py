"""Suite-wide check: every report crashbt writes in a test is strict JSON.

After each test that uses ``tmp_path``, every ``report.json`` and ``optimization.json`` under it
is parsed with NaN and +-Infinity refused (Python's json module accepts them by default; a
browser's JSON.parse and most other readers do not).
"""

from __future__ import annotations

import json
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
