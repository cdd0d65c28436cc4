"""crashbt optimize on real bundled data: config errors, resume after SIGKILL, reproducibility,
Ctrl-C, masking of credentials, Pareto fronts, and a search over pure noise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.config.loader import load_config
from backtest.errors import ConfigError
from backtest.optimize import search, space, storage, summary, workers
from backtest.optimize.request import Request
from backtest.strategy.contract import FloatRange, IntRange, StrategySpec
from backtest.types import Signals

ROOT = Path(__file__).resolve().parents[1]
STUDY = "t"

CONFIG = """
name = "opt-test"
[data]
dataset = "btcusdt_1d"
start = 2021-01-01
end = 2026-03-31
[strategy]
name = "break_below_74k"
[execution]
fee_rate = 0.001
[report]
html = false
[optimize]
seed = 3
constraints = [{{ metric = "n_trades", op = ">=", value = 0 }}]
{extra}
[optimize.validation]
kind = "walk_forward"
folds = 3
train_frac = 0.6
[optimize.params]
mode = {{ fixed = "short" }}
level = {{ low = 60000.0, high = 80000.0 }}
target = {{ low = 40000.0, high = 59000.0 }}
stop_level = {{ low = 81000.0, high = 95000.0 }}
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "opt.toml"
    path.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    return path


def crashbt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backtest", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "backtest", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def trials(out: Path, study: str = STUDY) -> list[dict]:
    return storage.study_trials(None, out / study / "study.journal", study)


def wait_for_complete(proc: subprocess.Popen[str], out: Path, n: int) -> None:
    """Poll the journal until ``n`` trials are complete and another one is running."""
    journal = out / STUDY / "study.journal"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            try:
                states = [t["state"] for t in trials(out)]
            except KeyError:  # the study is being created
                states = []
            if states.count("COMPLETE") >= n and "RUNNING" in states:
                return
        time.sleep(0.02)


# ---------------------------------------------------------------- config


def test_unknown_optimize_key_names_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "trails = 5")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: optimize.trails: unknown key; did you mean 'trials'?"


def test_unknown_metric_gets_a_hint(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'objectives = [{ metric = "sharp" }]')
    with pytest.raises(ConfigError, match=r"optimize\.objectives\.0\.metric: .*did you mean "
                                          r"'sharpe'"):
        load_config(path)


def test_directions_are_inferred(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'objectives = [{ metric = "sharpe" }, '
                                  '{ metric = "max_drawdown_pct" }]')
    opt = load_config(path).optimize
    assert [o.resolved_direction for o in opt.objectives] == ["maximize", "minimize"]


def test_narrowing_outside_the_strategy_space_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text().replace("high = 95000.0", "high = 99000.0")
    path.write_text(text)
    opt = load_config(path).optimize
    import strategies

    with pytest.raises(ConfigError, match=r"optimize\.params\.stop_level: expected low/high "
                                          r"within float 70000\.\.95000"):
        space.search_space(strategies.get("break_below_74k"), opt, str(path))


