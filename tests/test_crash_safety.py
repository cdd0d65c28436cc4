"""Crash safety: ``crashbt run`` killed (SIGKILL) at every step of its report write leaves either
the previous report directory, intact, or none; never a half-written one. Leftovers of a killed
write are dot-prefixed temp directories (``.<run_id>.tmp-*`` / ``.<run_id>.old-*``) that no
reader mistakes for a report.

The kills are planted, not timed: the child (:data:`PLANTED`) runs the CLI with SIGKILL at the
Nth pass through one step of the writer, so the test sees the same states on a busy machine as
on an idle one. Uses the 1d dataset so the kills fit in well under a minute."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd

CRASHBT = Path(sys.executable).with_name("crashbt")
CONFIG = """
[data]
dataset = "btcusdt_1d"

[strategy]
name = "break_below_74k"
"""
#: ``python -c PLANTED STEP N crashbt-args...``: the CLI with SIGKILL at the Nth pass through
#: STEP of the report writer. ``file``: before a report file is written in the temp directory;
#: ``half``: with half of that file's text written; ``equity``: as the equity file starts;
#: ``aside``: before the previous report is renamed aside; ``swap``: before the new one is
#: renamed in (the previous one aside, none in place); ``swapped``: right after it, before the
#: previous one is deleted.
PLANTED = """
import os, pathlib, signal, sys
from backtest import cli
from backtest.report import equity
step, nth = sys.argv[1], int(sys.argv[2])
passes = 0
def reach(name, before=lambda: None):
    global passes
    if name == step:
        passes += 1
        if passes == nth:
            before()
            os.kill(os.getpid(), signal.SIGKILL)
write_text = pathlib.Path.write_text
def planted_write_text(self, text, *args, **kwargs):
    if self.parent.name.startswith("."):
        reach("file")
        reach("half", lambda: write_text(self, text[:len(text) // 2], *args, **kwargs))
    return write_text(self, text, *args, **kwargs)
pathlib.Path.write_text = planted_write_text
rename = os.rename
def planted_rename(src, dst):
    old, new = pathlib.Path(src).name, pathlib.Path(dst).name
    if ".tmp-" in old and not new.startswith("."):
        reach("swap")
        rename(src, dst)
        reach("swapped")
        return
    if not old.startswith(".") and ".old-" in new:
        reach("aside")
    rename(src, dst)
os.rename = planted_rename
write_equity = equity.write_equity
def planted_write_equity(*args):
    reach("equity")
    write_equity(*args)
equity.write_equity = planted_write_equity
sys.exit(cli.entry(sys.argv[3:]))
"""
#: (step, pass) of each kill, in order: each report file before and half written, the equity
#: file, and each rename of the swap (a kill leaving no report in place comes back each time)
KILLS = [("file", 1), ("half", 1), ("file", 2), ("half", 2), ("file", 3), ("half", 3),
         ("file", 4), ("half", 4), ("equity", 1), ("aside", 1), ("swap", 1), ("swap", 1),
         ("swapped", 1), ("aside", 1), ("swapped", 1)]


def run(config: Path, out: Path, kill: tuple[str, int] | None = None
        ) -> subprocess.Popen[bytes]:
    args = ["run", str(config), "--out", str(out)]
    command = ([str(CRASHBT), *args] if kill is None
               else [sys.executable, "-c", PLANTED, kill[0], str(kill[1]), *args])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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
    first = run(config, out)
    assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    (run_dir,) = out.iterdir()
    run_id = run_dir.name
    leftover = re.compile(rf"^\.{re.escape(run_id)}\.(tmp|old)-\d+-\w*$")

    seen_without_report = 0
    for kill in KILLS:
        proc = run(config, out, kill)
        code = proc.wait(timeout=120)
        assert code == -signal.SIGKILL, (kill, code, proc.stderr.read() if proc.stderr else "")
        names = sorted(p.name for p in out.iterdir())
        assert set(names) - {run_id} == {n for n in names if leftover.match(n)}, names
        if run_id in names:
            check_report_dir(out / run_id)
        else:
            seen_without_report += 1
            assert any(".old-" in n for n in names), names  # the previous one, set aside
    assert seen_without_report == 2  # the two kills between the renames

    final = run(config, out)
    assert final.wait(timeout=120) == 0
    check_report_dir(out / run_id)
    # the next run cleans what killed writers left behind: nothing but the report remains
    assert [p.name for p in out.iterdir()] == [run_id]
