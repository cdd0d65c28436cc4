"""Whole ``crashbt`` commands timed as child processes, the way a user meets them.

Each command runs under GNU time (``/usr/bin/time``), which reports the command's own user and
system CPU and peak RSS from ``wait4``: a child forked straight from this (large) pytest process
would carry pytest's RSS high-water mark into its ``ru_maxrss`` across fork + exec. Wall time
is taken here around the whole child; the 1-minute load average at its start is kept, because
on a shared machine a wall time means little without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRASHBT = str(Path(sys.executable).with_name("crashbt"))
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


@dataclass(frozen=True)
class Measured:
    """One child process: wall seconds, CPU seconds (user + system), peak RSS, load at start."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    load_1m: float

    def row(self) -> dict[str, float]:
        return asdict(self)


def crashbt(*args: str, timeout: float = 1800.0) -> Measured:
    """Run ``crashbt *args`` from the repository root; a failure shows the command's stderr."""
    if GNU_TIME is None:
        pytest.fail("GNU time (/usr/bin/time) is needed for per-command CPU and peak RSS: "
                    "install it (Debian: apt-get install time) and run make bench again")
    with tempfile.TemporaryDirectory() as tmp:
        usage, log = Path(tmp) / "usage", Path(tmp) / "log"
        load = os.getloadavg()[0]
        start = time.perf_counter()
        with log.open("wb") as sink:
            done = subprocess.run(
                [GNU_TIME, "-o", str(usage), "-f", "%U %S %M", CRASHBT, *args], cwd=ROOT,
                stdout=sink, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise AssertionError(f"crashbt {' '.join(args)} exited {done.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        user, system, rss_kib = usage.read_text().split()[-3:]
    return Measured(wall_s=wall, cpu_s=float(user) + float(system),
                    peak_rss_mib=int(rss_kib) / 1024.0, load_1m=load)


def median_of(runs: list[Measured]) -> Measured:
    """The run with the median wall time (its CPU and RSS travel with it)."""
    return sorted(runs, key=lambda m: m.wall_s)[len(runs) // 2]
