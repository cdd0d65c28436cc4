"""Two worker processes share one study on a real PostgreSQL server.

Needs ``CRASHBT_PG_URL``; without it the test FAILS (never skips) and says how to start the
server: ``bash scripts/test-services`` and
``export CRASHBT_PG_URL=postgresql+psycopg://crashbt:crashbt@127.0.0.1:5432/crashbt``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from backtest.optimize import storage
from backtest.redact import mask_secrets
from tests.killpoint import SEARCH_CONFIG as CONFIG

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 30

pytestmark = pytest.mark.postgres



def pg_url() -> str:
    url = os.environ.get("CRASHBT_PG_URL")
    if not url:
        pytest.fail("CRASHBT_PG_URL is not set: start PostgreSQL with `bash scripts/test-services`, "
                    "then `export CRASHBT_PG_URL=postgresql+psycopg://crashbt:crashbt@127.0.0.1"
                    ":5432/crashbt`")
    return url


def two_workers(tmp_path: Path, config_text: str, trials: int, *, meet: bool = False
                ) -> tuple[str, Path, str, list[tuple[str, str]]]:
    """Run two ``crashbt optimize`` processes at once on one new study of the server (reports
    under a/ and b/): the URL, the config, the study and each one's (stdout, stderr). With
    ``meet`` each holds its first batch until the other has claimed one (tests/killpoint.py)."""
    url = pg_url()
    config = tmp_path / "pg.toml"
    config.write_text(config_text, encoding="utf-8")
    study = f"pg-{uuid.uuid4().hex[:10]}"
    launcher = [sys.executable, "-m", "backtest"]
    if meet:
        (tmp_path / "meet").mkdir()
        launcher = [sys.executable, str(ROOT / "tests" / "killpoint.py"), "meet",
                    str(tmp_path / "meet"), "2"]
    procs = [subprocess.Popen(
        [*launcher, "optimize", str(config), "--storage", url,
         "--study", study, "--trials", str(trials), "--out", str(tmp_path / name)],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return url, config, study, outputs


def test_two_workers_share_one_study_without_running_a_trial_twice(tmp_path: Path) -> None:
    url, _config, study, outputs = two_workers(tmp_path, CONFIG, TRIALS)
    trials = storage.study_trials(url, tmp_path / "unused", study)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) == TRIALS
    numbers = [t["number"] for t in trials]
    assert len(numbers) == len(set(numbers))  # every trial number exists once ...
    assert all(t["worker"] for t in complete)  # ... run by one worker
    assert not any(t["state"] in ("PRUNED", "RUNNING") for t in trials)
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


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("point", "nth"), [("ask", 2), ("tell", 1), ("eval", 2), ("told", 2)])
def test_two_workers_one_killed_at_a_window_resume_to_the_exact_count(
        tmp_path: Path, point: str, nth: int) -> None:
    """Worker a dies at ``point`` (its pipes unread, two busy loops beside it); worker b goes
    on and fails a's orphan at once; a resume then finds exactly the requested count. Worker b
    holds its first batch until a has died (``meet`` on a's ``mark``): otherwise a loaded
    machine could let b finish all 12 trials before a reached its second pass."""
    url = pg_url()
    config = tmp_path / "pg.toml"
    config.write_text(CONFIG, encoding="utf-8")
    study = f"pg-{uuid.uuid4().hex[:10]}"
    args = ["optimize", str(config), "--storage", url, "--study", study, "--trials", "12"]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    marks = tmp_path / "marks"
    marks.mkdir()
    killpoint = [sys.executable, str(ROOT / "tests" / "killpoint.py")]
    try:
        killed = subprocess.Popen(
            [*killpoint, "mark", str(marks), point, str(nth), *args, "--out", str(tmp_path / "a")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        other = subprocess.run([*killpoint, "meet", str(marks), "2", *args, "--out",
                                str(tmp_path / "b")], cwd=ROOT, text=True, capture_output=True,
                               timeout=360, check=False)
        killed.wait(timeout=240)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=30)
    assert other.returncode == 0, other.stderr
    assert killed.returncode == -9, f"{point}:{nth} was not reached"
    assert len(list(marks.iterdir())) == 2  # b held its first batch until a died
    before = storage.study_trials(url, tmp_path / "unused", study)
    again = subprocess.run([sys.executable, "-m", "backtest", *args, "--out", str(tmp_path / "c")],
                           cwd=ROOT, text=True, capture_output=True, timeout=240, check=False)
    assert again.returncode == 0, again.stderr
    after = storage.study_trials(url, tmp_path / "unused", study)
    numbers = [t["number"] for t in after]
    assert len(numbers) == len(set(numbers))
    states = [t["state"] for t in after]
    assert states.count("COMPLETE") == 12
    assert not {"RUNNING", "PRUNED", "WAITING"} & set(states)
    by_number = {t["number"]: t for t in after}
    for t in before:
        if t["state"] == "COMPLETE":
            assert by_number[t["number"]]["values"] == t["values"]
    killed.stdout.close()
    killed.stderr.close()


def test_no_feasible_trial_and_ctrl_c_exit_2_and_130_with_a_report(tmp_path: Path) -> None:
    """On a database study the report directory is made too: no feasible trial is exit 2 and a
    Ctrl-C is 130, each with optimization.json written, never an internal error (1)."""
    url = pg_url()
    config = tmp_path / "pg.toml"
    config.write_text(CONFIG.replace("[optimize]\n", "[optimize]\nconstraints = [{ metric = "
                                     "\"n_trades\", op = \">=\", value = 100000 }]\n"),
                      encoding="utf-8")
    study = f"pg-{uuid.uuid4().hex[:10]}"
    args = [sys.executable, "-m", "backtest", "optimize", str(config), "--storage", url,
            "--study", study, "--out", str(tmp_path / "out")]
    none = subprocess.run([*args, "--trials", "3"], cwd=ROOT, text=True, capture_output=True,
                          timeout=240, check=False)
    assert none.returncode == 2, none.stderr
    doc = json.loads((tmp_path / "out" / study / "optimization.json").read_text())
    assert doc["best"] is None and doc["counts"] == {"COMPLETE": 3}
    assert "expected a complete feasible trial" in none.stderr

    proc = subprocess.Popen([*args, "--trials", "5000"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:  # poll the study, not the clock
        if sum(t["state"] == "COMPLETE" for t in storage.study_trials(url, tmp_path, study)) > 5:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    doc = json.loads((tmp_path / "out" / study / "optimization.json").read_text())
    assert doc["interrupted"] is True and "RUNNING" not in doc["counts"]


GRID = CONFIG.replace("batch = 2\n", 'batch = 4\nsampler = "grid"\n') + """\
ath_fraction = { choices = [0.45, 0.5, 0.55, 0.6, 0.65, 0.7] }
hold_bars = { choices = [3, 5, 10, 20, 30, 45] }
stop_pct = { choices = [0.03, 0.06, 0.1, 0.15] }
""" + "".join(f"{name} = {{ fixed = {value} }}\n" for name, value in (
    ("level", 80000.0), ("ema_fraction", 1.17), ("ema_weeks", 200), ("confirm", '"close"'),
    ("hold", 1), ("volume_k", 1.5), ("volume_window", 20), ("rearm_pct", 0.0),
    ("buffer_pct", 0.0)))
GRID_POINTS = 6 * 6 * 4


def test_two_workers_take_batches_of_one_grid(tmp_path: Path) -> None:
    """Two worker processes claim batches of 4 from one grid study on the server: every point
    exactly once, both workers completed a batch, and a stored evaluation is what a fresh
    single evaluation of its parameters gives."""
    from backtest.config.loader import load_config
    from backtest.optimize.evaluate import Evaluator
    from backtest.plugins import resolve

    url, config, study, _outputs = two_workers(tmp_path, GRID, GRID_POINTS + 10, meet=True)
    assert len(list((tmp_path / "meet").iterdir())) == 2  # both held their first batch
    trials = storage.study_trials(url, tmp_path / "unused", study)
    assert [t["state"] for t in trials] == ["COMPLETE"] * GRID_POINTS  # the grid, no more
    points = {tuple(sorted(t["params"].items())) for t in trials}
    assert len(points) == GRID_POINTS  # no point twice
    by_worker: dict[str, list[int]] = {}
    for t in trials:
        by_worker.setdefault(t["worker"], []).append(t["number"])
    assert len(by_worker) == 2 and all(len(n) >= 4 for n in by_worker.values()), by_worker

    import optuna
    loaded = optuna.load_study(study_name=study, storage=storage.open_storage(url, tmp_path))
    cfg = load_config(config)
    opt = cfg.optimize
    evaluator = Evaluator(cfg.model_copy(update={"optimize": None}), opt,
                          resolve(cfg.strategy.name, str(config), False), str(config))
    for trial in loaded.get_trials()[::47]:
        stored = trial.user_attrs["eval"]
        fresh = evaluator.evaluate(stored["params_all"])
        assert json.dumps({k: fresh[k] for k in stored if k != "params_all"}, sort_keys=True) \
            == json.dumps({k: v for k, v in stored.items() if k != "params_all"}, sort_keys=True)
        assert trial.values == fresh["objectives"]


def test_every_trial_of_a_claimed_batch_has_a_heartbeat_that_keeps_beating() -> None:
    """Optuna fails a dead worker's trial only if it has a heartbeat (fail_stale_trials skips
    trials without one): the claim records one for every trial of the batch, and the worker's
    heartbeat thread keeps them all fresh while the batch runs."""
    import optuna
    from optuna.storages._rdb import models

    from backtest.optimize.batch import Heartbeat

    url = pg_url()
    opened = storage.open_storage(url, Path("unused"))
    study = optuna.create_study(study_name=f"pg-{uuid.uuid4().hex[:10]}", storage=opened)
    opened.set_quota(study, 10)

    def beats(ids: list[int]) -> dict[int, object]:
        with opened.engine.connect() as conn:
            rows = conn.execute(sqlalchemy.select(
                models.TrialHeartbeatModel.trial_id, models.TrialHeartbeatModel.heartbeat).where(
                models.TrialHeartbeatModel.trial_id.in_(ids))).all()
        return dict(rows)

    ids = opened.claim_batch(study._study_id, 4)
    first = beats(ids)
    assert sorted(first) == sorted(ids)  # each trial of the batch, at its claim
    heartbeat = Heartbeat(opened)
    heartbeat.interval = 0.05  # Optuna's is 5 s; the thread is the same
    heartbeat.trials = tuple(ids)
    deadline = time.monotonic() + 120
    with heartbeat.running():
        while time.monotonic() < deadline:  # poll the server for the thread's beats
            now = beats(ids)
            if all(now[i] > first[i] for i in ids):
                break
            time.sleep(0.05)
    assert all(now[i] > first[i] for i in ids), "the heartbeat thread did not beat"
    assert not heartbeat._thread.is_alive()  # stopped with its block


def test_queued_trials_are_claimed_first_with_their_parameters_on_the_server(
        tmp_path: Path) -> None:
    import dataclasses

    from tests.test_optimize import NOISE, request
    from tests.test_optimize_batch import check_queued_trials

    req = request(tmp_path, NOISE, "batch = 3", 3)
    check_queued_trials(dataclasses.replace(req, storage_url=pg_url(),
                                            study=f"pg-{uuid.uuid4().hex[:10]}"))


def test_a_batch_boundary_is_one_transaction_on_the_server() -> None:
    """A batch's results and the next batch's claims are one transaction: a write that fails
    halfway (the second record's distribution clashes with the first's) leaves nothing, not
    even the first trial's result, and claims nothing; a trial failed meanwhile (as another
    host's ``fail_stale_trials`` does) keeps its state while the rest is written."""
    import dataclasses

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState

    url = pg_url()
    opened = storage.open_storage(url, Path("unused"))
    study = optuna.create_study(study_name=f"pg-{uuid.uuid4().hex[:10]}", storage=opened)
    opened.set_quota(study, 10)
    ids = opened.claim_batch(study._study_id, 3)
    x = FloatDistribution(0.0, 1.0)
    done = [storage.TrialRecord(i, TrialState.COMPLETE, [float(n)], {"x": n / 10}, {"x": x},
                                {"eval": {"n": n}}, {}) for n, i in enumerate(ids)]
    clash = dataclasses.replace(done[1], params={"x": "a"},
                                distributions={"x": CategoricalDistribution(["a"])})
    with pytest.raises(ValueError, match="distribution"):
        opened.claim_batch(study._study_id, 2, [done[0], clash])
    assert [(t.state, t.params) for t in study.get_trials()] == [(TrialState.RUNNING, {})] * 3

    opened.set_trial_state_values(ids[2], TrialState.FAIL)
    following = opened.claim_batch(study._study_id, 2, done)
    assert len(following) == 2
    assert [(t.state, t.params, t.values) for t in study.get_trials()] == [
        (TrialState.COMPLETE, {"x": 0.0}, [0.0]), (TrialState.COMPLETE, {"x": 0.1}, [1.0]),
        (TrialState.FAIL, {}, None), (TrialState.RUNNING, {}, None),
        (TrialState.RUNNING, {}, None)]
