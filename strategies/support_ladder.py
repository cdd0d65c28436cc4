"""support_ladder: accumulate in tranches at a ladder of supports; compare with lump-sum and DCA.

Four rungs, each a price level given by ``mode``: ``"absolute"`` (``level_1..4``, default
70,000 / 68,000 / 60,000 / 50,000 from the February 2026 articles), ``"ath_fraction"``
(``ath_1..4`` x the running all-time high known at the bar) or ``"ema_200w"`` (``ema_1..4`` x the
EMA of ``ema_weeks`` weekly closes; 68,356 on 2026-02-01). The ladder is active from the first
bar opening at or after ``start`` (ISO date; empty = the first bar the strategy sees): set it to
the run's start, because a bid placed in 2018 is not a bid placed in 2026. ``start`` is fixed
(a date, not searched).

Each rung buys ONCE: on the first active bar whose LOW (``touch = "low"``, a resting bid would
have been reached) or CLOSE (``touch = "close"``) is at or below its level. The buy is decided at
that bar's close and fills at the next open (not at the level). A tranche spends at most
``tranche_fraction`` x initial cash (Signals.entry_fraction; the engine caps it by the cash
left), so the ladder never spends more than 4 x ``tranche_fraction`` <= 100% of initial cash;
rungs reached on the same bar are bought together with their summed budget. There is no exit.

:func:`benchmarks` computes lump-sum and dollar-cost-averaging equity over the same active bars
with the same total budget; their summary goes into Signals.notes. Imports only
backtest.types/features and backtest.strategy.contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.features.levels import LEVEL_MODES, anchored, level_series
from backtest.strategy.contract import Choice, FloatRange, IntRange, StrategySpec
from backtest.types import Bars, Signals

RUNGS = (1, 2, 3, 4)
#: the Params prefix of the rung values read in each level mode
PREFIX = {"absolute": "level", "ath_fraction": "ath", "ema_200w": "ema"}
#: fee assumed for the benchmark figures in Signals.notes (signals do not see the run's fee)
NOTES_FEE_RATE = 0.001


@dataclass(frozen=True)
class Params:
    mode: str = "absolute"
    level_1: float = 70_000.0
    level_2: float = 68_000.0
    level_3: float = 60_000.0
    level_4: float = 50_000.0
    ath_1: float = 0.555
    ath_2: float = 0.539
    ath_3: float = 0.475
    ath_4: float = 0.396
    ema_1: float = 1.02
    ema_2: float = 1.0
    ema_3: float = 0.88
    ema_4: float = 0.73
    ema_weeks: int = 200
    touch: str = "low"
    tranche_fraction: float = 0.25
    start: str = ""
    dca_days: int = 7

    def __post_init__(self) -> None:
        prefix = PREFIX.get(self.mode)
        for i in RUNGS if prefix else ():
            if not getattr(self, f"{prefix}_{i}") > 0:
                raise ValueError(f"{prefix}_{i}: expected a number > 0, found "
                                 f"{getattr(self, f'{prefix}_{i}'):g}")
        if not 0 < self.tranche_fraction <= 0.25:
            raise ValueError(f"tranche_fraction: expected a fraction in (0, 0.25] (four "
                             f"tranches spend at most the cash), found {self.tranche_fraction:g}")
        if self.start:
            pd.Timestamp(self.start)  # ValueError (-> StrategyError) on a bad date


SPACE = {
    "mode": Choice(LEVEL_MODES),
    **{f"level_{i}": FloatRange(10_000.0, 150_000.0) for i in RUNGS},
    **{f"ath_{i}": FloatRange(0.2, 0.95) for i in RUNGS},
    **{f"ema_{i}": FloatRange(0.5, 1.5) for i in RUNGS},
    "ema_weeks": IntRange(50, 250),
    "touch": Choice(("low", "close")),
    "tranche_fraction": FloatRange(0.05, 0.25),
    "dca_days": IntRange(1, 31),
}


def _active(index: pd.DatetimeIndex, start: str) -> np.ndarray:
    if not start:
        return np.ones(len(index), dtype=bool)
    stamp = pd.Timestamp(start)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return np.asarray(index >= (stamp if index.tz is not None else stamp.tz_localize(None)))


def features(bars: Bars, params: Params, context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The four rung levels on the bar clock (``rung_1..4``) and ``active`` (ladder placed)."""
    prefix = PREFIX[params.mode]
    feats = pd.DataFrame({
        f"rung_{i}": level_series(bars, anchored(params.mode, getattr(params, f"{prefix}_{i}"),
                                                 params.ema_weeks))
        for i in RUNGS}, index=bars.index)
    feats["active"] = _active(bars.index, params.start)
    return feats


