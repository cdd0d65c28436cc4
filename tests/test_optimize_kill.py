"""A search SIGKILLed at the windows that matter always resumes to the exact count.

Each case plants a SIGKILL at one point (tests/killpoint.py: right after a batch is claimed,
before and after the write of a batch's results (which claims the next batch too, except the
last), in the middle of a journal append, of a worker's first claim append and of a result
append (a batch boundary's or the last one), inside an evaluation, while the best run's report
is written), runs the search (batches of 2) with its pipes left unread beside two busy-loop
processes, then resumes it with a bound on time. What the kill left is checked (killed before
the write: that batch RUNNING without results; after it: recorded, the next batch claimed; in
its middle: the records before the tear, never a claim after it), and after the resume:
exactly the requested COMPLETE trials, every value completed before the kill unchanged, no
trial number twice, nothing RUNNING or PRUNED, and the report written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backtest.optimize import storage
from tests.killpoint import SEARCH_CONFIG as CONFIG

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 10
BATCH = 2  # tests/killpoint.py's config
BOUND_S = 240  # generous: a resume takes seconds alone, this is the hang detector



@pytest.fixture(scope="module")
def cpu_hogs() -> Iterator[None]:
    """Two busy loops compete for the (usually two) cores while the searches run."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait(timeout=30)


def killed_search(tmp_path: Path, point: str, nth: int, *extra: str) -> subprocess.Popen[bytes]:
    """Start the search with the kill planted; its stdout/stderr pipes are never read."""
    config = tmp_path / "kill.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "killpoint.py"), point, str(nth), "optimize",
         str(config), "--trials", str(TRIALS), "--study", "k", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def resume(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backtest", "optimize", str(tmp_path / "kill.toml"), "--trials",
         str(TRIALS), "--study", "k", *extra], cwd=ROOT, text=True, capture_output=True,
        timeout=BOUND_S, check=False)


def check_resumed(before: list[dict], after: list[dict]) -> None:
    numbers = [t["number"] for t in after]
    assert len(numbers) == len(set(numbers))
    states = [t["state"] for t in after]
    assert states.count("COMPLETE") == TRIALS
    assert "RUNNING" not in states and "PRUNED" not in states and "WAITING" not in states
    by_number = {t["number"]: t for t in after}
    for t in before:
        if t["state"] == "COMPLETE":  # nothing completed before the kill changes or is lost
            assert by_number[t["number"]]["state"] == "COMPLETE"
            assert by_number[t["number"]]["values"] == t["values"]


@pytest.mark.timeout(2 * BOUND_S + 60)
@pytest.mark.parametrize(("point", "nth"), [
    ("ask", 1), ("ask", 4), ("tell", 3), ("tell", 5), ("told", 2), ("told", 5), ("append", 5),
    ("append", 9), ("claim-append", 1), ("record-append", 2), ("record-append", 5),
    ("eval", 3), ("report", 1)])
def test_a_search_killed_at_a_window_resumes_to_the_exact_count(
        tmp_path: Path, cpu_hogs: None, point: str, nth: int) -> None:
    out = tmp_path / "out"
    proc = killed_search(tmp_path, point, nth, "--out", str(out))
    proc.wait(timeout=BOUND_S)
    assert proc.returncode == -9, f"{point}:{nth} was not reached (exit {proc.returncode})"
    journal = out / "k" / "study.journal"
    torn = point.endswith("append")
    if torn:
        assert not journal.read_bytes().endswith(b"\n")  # a torn record is left behind
    before = storage.study_trials(None, journal, "k")  # (cuts the torn record)
    running = [t for t in before if t["state"] == "RUNNING"]
    finished = [t for t in before if t["state"] != "RUNNING"]
    if point in ("ask", "tell", "eval", "record-append"):  # the batch claimed, not recorded
        assert 1 <= len(running) <= BATCH
    if point in ("ask", "tell", "eval", "told"):  # no result of a running trial was written
        assert not any(t["params"] for t in running)
    if point == "tell":  # every earlier batch recorded, this one not
        assert len(finished) == BATCH * (nth - 1)
    if point == "told":  # this batch recorded with the next one's claims (none after the last)
        assert len(finished) == BATCH * nth
        assert len(running) == (BATCH if BATCH * nth < TRIALS else 0)
    if point in ("claim-append", "record-append"):  # no claim after the tear took effect
        assert len(before) == BATCH * (nth - 1 if point == "claim-append" else nth)
    if point in ("claim-append", "report"):  # nothing running
        assert not running
    assert all(t["worker"] for t in running)  # the owner was written with the trial
    if point == "report":
        assert sum(t["state"] == "COMPLETE" for t in before) == TRIALS
    again = resume(tmp_path, "--out", str(out))
    assert again.returncode == 0, again.stderr
    check_resumed(before, storage.study_trials(None, journal, "k"))
    doc = json.loads((out / "k" / "optimization.json").read_text())
    assert doc["counts"]["COMPLETE"] == TRIALS and doc["best_run"]
    proc.stdout.close()
    proc.stderr.close()
