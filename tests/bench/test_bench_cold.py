"""Cold processes: ``crashbt run`` of the demo config and ``crashbt --help``, after install
(kernels cached by ``python -m backtest.warmup``). Each round is a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import record

ROOT = Path(__file__).resolve().parents[2]
CRASHBT = str(Path(sys.executable).with_name("crashbt"))


def run(*args: str) -> None:
    subprocess.run([CRASHBT, *args], cwd=ROOT, check=True, capture_output=True, timeout=120)


def test_cold_run_demo(benchmark, tmp_path) -> None:
    run("run", "configs/break_below_74k.toml", "--out", str(tmp_path / "warm"))  # page cache
    benchmark.pedantic(run, args=("run", "configs/break_below_74k.toml", "--out",
                                  str(tmp_path / "out")), rounds=3, iterations=1)
    stats = benchmark.stats.stats
    record(kind="cold", command="crashbt run configs/break_below_74k.toml",
           median_s=stats.median, min_s=stats.min)
    assert (tmp_path / "out").is_dir()


def test_cold_help(benchmark) -> None:
    benchmark.pedantic(run, args=("--help",), rounds=5, iterations=1)
    stats = benchmark.stats.stats
    record(kind="cold", command="crashbt --help", median_s=stats.median, min_s=stats.min)
    assert stats.median > 0


def test_bundled_1h_load(benchmark) -> None:
    """Loading the bundled 1h bars (72,866 rows, the cached Parquet path); was a unit-test
    timing assertion (< 0.5 s), a measurement now: timing belongs to the benchmarks."""
    from backtest.config.data import DataConfig
    from backtest.data.bars import load_bars

    bars, _info = benchmark.pedantic(load_bars, args=(DataConfig(dataset="btcusdt_1h"),),
                                     rounds=5, iterations=1, warmup_rounds=1)
    stats = benchmark.stats.stats
    record(kind="load", command="load_bars(btcusdt_1h)", median_s=stats.median, min_s=stats.min)
    assert len(bars) == 72866