def tranche_fills(bars: Bars, feats: pd.DataFrame, params: Params) -> pd.DataFrame:
    """One bool column per rung: True on the single bar that buys that rung's tranche."""
    probe = bars["low"] if params.touch == "low" else bars["close"]
    out = {}
    for i in RUNGS:
        reached = feats["active"] & (probe <= feats[f"rung_{i}"])  # NaN level: never reached
        out[f"rung_{i}"] = reached & (reached.cumsum() == 1)
    return pd.DataFrame(out, index=bars.index)


def benchmarks(bars: Bars, params: Params, init_cash: float, fee_rate: float) -> pd.DataFrame:
    """Lump-sum and DCA equity over the ladder's active bars, with the ladder's full budget
    (4 x tranche_fraction x init_cash): lump-sum buys it all at the first active open; DCA buys
    equal parts at the open of the first bar of each ``dca_days``-day period from there."""
    active = bars.loc[_active(bars.index, params.start)]
    budget = len(RUNGS) * params.tranche_fraction * init_cash
    if active.empty:
        return pd.DataFrame({"lump_sum": [], "dca": []}, index=active.index, dtype="float64")
    price = active["open"].to_numpy() * (1.0 + fee_rate)
    close = active["close"].to_numpy()
    lump_units = budget / price[0]
    period = (active.index - active.index[0]) // pd.Timedelta(days=params.dca_days)
    buys = np.r_[True, np.diff(np.asarray(period)) != 0]
    spend = np.where(buys, budget / buys.sum(), 0.0)
    dca_units = np.cumsum(spend / price)
    return pd.DataFrame({
        "lump_sum": init_cash - budget + lump_units * close,
        "dca": init_cash - np.cumsum(spend) + dca_units * close,
        "dca_buy": buys,
    }, index=active.index)


def _pct(final: float, init_cash: float) -> str:
    return f"{100.0 * (final / init_cash - 1.0):.2f}"


def signals(bars: Bars, feats: pd.DataFrame, params: Params) -> Signals:
    """Buy each rung's tranche once; notes carry the lump-sum / DCA comparison."""
    fills = tranche_fills(bars, feats, params)
    entries = fills.any(axis=1).rename("long_entries")
    fraction = (fills.sum(axis=1) * params.tranche_fraction).where(entries).rename(
        "entry_fraction")
    bench = benchmarks(bars, params, 1.0, NOTES_FEE_RATE)
    notes = {"tranches_signalled": f"{int(fills.to_numpy().sum())} of {len(RUNGS)}",
             "budget_pct_of_cash": f"{100.0 * len(RUNGS) * params.tranche_fraction:g}"}
    if not bench.empty:
        notes |= {
            "benchmark_period": f"{bench.index[0]:%Y-%m-%d %H:%M} -> "
                                f"{bench.index[-1]:%Y-%m-%d %H:%M} UTC",
            "benchmark_fee_rate": f"{NOTES_FEE_RATE:g} (assumed)",
            "lump_sum_return_pct": _pct(float(bench["lump_sum"].iloc[-1]), 1.0),
            "dca_return_pct": _pct(float(bench["dca"].iloc[-1]), 1.0),
            "dca_buys": str(int(bench["dca_buy"].sum())),
        }
    last = feats.iloc[-1] if len(feats) else None
    levels = {} if last is None else {f"rung_{i}": float(last[f"rung_{i}"]) for i in RUNGS}
    return Signals(long_entries=entries, long_exits=pd.Series(False, index=bars.index),
                   entry_fraction=fraction, levels=levels, notes=notes)


SPEC = StrategySpec(
    name="support_ladder",
    summary="Accumulate one tranche per support (70k/68k/60k/50k, ATH- or 200w-EMA-relative)",
    params=Params,
    space=SPACE,
    features=features,
    signals=signals,
)
