"""Two worker processes share one study on a real PostgreSQL server.

Needs ``CRASHBT_PG_URL``; without it the test FAILS (never skips) and says how to start the
server: ``bash scripts/test-services`` and
``export CRASHBT_PG_URL=postgresql+psycopg://crashbt:crashbt@127.0.0.1:5432/crashbt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from backtest.optimize import storage
from backtest.redact import mask_secrets

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 30

pytestmark = pytest.mark.postgres

CONFIG = """
[data]
dataset = "btcusdt_1d"
start = 2021-01-01
end = 2026-03-31
[strategy]
name = "break_below_74k"
[report]
html = false
[optimize]
seed = 5
[optimize.validation]
kind = "anchored"
folds = 2
[optimize.params]
mode = { fixed = "short" }
level = { low = 60000.0, high = 80000.0 }
target = { low = 40000.0, high = 59000.0 }
stop_level = { low = 81000.0, high = 95000.0 }
"""


def pg_url() -> str:
    url = os.environ.get("CRASHBT_PG_URL")
    if not url:
        pytest.fail("CRASHBT_PG_URL is not set: start PostgreSQL with `bash scripts/test-services`, "
                    "then `export CRASHBT_PG_URL=postgresql+psycopg://crashbt:crashbt@127.0.0.1"
                    ":5432/crashbt`")
    return url


def test_two_workers_share_one_study_without_running_a_trial_twice(tmp_path: Path) -> None:
    url = pg_url()
    config = tmp_path / "pg.toml"
    config.write_text(CONFIG, encoding="utf-8")
    study = f"pg-{uuid.uuid4().hex[:10]}"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "backtest", "optimize", str(config), "--storage", url,
         "--study", study, "--trials", str(TRIALS), "--out", str(tmp_path / name)],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    trials = storage.study_trials(url, tmp_path / "unused", study)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) == TRIALS
    numbers = [t["number"] for t in trials]
    assert len(numbers) == len(set(numbers))  # every trial number exists once ...
    assert all(t["worker"] and not t["surplus"] for t in complete)  # ... run by one worker
    workers = {t["worker"] for t in complete}
    assert len(workers) == 2, f"expected both workers to complete trials, found {workers}"

    secret = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    masked = mask_secrets(url, url)
    for name, (out, err) in zip(("a", "b"), outputs, strict=True):
        text = (tmp_path / name / study / "optimization.json").read_text()
        assert json.loads(text)["storage"] == masked
        for where in (text, out, err):  # the password appears nowhere
            assert f":{secret}@" not in where
        assert f"storage {masked}" in out
