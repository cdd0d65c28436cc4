"""Crash safety: ``crashbt run`` killed (SIGKILL) at random moments leaves either the previous
report directory, intact, or none; never a half-written one. Leftovers of a killed write are
dot-prefixed temp directories (``.<run_id>.tmp-*`` / ``.<run_id>.old-*``) that no reader mistakes
for a report. Uses the 1d dataset so 20 kills fit in well under a minute."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

CRASHBT = Path(sys.executable).with_name("crashbt")
CONFIG = """
[data]
dataset = "btcusdt_1d"

[strategy]
name = "break_below_74k"
"""
KILLS = 20
LATE_KILLS = 6  # of which aimed at the last 15% of the run: the report write


def run(config: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(CRASHBT), "run", str(config), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def check_report_dir(run_dir: Path) -> None:
    """A complete report: report.json parses, both CSVs load with their columns."""
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run_id"] == run_dir.name
    equity = pd.read_csv(run_dir / "equity.csv")
    assert list(equity.columns) == ["timestamp", "equity", "position", "buy_and_hold", "close"]
    assert len(equity) == report["dataset"]["bars"]
    trades = pd.read_csv(run_dir / "trades.csv")
    assert len(trades) == report["metrics"]["n_trades"] and "entry_time" in trades.columns
    assert (run_dir / "report.html").read_text().rstrip().endswith("</html>")


def test_killed_runs_leave_the_previous_report_or_none(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    started = time.perf_counter()
    first = run(config, out)
    assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    duration = time.perf_counter() - started
    (run_dir,) = out.iterdir()
    run_id = run_dir.name
    leftover = re.compile(rf"^\.{re.escape(run_id)}\.(tmp|old)-\d+-\w*$")

    rng = random.Random(8)
    delays = ([rng.uniform(0.05, 1.0) * duration for _ in range(KILLS - LATE_KILLS)]
              + [rng.uniform(0.85, 1.0) * duration for _ in range(LATE_KILLS)])
    finished = 0
    for delay in delays:
        proc = run(config, out)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        finished += proc.wait(timeout=60) == 0  # a few complete before the signal lands
        names = sorted(p.name for p in out.iterdir())
        assert set(names) - {run_id} == {n for n in names if leftover.match(n)}, names
        if run_id in names:
            check_report_dir(out / run_id)
    assert finished < KILLS, "no run was killed: the delays miss the run"

    final = run(config, out)
    assert final.wait(timeout=120) == 0
    check_report_dir(out / run_id)
    # the next run cleans what killed writers left behind: nothing but the report remains
    assert [p.name for p in out.iterdir()] == [run_id]
