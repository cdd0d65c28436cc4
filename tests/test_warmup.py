"""JIT compilation stays off the user's path: after ``python -m backtest.warmup`` (which
``make`` runs at install) into an empty numba cache, the commands a user runs on the shipped
configs compile nothing (numba's ``numba:compile`` event fires only on a cache miss)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

USER_COMMANDS = """
import json, sys
from numba.core import event
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
from backtest.cli import main
out = sys.argv[1]
main(["run", "configs/break_below_74k.toml", "--out", out])
main(["run", "configs/demo_feb_2026.toml", "--out", out])
main(["run", "configs/break_below_74k_perp.toml", "--out", out])
main(["optimize", "configs/optimize_reclaim_ath.toml", "--trials", "4", "--out", out])
main(["stress", "configs/stress_perp_3x.toml", "--paths", "3", "--out", out])
main(["events", "configs/events_seed_claims.toml", "--out", out])
print(json.dumps(compiled))
"""


def test_nothing_compiles_on_a_user_path_after_the_warm_up(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    subprocess.run([sys.executable, "-m", "backtest.warmup"], cwd=ROOT, env=env, check=True,
                   timeout=900)
    assert any((tmp_path / "numba-cache").rglob("*.nbi"))  # the warm-up filled the empty cache
    done = subprocess.run([sys.executable, "-c", USER_COMMANDS, str(tmp_path / "out")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
