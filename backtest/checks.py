"""Look-ahead and warm-up checks: does a strategy use the future, and how much history does it need?

:func:`lookahead` computes a strategy's features and signals on the inputs every command uses
(:func:`backtest.inputs.prepare`: bars up to the run's end, every external series as loaded for
the config), then again on
many truncations. A truncation at bar ``k`` keeps ``bars[:k+1]`` and, of every external series,
only the rows that were TRULY public at that bar's close: row timestamp + the publication lag of
the manifest (bundled series) or of :data:`backtest.data.external.KINDS` (user files), never the
config's override. A value that changes when the future is removed is look-ahead, so this also
catches a config that sets ``lag = "0s"`` and a strategy that reads a series on its own timestamp.
Cut points: evenly spread over the run range, a few seeded random ones, and a few just after the
start of the history (a back-filled warm-up value is a value taken from the future, so those
cuts catch ``bfill`` placeholders).

:func:`warmup` restarts the history 0, 30, 90, 365 ... days before the run start (bars and
external rows alike, as if all data began then) and counts the run-range bars whose signals
differ from those computed on the full history. It also lists warm-up zero placeholders: a float
feature that is exactly 0.0 before its first non-zero value in the shortened history while the
full history gives something else there (the signature of ``ta``'s ``fillna`` or a zero-filled
ATR; an honest indicator without enough data is NaN).

``crashbt check lookahead`` exits 0 when clean and 3 when look-ahead was found (2 stays a user
error). Sits at the pipeline's layer: imports backtest.inputs, data, external; never optuna,
vectorbt, ta or ``strategies`` (the spec is passed in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.run import RunConfig
from backtest.data import external
from backtest.data import files as data_files
from backtest.inputs import RunInputs, prepare
from backtest.strategy.contract import StrategySpec
from backtest.types import Bars, Signals

#: Relative tolerance for "the same float" (values from identical arithmetic are usually equal).
RTOL = 1e-9
#: Cuts this many bars after the start of the history (warm-up back-fill shows up there).
EARLY_CUTS = (20, 50, 100, 200)
#: Days of history before the run start tried by :func:`warmup` (plus the full history).
WARMUP_DAYS = (0, 30, 90, 365)
SIGNAL_FIELDS = ("long_entries", "long_exits", "short_entries", "short_exits", "stop_price",
                 "target_price", "entry_fraction")


@dataclass(frozen=True)
class Offence:
    """One value that depends on the future (or, in :func:`warmup`, on a placeholder)."""

    bar: pd.Timestamp
    column: str
    full: Any
    truncated: Any
    cut: pd.Timestamp


@dataclass(frozen=True)
class LookaheadReport:
    """Every (bar, column) that changed when the future was removed, earliest bar first."""

    strategy: str
    cuts: tuple[pd.Timestamp, ...]
    columns: tuple[str, ...]
    offences: tuple[Offence, ...]

    @property
    def clean(self) -> bool:
        return not self.offences

    def by_column(self) -> dict[str, list[Offence]]:
        out: dict[str, list[Offence]] = {}
        for offence in self.offences:
            out.setdefault(offence.column, []).append(offence)
        return out


@dataclass(frozen=True)
class WarmupRow:
    """Signals in the run range with history from ``history_start`` vs the full history."""

    days: int | None
    history_start: pd.Timestamp
    bars: int
    differing: int
    first_agreeing: pd.Timestamp | None
    zero_placeholders: tuple[Offence, ...]


@dataclass(frozen=True)
class WarmupReport:
    strategy: str
    run_start: pd.Timestamp
    run_end: pd.Timestamp
    rows: tuple[WarmupRow, ...]


# --- inputs and one evaluation ---------------------------------------------------------------

def true_lags(inp: RunInputs) -> dict[str, pd.Timedelta]:
    """The true publication lag of every external series of ``inp`` (see :func:`true_lag`)."""
    return {kind: true_lag(inp.cfg, kind, frame) for kind, frame in inp.context.items()}


def true_lag(cfg: RunConfig, kind: str, frame: pd.DataFrame) -> pd.Timedelta:
    """The publication lag of the source itself: manifest for bundled series, KINDS for files."""
    override = cfg.external.get(kind)
    if override is not None and override.path is not None:
        lag = external.KINDS[kind].default_lag
    else:
        lag = data_files.manifest()[frame.attrs["name"]]["publish_lag"]
    return external.parse_lag(lag, f"external {frame.attrs.get('name', kind)}: lag")


def evaluate(spec: StrategySpec, params: Any, bars: Bars,
             context: Mapping[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Features and signals of one run as named arrays: ``feature:<col>``, ``signal:<field>``."""
    feats = spec.features(bars, params, context)
    sigs: Signals = spec.signals(bars, feats, params)
    out = {f"feature:{c}": feats[c].to_numpy() for c in feats.columns}
    for name in SIGNAL_FIELDS:
        series = getattr(sigs, name)
        if series is not None:
            out[f"signal:{name}"] = series.to_numpy()
    return out


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise "unchanged": NaN == NaN, floats within :data:`RTOL` relative."""
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        x, y = a.astype("float64"), b.astype("float64")
        with np.errstate(invalid="ignore"):
            near = np.abs(x - y) <= RTOL * np.maximum(np.abs(x), np.abs(y))
        return (x == y) | near | (np.isnan(x) & np.isnan(y))
    x, y = pd.Series(a, dtype=object), pd.Series(b, dtype=object)
    return ((x == y) | (x.isna() & y.isna())).to_numpy(dtype=bool)


def _at(values: np.ndarray | None, row: int) -> Any:
    if values is None:
        return "missing"
    value = values[row]
    return value.item() if isinstance(value, np.generic) else value


def _diff(full: Mapping[str, np.ndarray], part: Mapping[str, np.ndarray],
          index: pd.DatetimeIndex, size: int, cut: pd.Timestamp) -> list[Offence]:
    """Offences where ``part`` (on the first ``size`` bars) differs from ``full`` there; a column
    missing from either side (or of the wrong length) differs on every bar."""
    found = []
    for column in sorted(full.keys() | part.keys()):
        a, b = full.get(column), part.get(column)
        if a is None or b is None or len(b) != size:
            bad, b = np.arange(size), None
        else:
            bad = np.flatnonzero(~same(a[:size], b))
        found.extend(Offence(index[i], column, _at(a, i), _at(b, i), cut) for i in bad)
    return found


def _dedupe(offences: Iterable[Offence]) -> tuple[Offence, ...]:
    """One offence per (bar, column), the first found, sorted by bar then column."""
    seen: dict[tuple[pd.Timestamp, str], Offence] = {}
    for offence in offences:
        seen.setdefault((offence.bar, offence.column), offence)
    return tuple(sorted(seen.values(), key=lambda o: (o.bar, o.column)))


# --- look-ahead --------------------------------------------------------------------------------

def cut_positions(index: pd.DatetimeIndex, run_start: pd.Timestamp, cuts: int,
                  seed: int = 0) -> np.ndarray:
    """Bar positions to cut at: ~4/5 evenly over the run range, the rest seeded random there,
    plus :data:`EARLY_CUTS` after the history start. The last bar (no future) is never a cut,
    and no cut keeps fewer than ``EARLY_CUTS[0] + 1`` bars (bar-clock inference needs a few)."""
    first = max(int(index.searchsorted(run_start)), EARLY_CUTS[0])
    last = len(index) - 2
    if last < 0:
        return np.array([], dtype=int)
    first = min(first, last)
    even = np.linspace(first, last, num=max(cuts - cuts // 5, 1)).round().astype(int)
    rng = np.random.default_rng(seed)
    random = rng.integers(first, last + 1, size=cuts // 5)
    early = np.array([p for p in EARLY_CUTS if p <= last], dtype=int)
    return np.unique(np.concatenate([even, random, early]))


def truncate_context(context: Mapping[str, pd.DataFrame], lags: Mapping[str, pd.Timedelta],
                     close: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Each series' rows with timestamp + true lag <= ``close`` (truly public by then)."""
    out = {}
    for kind, frame in context.items():
        rows = int(frame.index.searchsorted(close - lags[kind], side="right"))
        part = frame.iloc[:rows]
        part.attrs = dict(frame.attrs)
        out[kind] = part
    return out


