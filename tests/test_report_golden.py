"""Golden test: a fixed small run's ``report.json`` and ``trades.csv`` equal committed copies.

The run is break_below_74k through the real pipeline on 40 days of deterministic synthetic 1h
bars (tests/browser.py: synthetic_bars_csv). Ignored: ``timing`` and ``versions`` (vary by
machine), the hash part of ``run_id`` and ``strategy.source_sha256`` (they change with package
versions and any edit of the strategy file, not with behaviour).

To regenerate after an intended change, run with the explicit flag and review the diff:
    CRASHBT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_report_golden.py
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import make_run, synthetic_bars_csv

GOLDEN = Path(__file__).parent / "golden"


def normalized(report: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in report.items() if k not in ("timing", "versions")}
    label, digest = out["run_id"].rsplit("-", 1)
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    out["run_id"] = label
    out["strategy"] = {k: v for k, v in out["strategy"].items() if k != "source_sha256"}
    return out


def test_fixed_run_matches_golden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative data path keeps the config machine-independent
    synthetic_bars_csv(tmp_path / "synth_1h.csv")
    run = make_run(tmp_path / "reports", "synth_1h.csv", label="golden")
    got = normalized(json.loads((run / "report.json").read_text()))
    got_json = json.dumps(got, indent=2, sort_keys=True) + "\n"
    trades = (run / "trades.csv").read_text()
    if os.environ.get("CRASHBT_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / "report.json").write_text(got_json)
        (GOLDEN / "trades.csv").write_text(trades)
    assert got == json.loads((GOLDEN / "report.json").read_text())
    assert trades == (GOLDEN / "trades.csv").read_text()
    # The fixture does what it claims: one stop-out, then a target hit.
    assert [r.split(",")[10] for r in trades.splitlines()[1:]] == ["stop", "target"]
