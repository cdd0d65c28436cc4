"""One sweep measurement in a fresh process, so its peak RSS is its own.

Usage: ``python tests/bench/measure.py <method> <bars> <sets>``; prints one JSON object:
seconds (best of the timed runs, after an untimed warm-up on a small slice that loads the
cached kernels), evaluations per second, peak RSS of the process and the RSS before the
sweep (imports + data), and the total entry count (to check that methods agree).
Methods: crashbt_fused (sweep.sma_cross_sweep), crashbt_columns
(sweep.sma_cross_columns: 2-D signals + kernels.simulate_columns_nb, chunked),
vbt_rust (vectorbt broadcasting), numba_ceiling (tests/bench/peers.numba_sweep).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import peers  # noqa: E402
from synth import make_bars  # noqa: E402


def windows(sets: int) -> np.ndarray:
    """``sets`` SMA windows spread over 20..2000 bars (the baseline's range)."""
    return np.linspace(20, 2000, sets).round().astype(np.int64)


def runner(method: str, bars, w: np.ndarray) -> Callable[[], tuple[int, int]]:
    """A zero-argument run of ``method`` over ``bars`` and windows ``w`` -> (total entries,
    windows whose account was wiped out: the engine takes no entry below its dust floor, see
    ``kernels.DUST``; the peers and the fused sweep keep trading a vanishing balance)."""
    import sweep

    from backtest.config.execution import ExecutionConfig

    ex = ExecutionConfig(init_cash=peers.CASH, fee_rate=peers.FEE, fill="close",
                         direction="long")
    o, h, lo, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    if method == "crashbt_fused":
        def fused() -> int:
            out = sweep.sma_cross_sweep(o, c, w, ex, peers.FREQ)
            return int(out["n_trades"].sum()), 0  # n_trades counts a position open at the end

        return fused
    if method == "crashbt_columns":
        def columns() -> tuple[int, int]:
            out = sweep.sma_cross_columns(o, h, lo, c, w, ex)
            return int(out["n_trades"].sum()), int((out["final_equity"] == 0.0).sum())

        return columns
    if method == "vbt_rust":
        close = peers.naive(bars)
        return lambda: (int(peers.vbt_sweep(close, w)[0].sum()), 0)
    if method == "numba_ceiling":
        return lambda: (int(peers.numba_sweep(c, w, peers.FEE, peers.CASH)[0].sum()), 0)
    raise SystemExit(f"unknown method {method}")


def rss_mib() -> float:
    """Peak RSS of this process so far: VmHWM, because Linux carries ru_maxrss over from the
    parent across fork + exec (a child of a big pytest process would report the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(method: str, n_bars: int, sets: int) -> dict:
    bars = make_bars(n_bars)
    w = windows(sets)
    runner(method, bars.iloc[:5000], w[:2])()  # warm-up: load cached kernels, not timed
    before = rss_mib()
    run = runner(method, bars, w)
    repeats = 2 if n_bars * sets <= 10**8 and method != "vbt_rust" else 1
    best, entries, wiped = float("inf"), 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        entries, wiped = run()
        best = min(best, time.perf_counter() - start)
    return {"method": method, "bars": n_bars, "sets": sets, "seconds": best,
            "evals_per_s": n_bars * sets / best, "peak_rss_mib": rss_mib(),
            "rss_before_mib": before, "entries": entries, "wiped_out": wiped}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