def lookahead(cfg: RunConfig, spec: StrategySpec, source: str, cuts: int = 30,
              seed: int = 0, inputs: RunInputs | None = None) -> LookaheadReport:
    """Compare features and signals on the full history with ``cuts`` truncations of it."""
    inp = inputs or prepare(cfg, spec, source)
    index = inp.history.index
    lags = true_lags(inp)
    full = evaluate(spec, inp.params, inp.history, inp.context)
    offences: list[Offence] = []
    positions = cut_positions(index, inp.run_start, cuts, seed)
    for k in positions:
        cut = index[k]
        part = evaluate(spec, inp.params, inp.history.iloc[:k + 1],
                        truncate_context(inp.context, lags, cut + inp.bar_duration))
        offences.extend(_diff(full, part, index, k + 1, cut))
    return LookaheadReport(strategy=spec.name, cuts=tuple(index[positions]),
                           columns=tuple(sorted(full)), offences=_dedupe(offences))


# --- warm-up -----------------------------------------------------------------------------------

def zero_placeholders(full: Mapping[str, np.ndarray], short: Mapping[str, np.ndarray],
                      index: pd.DatetimeIndex, offset: int) -> list[Offence]:
    """Float features exactly 0.0 before their first non-zero finite value in ``short`` (on
    ``index[offset:]``) where ``full`` holds something else on that bar (non-zero or NaN)."""
    found = []
    for column, values in short.items():
        if not column.startswith("feature:") or values.dtype.kind != "f" or column not in full:
            continue
        real = np.flatnonzero(np.isfinite(values) & (values != 0.0))
        head = real[0] if real.size else len(values)
        reference = full[column][offset:offset + head]
        bad = np.flatnonzero((values[:head] == 0.0) & ~(reference == 0.0))
        found.extend(Offence(index[offset + i], column, _at(reference, i), 0.0,
                             index[offset]) for i in bad)
    return found