def test_unreachable_storage_never_prints_the_password(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://u:secret@127.0.0.1:9/db"
    proc = crashbt("optimize", str(write_config(tmp_path)), "--trials", "2", "--storage", url,
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "secret" not in proc.stdout + proc.stderr
    assert "postgresql://u:***@127.0.0.1:9/db" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_database_that_never_answers_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """A local TCP listener accepts the connection (the kernel does) and never says a word:
    the connect timeout turns it into one masked line and exit 2, well within the bound."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql://u:secret@127.0.0.1:{silent.getsockname()[1]}/db"
        proc = crashbt("optimize", str(write_config(tmp_path)), "--trials", "2", "--storage",
                       url, "--out", str(tmp_path / "out"), timeout=storage.CONNECT_TIMEOUT_S * 9)
    assert proc.returncode == 2, proc.stderr
    assert "secret" not in proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_an_owner_is_gone_when_its_process_is_or_when_there_is_none() -> None:
    import socket

    me, host = storage.worker_id(), socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    assert not storage.owner_gone(me)
    assert storage.owner_gone(None) and storage.owner_gone("")  # made outside crashbt's claims
    assert storage.owner_gone(f"{host}:{dead.pid}:1")  # that process has exited
    assert storage.owner_gone(f"{host}:{os.getpid()}:1")  # this pid, another start: recycled
    assert not storage.owner_gone(f"{host}:{os.getpid()}")  # an older crashbt's host:pid
    assert not storage.owner_gone("elsewhere:1:1")  # another host: the heartbeat's business


def test_pareto_front_by_hand() -> None:
    # maximize col 0, minimize col 1. (2, 5) and (3, 6) and (1, 1) are non-dominated; (2, 7) is
    # dominated by (2, 5) (equal first, lower second); (0, 2) by (1, 1).
    values = np.array([[2.0, 5.0], [3.0, 6.0], [2.0, 7.0], [1.0, 1.0], [0.0, 2.0]])
    assert summary.pareto_front(values, np.array([1.0, -1.0])) == [0, 1, 3]


# ---------------------------------------------------------------- searches


def test_the_study_holds_exactly_the_requested_trials_and_resumes_to_more(tmp_path: Path) -> None:
    path, out = write_config(tmp_path), tmp_path / "out"
    first = crashbt("optimize", str(path), "--trials", "6", "--study", STUDY, "--out", str(out))
    assert first.returncode == 0, first.stderr
    doc = json.loads((out / STUDY / "optimization.json").read_text())
    assert doc["counts"] == {"COMPLETE": 6}
    again = crashbt("optimize", str(path), "--trials", "9", "--study", STUDY, "--out", str(out))
    assert again.returncode == 0, again.stderr
    done = [t for t in trials(out) if t["state"] == "COMPLETE"]
    assert len(done) == 9
    # Walk-forward: 3 folds, each with an out-of-sample result of the fold's in-sample pick.
    doc = json.loads((out / STUDY / "optimization.json").read_text())
    assert [f["fold"] for f in doc["walk_forward"]["folds"]] == ["wf1", "wf2", "wf3"]
    assert_honest_folds(doc)
    assert len(doc["overfitting"]["decay"]) == 5
    run_dir = out / STUDY / doc["best_run"]
    best_report = json.loads((run_dir / "report.json").read_text())
    ran = best_report["strategy"]["params"]  # every Params field; fixed ones are not searched
    assert {k: ran[k] for k in doc["best"]["params"]} == doc["best"]["params"]
    assert (ran["level_mode"], ran["ema_weeks"]) == ("absolute", 200)


def assert_honest_folds(doc: dict) -> None:
    """No ratio without a trade, means over the folds that define a metric, per-fold picks that
    meet the constraints, and a headline that counts what it rests on."""
    for trial in doc["trials"]:
        for fold in trial.get("folds", []):
            for part in (fold["is"], fold["oos"]):
                assert part["n_trades"] is not None  # every fold row carries its trade count
                if part["n_trades"] == 0:
                    assert all(part[k] is None for k in
                               ("sharpe", "sortino", "profit_factor", "win_rate_pct"))
        if "folds" in trial:
            defined = [f["oos"]["sharpe"] for f in trial["folds"] if f["oos"]["sharpe"] is not None]
            want = float(np.mean(defined)) if defined else None
            assert trial["oos_mean"]["sharpe"] == pytest.approx(want)
    wf = doc["walk_forward"]
    picked = [r for r in wf["folds"] if r["trial"] is not None]
    for row in picked:
        assert row["is"]["sharpe"] is not None and row["is"]["n_trades"] >= 1  # the constraint
    scored = [r["oos"]["sharpe"] for r in picked if r["oos"]["sharpe"] is not None]
    assert wf["oos_folds"] == len(scored)
    assert wf["oos_trades"] == sum(r["oos"]["n_trades"] for r in picked)
    assert wf["oos_mean"] == (pytest.approx(float(np.mean(scored))) if scored else None)


def fake_trial(number: int, folds: list[tuple[float | None, int, float | None, int]]):
    """A complete trial whose stored folds are (is sharpe, is trades, oos sharpe, oos trades)."""
    import optuna

    def part(sharpe: float | None, trades: int) -> dict:
        return {"sharpe": sharpe, "n_trades": trades}

    rows = [{"name": f"wf{k + 1}", "is": part(a, b), "oos": part(c, d)}
            for k, (a, b, c, d) in enumerate(folds)]
    trial = optuna.trial.create_trial(value=0.0, user_attrs={"eval": {
        "folds": rows, "oos_mean": {}, "constraints": [], "undefined": []}})
    trial.number = number
    return trial


def test_walk_forward_picks_meet_the_constraints_per_fold_and_ties_are_named() -> None:
    from backtest.config.optimize import ConstraintSpec

    need_trade = [ConstraintSpec(metric="n_trades", op=">=", value=1)]
    trials = [
        fake_trial(0, [(0.5, 2, 0.1, 3), (None, 0, None, 0), (0.2, 1, 0.3, 1)]),
        fake_trial(1, [(0.9, 0, 0.7, 1), (None, 0, 0.4, 2), (0.2, 1, 0.5, 2)]),
        fake_trial(2, [(0.7, 1, None, 0), (None, 0, None, 0), (0.2, 4, -0.1, 1)]),
    ]
    wf = summary.walk_forward_oos(trials, "sharpe", np.float64(1.0), need_trade)
    rows = wf["folds"]
    # wf1: trial 1's 0.9 has no in-sample trade (and the constraint fails): trial 2 wins on 0.7
    assert (rows[0]["trial"], rows[0]["candidates"], rows[0]["tied"]) == (2, 2, False)
    assert rows[0]["oos"]["sharpe"] is None  # its out-of-sample part has no trade
    # wf2: nobody traded in-sample, so there is no pick (not trial 0 by default)
    assert (rows[1]["trial"], rows[1]["candidates"]) == (None, 0)
    # wf3: all three tie at 0.2: the lowest number is shown and the tie is said
    assert (rows[2]["trial"], rows[2]["tied"]) == (0, True)
    assert rows[2]["tied"] is True  # a JSON boolean, not numpy's
    assert (wf["oos_folds"], wf["n_folds"], wf["oos_trades"]) == (1, 3, 1)
    assert wf["oos_mean"] == pytest.approx(0.3) and wf["is_mean"] == pytest.approx(0.2)


def test_folds_without_trades_have_no_ratios_and_say_so(tmp_path: Path) -> None:
    """The fixed 60k-80k levels do not trade in every 1d fold of 2021-2026: those folds carry
    null ratios (never 0.0), are left out of the means, and the terminal says "no trades"."""
    path = write_config(tmp_path).read_text().replace('value = 0 }', 'value = 1 }')
    (tmp_path / "opt.toml").write_text(path)
    out = tmp_path / "out"
    proc = crashbt("optimize", str(tmp_path / "opt.toml"), "--trials", "8", "--study", STUDY,
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / STUDY / "optimization.json").read_text())
    assert_honest_folds(doc)
    rows = doc["walk_forward"]["folds"]
    assert any(r["trial"] is not None and r["oos"]["n_trades"] == 0 for r in rows)
    assert "0.0 (0 trades)" not in proc.stdout and "no trades (0 trades)" in proc.stdout
    assert (f"of {len(rows)} folds, on" in proc.stdout
            or f"0 of {len(rows)} folds have a pick that traded" in proc.stdout)


def test_the_orphan_of_a_plain_optuna_ask_does_not_stall_a_resume(tmp_path: Path) -> None:
    """The issue's reproduction: 5 trials; plain Optuna asks one trial on the journal and exits
    (a RUNNING trial nobody owns); the resume to 12 finishes with exactly 12 complete trials."""
    path, out = write_config(tmp_path), tmp_path / "out"
    args = ("optimize", str(path), "--study", STUDY, "--out", str(out))
    assert crashbt(*args, "--trials", "5").returncode == 0
    code = ("import optuna, sys; s = optuna.load_study(study_name=sys.argv[2], storage="
            "optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(sys.argv[1]"
            "))); s.ask()")
    journal = out / STUDY / "study.journal"
    subprocess.run([sys.executable, "-c", code, str(journal), STUDY], check=True, timeout=60)
    assert [t["state"] for t in trials(out)].count("RUNNING") == 1
    again = crashbt(*args, "--trials", "12", timeout=120)
    assert again.returncode == 0, again.stderr
    states = [t["state"] for t in trials(out)]
    assert states.count("COMPLETE") == 12 and "RUNNING" not in states
    assert "PRUNED" not in states


@pytest.mark.parametrize("batches_done", [1, 2, 3])
def test_resume_after_sigkill_in_the_middle_of_a_trial(tmp_path: Path, batches_done: int) -> None:
    """Three searches (batches of 3) killed as a later batch's evaluation starts (its trials
    RUNNING; tests/killpoint.py, no race with a search faster than polling) each resume to
    exactly 12."""
    path, out = write_config(tmp_path, "batch = 3"), tmp_path / "out"
    args = ("optimize", str(path), "--trials", "12", "--study", STUDY, "--out", str(out))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "killpoint.py"), "eval",
                           str(batches_done + 1), *args], cwd=ROOT, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    before = trials(out)
    complete = {t["number"]: t["values"] for t in before if t["state"] == "COMPLETE"}
    killed = [t for t in before if t["state"] == "RUNNING"]
    assert len(complete) == 3 * batches_done
    assert len(killed) == 3  # the batch being evaluated

    again = crashbt(*args)
    assert again.returncode == 0, again.stderr
    after = {t["number"]: t for t in trials(out)}
    assert sum(t["state"] == "COMPLETE" for t in after.values()) == 12
    for number, values in complete.items():  # nothing completed before the kill is lost
        assert after[number]["state"] == "COMPLETE" and after[number]["values"] == values
    for trial in killed:  # its owner is gone: failed at once
        assert after[trial["number"]]["state"] == "FAIL"
    assert not any(t["state"] in ("RUNNING", "PRUNED") for t in after.values())


def test_two_jobs_end_with_exactly_the_requested_trials_and_named_metrics(tmp_path: Path) -> None:
    """--jobs 2: the claim hands out exactly the requested trials (nothing PRUNED to make the
    count), and the study names its objective for optuna-dashboard."""
    import optuna

    path, out = write_config(tmp_path), tmp_path / "out"
    proc = crashbt("optimize", str(path), "--trials", "8", "--jobs", "2", "--study", STUDY,
                   "--out", str(out), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / STUDY / "optimization.json").read_text())["counts"] == {"COMPLETE": 8}
    stored = optuna.load_study(study_name=STUDY, storage=storage.open_storage(
        None, out / STUDY / "study.journal"))
    assert stored.metric_names == ["sharpe"]


def test_same_seed_same_best_params_in_fresh_processes(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    best = []
    for name in ("a", "b"):
        proc = crashbt("optimize", str(path), "--trials", "15", "--seed", "11", "--study", STUDY,
                       "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        doc = json.loads((tmp_path / name / STUDY / "optimization.json").read_text())
        best.append((doc["best"]["number"], doc["best"]["params"], doc["best"]["values"]))
    assert best[0] == best[1]
    other = crashbt("optimize", str(path), "--trials", "15", "--seed", "12", "--study", STUDY,
                    "--out", str(tmp_path / "c"))
    assert other.returncode == 0, other.stderr
    doc = json.loads((tmp_path / "c" / STUDY / "optimization.json").read_text())
    assert doc["best"]["params"] != best[0][1]  # the seed matters


def test_ctrl_c_writes_the_report_and_exits_130(tmp_path: Path) -> None:
    path, out = write_config(tmp_path), tmp_path / "out"
    proc = start("optimize", str(path), "--trials", "500", "--study", STUDY, "--out", str(out))
    wait_for_complete(proc, out, 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    doc = json.loads((out / STUDY / "optimization.json").read_text())
    assert doc["interrupted"] is True
    assert 3 <= doc["counts"]["COMPLETE"] < 500
    assert "RUNNING" not in doc["counts"]  # the running trial was finished or failed
    assert "interrupted" in stdout


# ---------------------------------------------------------------- in process


@dataclass(frozen=True)
class NoiseParams:
    seed: int = 0
    p: float = 0.05


def noise_features(bars: pd.DataFrame, params: NoiseParams, context: object) -> pd.DataFrame:
    return pd.DataFrame(index=bars.index)


def noise_signals(bars: pd.DataFrame, feats: pd.DataFrame, params: NoiseParams) -> Signals:
    """Coin flips: entries and exits with probability p per bar, nothing learned from prices."""
    rng = np.random.default_rng(params.seed)
    flips = rng.random((2, len(bars))) < params.p
    return Signals(long_entries=pd.Series(flips[0], index=bars.index),
                   long_exits=pd.Series(flips[1], index=bars.index))


NOISE = StrategySpec(name="noise", summary="random signals", params=NoiseParams,
                     space={"seed": IntRange(0, 1_000_000), "p": FloatRange(0.02, 0.3)},
                     features=noise_features, signals=noise_signals)


def request(tmp_path: Path, spec: StrategySpec, extra: str, trials_: int,
            params: str = "") -> Request:
    """A search of ``spec`` on the test config's data and folds (``extra``: [optimize] keys)."""
    path = tmp_path / "noise.toml"
    head = CONFIG.split("[optimize.params]")[0].format(extra=extra)
    path.write_text(head + params, encoding="utf-8")
    cfg = load_config(path)
    opt = cfg.optimize.model_copy(update={"trials": trials_})
    cfg = cfg.model_copy(update={"optimize": None})
    return Request(cfg, opt, spec, str(path), STUDY, tmp_path / "out")


def run_in_process(tmp_path: Path, spec: StrategySpec, extra: str, trials_: int,
                   params: str = "") -> search.Outcome:
    return search.run(request(tmp_path, spec, extra, trials_, params))


def test_a_search_over_noise_is_not_called_significant(tmp_path: Path) -> None:
    outcome = run_in_process(tmp_path, NOISE, 'sampler = "random"', 40)
    over = outcome.doc["overfitting"]
    assert over["n_trials"] == 40
    dsr = over["deflated_sharpe"]
    # Selection inflates the best Sharpe above zero, the deflation takes it back.
    assert dsr["sharpe"] > 0
    assert dsr["dsr"] < 0.95 and dsr["significant"] is False
    assert 0.0 <= over["pbo"]["pbo"] <= 1.0 and over["pbo"]["n_splits"] == 252


def test_two_objectives_give_a_pareto_front(tmp_path: Path) -> None:
    extra = ('sampler = "nsga2"\nobjectives = [{ metric = "sharpe" }, '
             '{ metric = "max_drawdown_pct" }]')
    outcome = run_in_process(tmp_path, NOISE, extra, 12)
    doc = outcome.doc
    front = doc["pareto_front"]
    assert front and doc["best"]["number"] in [t["number"] for t in front]
    values = np.array([t["values"] for t in doc["trials"] if t["state"] == "COMPLETE"])
    for t in front:  # no complete trial dominates a front member
        sharpe, drawdown = t["values"]
        assert not np.any((values[:, 0] >= sharpe) & (values[:, 1] <= drawdown)
                          & ((values[:, 0] > sharpe) | (values[:, 1] < drawdown)))
    assert os.path.exists(outcome.path)


def test_a_torn_journal_record_is_cut_and_the_search_resumes(tmp_path: Path) -> None:
    """A writer killed mid-append leaves a last line without its newline: the next run cuts it
    (it was never committed) and resumes, instead of hanging on an unreadable journal."""
    path, out = write_config(tmp_path), tmp_path / "out"
    args = ("optimize", str(path), "--trials", "3", "--study", STUDY, "--out", str(out))
    assert crashbt(*args).returncode == 0
    journal = out / STUDY / "study.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 9')  # torn
    assert storage.repair_journal(journal) and journal.read_bytes() == whole
    assert not storage.repair_journal(journal)  # an intact journal is left alone
    journal.write_bytes(whole + b'{"op_code": 5')
    again = crashbt("optimize", str(path), "--trials", "5", "--study", STUDY, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert sum(t["state"] == "COMPLETE" for t in trials(out)) == 5


def test_ctrl_c_outside_an_evaluation_is_deferred_to_the_end_of_the_step() -> None:
    """A real SIGINT: outside the strategy evaluation it only sets the flag (a batch's claim,
    sampling or record finishes); inside it interrupts at once; a second one interrupts at once."""
    # signal.raise_signal runs the Python handler before it returns: no sleep needed.
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    interrupts = workers.Interrupts()
    with interrupts.installed():
        signal.raise_signal(signal.SIGINT)  # while a batch is written: deferred
        assert interrupts.requested
        with pytest.raises(KeyboardInterrupt), interrupts.evaluation():
            pass  # a pending request stops the next evaluation before it starts
    fresh = workers.Interrupts()
    with fresh.installed():
        with pytest.raises(KeyboardInterrupt), fresh.evaluation():
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # the second one, outside: at once too
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_a_journal_search_does_not_import_the_database_driver_layer() -> None:
    """SQLAlchemy (about 0.1 s to import) is loaded only when a database is opened."""
    code = ("import sys, backtest.optimize.search, backtest.optimize.workers; "
            "print('sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
