"""What a command does not load (the strategies it does not run, pydantic's plugin scan) and
the console script's collector settings.

A cold ``crashbt run`` pays for every module it imports and every scan it makes before the
engine starts; these tests pin the deferrals (a subprocess reads ``sys.modules`` after a real
run, as tests/test_optimize.py does for SQLAlchemy).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import strategies

ROOT = Path(__file__).resolve().parents[1]


def last_line_of(probe: str) -> str:
    """The last line ``probe`` prints, run by a fresh interpreter on this checkout."""
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_help_imports_neither_pandas_nor_numba() -> None:
    probe = ("import sys\nfrom backtest.cli import main\nassert main(['--help']) == 0\n"
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'numba', "
             "'numpy', 'pyarrow', 'vectorbt'})\nprint(','.join(heavy) or 'none')\n")
    assert last_line_of(probe) == "none"


def test_a_run_imports_only_its_strategy_and_scans_no_plugins(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from backtest.cli import main\n"
        f"code = main(['run', 'configs/break_below_74k.toml', '--out', {str(tmp_path)!r}])\n"
        "import pydantic.plugin._loader as loader\n"
        "print(code, sorted(m for m in sys.modules if m.startswith('strategies.')),\n"
        "      loader._plugins is None)\n")
    # pydantic's entry-point scan fills loader._plugins; disabled, it is never run
    assert last_line_of(probe) == "0 ['strategies.break_below_74k'] True"


def test_the_registry_lists_every_strategy_module_under_its_spec_name() -> None:
    modules = {p.stem for p in (ROOT / "strategies").glob("*.py") if p.stem != "__init__"}
    assert set(strategies.NAMES) == modules
    assert list(strategies.REGISTRY) == list(strategies.NAMES)
    for name, spec in strategies.REGISTRY.items():
        assert spec.name == name
        assert strategies.get(name) is spec


def test_the_console_script_runs_main_with_a_quiet_collector(tmp_path: Path) -> None:
    """``crashbt`` (``entry``) raises the young-generation threshold for the command, keeps the
    older ones, and freezes the heap when the command returns; ``main`` alone, as tests call
    it, leaves the collector as it found it."""
    probe = (
        "import gc\n"
        "from backtest.cli import entry, main, YOUNG_GC_THRESHOLD\n"
        "default = gc.get_threshold()\n"
        "assert main(['strategies']) == 0 and gc.get_threshold() == default\n"
        "assert gc.get_freeze_count() == 0\n"
        f"code = entry(['run', 'configs/break_below_74k.toml', '--out', {str(tmp_path)!r}])\n"
        "print(code, gc.get_threshold() == (YOUNG_GC_THRESHOLD, *default[1:]),\n"
        "      gc.get_freeze_count() > 10_000)\n")
    assert last_line_of(probe) == "0 True True"
    assert (next(tmp_path.iterdir()) / "report.json").is_file()


def test_a_search_request_and_its_inputs_need_no_optuna() -> None:
    """``crashbt optimize`` loads the bars on a thread while optuna imports: the request and
    the input builder must not import it themselves (else nothing overlaps)."""
    probe = ("import sys\n"
             "from backtest.optimize.request import inputs_loading, request_from_cli\n"
             "req = request_from_cli('configs/optimize_break_below.toml', [])\n"
             "with inputs_loading(req) as inputs:\n"
             "    bars = len(inputs.result().bars)\n"
             "print(bars, any(m.split('.')[0] == 'optuna' for m in sys.modules))\n")
    assert last_line_of(probe) == "18264 False"