def trim_context(context: Mapping[str, pd.DataFrame],
                 start: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Each series' rows with timestamp >= ``start`` (as if the data began there)."""
    out = {}
    for kind, frame in context.items():
        part = frame.iloc[int(frame.index.searchsorted(start)):]
        part.attrs = dict(frame.attrs)
        out[kind] = part
    return out


def warmup(cfg: RunConfig, spec: StrategySpec, source: str, extra: Sequence[int] = (),
           inputs: RunInputs | None = None) -> WarmupReport:
    """Signals on the run range with history starting ``days`` before it vs the full history."""
    inp = inputs or prepare(cfg, spec, source)
    index = inp.history.index
    run = slice(inp.first, len(index))
    full = evaluate(spec, inp.params, inp.history, inp.context)
    signal_cols = [c for c in full if c.startswith("signal:")]
    rows = []
    for days in sorted({*WARMUP_DAYS, *extra}):
        begin = max(inp.run_start - pd.Timedelta(days=days), index[0])
        offset = int(index.searchsorted(begin))
        short = evaluate(spec, inp.params, inp.history.iloc[offset:],
                         trim_context(inp.context, begin))
        differs = np.zeros(run.stop - run.start, dtype=bool)
        for column in signal_cols:
            values = short.get(column)
            if values is None:
                differs[:] = True
                continue
            differs |= ~same(full[column][run], values[run.start - offset:])
        bad = np.flatnonzero(differs)
        agree_from = run.start + (bad[-1] + 1 if bad.size else 0)
        rows.append(WarmupRow(
            days=days, history_start=index[offset], bars=len(index) - offset,
            differing=int(bad.size),
            first_agreeing=index[agree_from] if agree_from < len(index) else None,
            zero_placeholders=_dedupe(zero_placeholders(full, short, index, offset))))
    return WarmupReport(strategy=spec.name, run_start=index[run.start], run_end=inp.run_end,
                        rows=tuple(rows))


# --- rendering ---------------------------------------------------------------------------------

def _ts(moment: pd.Timestamp | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _value(value: Any) -> str:
    return f"{value:.10g}" if isinstance(value, float) else repr(value)


def render_lookahead(rep: LookaheadReport, limit: int = 20) -> str:
    """Plain text: verdict, then per column its first offending bar, then the first offences."""
    head = (f"lookahead {rep.strategy}: {len(rep.cuts)} cuts "
            f"{_ts(rep.cuts[0]) if rep.cuts else '-'} .. {_ts(rep.cuts[-1]) if rep.cuts else '-'},"
            f" {len(rep.columns)} columns")
    if rep.clean:
        return f"{head}\nOK: no value changes when the future is removed"
    lines = [head, f"LOOK-AHEAD: {len(rep.offences)} (bar, column) values change when the "
                   "future is removed"]
    for column, items in rep.by_column().items():
        first = items[0]
        lines.append(f"  {column}: {len(items)} bars, first {_ts(first.bar)}: full "
                     f"{_value(first.full)} vs truncated {_value(first.truncated)} "
                     f"(cut at {_ts(first.cut)})")
    lines.append(f"first {min(limit, len(rep.offences))} offences (bar, column, full, truncated):")
    lines.extend(f"  {_ts(o.bar)}  {o.column}  {_value(o.full)}  {_value(o.truncated)}"
                 for o in rep.offences[:limit])
    return "\n".join(lines)


def render_warmup(rep: WarmupReport) -> str:
    """Plain text: one line per history setting, then any zero placeholders."""
    lines = [f"warmup {rep.strategy}: run {_ts(rep.run_start)} .. {_ts(rep.run_end)}; signals "
             "vs the full history",
             f"  {'days before':>11}  {'history from':<16}  {'bars':>7}  {'differing':>9}  "
             "agree from"]
    for row in rep.rows:
        lines.append(f"  {row.days:>11}  {_ts(row.history_start):<16}  {row.bars:>7}  "
                     f"{row.differing:>9}  {_ts(row.first_agreeing)}")
    for row in rep.rows:
        for o in row.zero_placeholders[:5]:
            lines.append(f"  zero placeholder ({row.days} days): {_ts(o.bar)} {o.column} = 0.0, "
                         f"full history {_value(o.full)}")
    return "\n".join(lines)
