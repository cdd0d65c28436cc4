"""Scoring parameter sets: features (cached), signals, the engine on every fold range (one
batched kernel call for many sets, :mod:`backtest.engine.batch`), and the in-sample /
out-of-sample metrics and return statistics a trial stores, computed from the engine's arrays
(no trade or order frame). The inputs (run range, history, external series, funding) come from
:func:`backtest.inputs.prepare`, as for a run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from backtest import catalogue
from backtest.config.common import iso, parse_utc
from backtest.config.optimize import ConstraintSpec, OptimizeConfig, ValidationSpec
from backtest.config.run import RunConfig
from backtest.data import regimes
from backtest.engine.batch import RangeEngine, RangeRuns
from backtest.errors import ConfigError, StrategyError, UserError
from backtest.features import levels
from backtest.inputs import RunInputs, prepare
from backtest.metrics import overfit
from backtest.metrics import performance as metrics
from backtest.optimize import splits
from backtest.strategy.contract import StrategySpec
from backtest.types import Signals

# where a search's time goes (Evaluator.clock): the strategy's features and signals, the
# engine, crashbt's metrics and fold statistics; "search" is the whole loop of one worker, so
# search minus the rest is Optuna's sampler, its storage and crashbt's trial bookkeeping
PHASES = ("search", "features", "signals", "simulation", "metrics")
#: bytes of signals and engine output (equity and position of every range) one kernel call may
#: hold (RangeEngine.columns_per_call)
BATCH_BYTES = 64 * 2**20



class FeatureCache:
    """Features per distinct value of the parameters the feature function actually reads.

    The first call records which attributes of ``params`` are read; a later call with equal
    values for those attributes reuses the frame (features are pure functions of their inputs).
    """

    def __init__(self, spec: StrategySpec, size: int = 32) -> None:
        self.spec, self.size = spec, size
        self.entries: list[tuple[dict[str, Any], pd.DataFrame]] = []
        self.hits = 0

    def get(self, bars: pd.DataFrame, params: Any,
            context: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        for key, frame in self.entries:
            if all(getattr(params, k) == v for k, v in key.items()):
                self.hits += 1
                return frame
        recorder = _ReadRecorder(params)
        try:
            frame = self.spec.features(bars, recorder, context)
            read = recorder.read
        except UserError:
            raise
        except Exception:  # a feature function that needs the real dataclass: key on everything
            frame = self.spec.features(bars, params, context)
            read = {f.name for f in dataclasses.fields(params)}
        key = {k: getattr(params, k) for k in read}
        self.entries = [*self.entries, (key, frame)][-self.size:]  # the newest ``size``
        return frame



class _ReadRecorder:
    """Stands in for a Params object and remembers which attributes were read."""

    def __init__(self, params: Any) -> None:
        self._params = params
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._params, name)
        self.read.add(name)
        return value



_STAT_FIELDS = tuple(f.name for f in dataclasses.fields(overfit.ReturnStats))

#: Ratios that say nothing about a range without a trade: None there (not 0.0), left out of means
NEEDS_TRADES = ("sharpe", "sortino", "calmar", "profit_factor", "win_rate_pct")


def _metric_rows(table: np.ndarray) -> list[list[dict[str, float | None]]]:
    """Per column, the rows of a (columns, rows, ``catalogue.METRIC_KEYS``) table of metric
    means (NaN: undefined) as dicts with None for an undefined metric."""
    return [[dict(zip(catalogue.METRIC_KEYS, [None if v != v else v for v in row], strict=True))
             for row in column] for column in table.tolist()]


def _groups(members: Sequence[Sequence[int]]) -> np.ndarray:
    """Index lists as one array, -1 padding the shorter ones (``defined_means``' groups)."""
    out = np.full((len(members), max(map(len, members), default=0) or 1), -1, dtype=np.int64)
    for g, rows in enumerate(members):
        out[g, :len(rows)] = rows
    return out



class Evaluator:
    """Loads the bars once and scores parameter sets on every fold (one per process)."""

    def __init__(self, cfg: RunConfig, opt: OptimizeConfig, spec: StrategySpec,
                 source: str, inputs: RunInputs | None = None) -> None:
        self.cfg, self.opt, self.spec, self.source = cfg, opt, spec, source
        # the inputs every command builds: run range (data.window too), warm-up history,
        # config-relative paths, external series, funding of a perp run
        self.inputs = inputs or prepare(cfg, spec, source)
        self.bars = self.inputs.bars
        n = len(self.bars)
        try:
            self.folds = build_folds(opt.validation, self.bars.index, source)
            self.blocks = splits.blocks(n, opt.cscv_blocks)
        except ValueError as exc:
            raise ConfigError(f"{source}: optimize.validation: expected {exc}") from None
        self.scored = set(splits.distinct_ranges(self.folds))  # ranges whose metrics count
        self.whole = (0, n)  # the range whose returns feed the DSR/PBO
        self.ranges = sorted({*self.scored, self.whole})
        # the scored ranges (rows of the metrics table), and each fold's train / test rows
        self.scored_at = np.array([r for r, rows in enumerate(self.ranges)
                                   if rows in self.scored], dtype=np.int64)
        row_of = {self.ranges[r]: j for j, r in enumerate(self.scored_at)}
        self.train_rows = _groups([[row_of[r] for r in f.train] for f in self.folds])
        self.test_rows = _groups([[row_of[r] for r in f.test] for f in self.folds])
        self.all_folds = _groups([range(len(self.folds))])
        self.engine = RangeEngine(self.inputs.history, self.inputs.first, self.ranges,
                                  cfg.execution, self.inputs.freq, self.inputs.funding)
        self.features = FeatureCache(spec)
        self.clock = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to ``self.clock[phase]`` (see PHASES)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.clock[phase] += time.perf_counter() - start

    def signals(self, values: Mapping[str, Any]) -> Signals:
        """Signals of one parameter set on the whole history (features from the cache)."""
        inp = self.inputs
        params = self.spec.make_params(values, self.source)
        with self.timed("features"):
            feats = self.features.get(inp.history, params, inp.context)
        with self.timed("signals"):
            return inp.signals(params, feats)

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Fold metrics, objective and constraint values, and return statistics of one set
        (:meth:`evaluate_many` of one set; raises its StrategyError)."""
        scored = self.evaluate_many([values])[0]
        if isinstance(scored, StrategyError):
            raise scored
        return scored

    def evaluate_many(self, sets: Sequence[Mapping[str, Any]]
                      ) -> list[dict[str, Any] | StrategyError]:
        """Scores of each set, in order; an invalid set (``StrategyError``) yields its error in
        its slot instead of stopping the batch.

        Signals per set (features from the cache), then the engine over every (set, range) in
        one kernel call per chunk of sets (no trade or order frame is built), then the metrics
        from its arrays. Chunks keep the signals and the kernel's output near ``BATCH_BYTES``.
        """
        out: list[dict[str, Any] | StrategyError] = []
        step = self.engine.columns_per_call(BATCH_BYTES)
        with levels.unchanged(self.inputs.history):  # the sets' signals read its prices once
            for start in range(0, len(sets), step):
                out.extend(self._evaluate_chunk(sets[start:start + step]))
        return out

    def _evaluate_chunk(self, sets: Sequence[Mapping[str, Any]]
                        ) -> list[dict[str, Any] | StrategyError]:
        """One kernel call for the sets whose signals could be built."""
        errors: dict[int, StrategyError] = {}
        columns: dict[int, Signals] = {}
        for slot, values in enumerate(sets):
            try:
                columns[slot] = self.signals(values)
                self.engine.check(columns[slot])
            except StrategyError as exc:
                columns.pop(slot, None)
                errors[slot] = exc
        scores: dict[int, dict[str, Any]] = {}
        if columns:
            with self.timed("simulation"):
                runs = self.engine.run(list(columns.values()))
            with self.timed("metrics"):
                scores = dict(zip(columns, self._score(runs), strict=True))
        return [scores[slot] if slot in scores else errors[slot] for slot in range(len(sets))]

    def _score(self, runs: RangeRuns) -> list[dict[str, Any]]:
        """Each column's fold rows (in-sample, out-of-sample, each with its trade count), their
        means over the folds that define each metric, objectives, constraint violations and
        return statistics; the metrics of every (column, scored range) and their fold means in
        one kernel call each (:func:`backtest.metrics.performance.range_metrics`).

        An objective undefined on every fold (no trade anywhere in-sample) makes the trial
        infeasible: its listed name is in ``undefined`` and its value is a placeholder 0.0.
        A fold's ``n_trades`` is the sum over its parts (a crash fold's training windows); the
        means over folds take its mean, like every other metric.
        """
        init_cash = float(self.cfg.execution.init_cash)
        table = metrics.range_metrics(runs.equity, runs.position, runs.at, runs.totals,
                                      self.scored_at, init_cash, self.inputs.freq,
                                      NEEDS_TRADES)
        is_folds = metrics.defined_means(table, self.train_rows, "n_trades")
        is_means = metrics.defined_means(is_folds, self.all_folds)
        has_oos = all(f.test for f in self.folds)
        oos_folds = metrics.defined_means(table, self.test_rows, "n_trades")
        oos_means = metrics.defined_means(oos_folds, self.all_folds)
        whole = self.ranges.index(self.whole)
        # every column's returns over the whole range, one row each: the block sums of all
        # columns in one pass per block (each row's sums are those of its own 1-d array)
        full_returns = np.stack([metrics.bar_returns(runs.curve(c, whole)[0], init_cash)
                                 for c in range(len(table))])
        blocks = overfit.block_sums(full_returns.T, self.blocks).transpose(2, 0, 1)
        rows = zip(_metric_rows(is_folds), _metric_rows(oos_folds), _metric_rows(is_means),
                   _metric_rows(oos_means), full_returns, blocks.tolist(), strict=True)
        out = []
        for is_rows, oos_rows, (is_mean,), (oos_mean,), returns, block_rows in rows:
            folds = [{"name": f.name, "is": is_rows[k], "oos": oos_rows[k] if f.test else None}
                     for k, f in enumerate(self.folds)]
            stats = overfit.return_stats(returns)
            out.append({
                "folds": folds,
                "is_mean": is_mean,
                "oos_mean": oos_mean if has_oos else None,
                "objectives": [is_mean[o.metric] or 0.0 for o in self.opt.objectives],
                "undefined": [o.metric for o in self.opt.objectives if is_mean[o.metric] is None],
                "constraints": [violation(con, is_mean) for con in self.opt.constraints],
                "full_stats": {f: getattr(stats, f) for f in _STAT_FIELDS},  # asdict, shallow
                "blocks": block_rows,
            })
        return out

    def describe_folds(self) -> list[dict[str, Any]]:
        """Folds as dated ranges (inclusive bar open times) for the report."""
        idx = self.bars.index

        def dated(ranges: Sequence[splits.Range]) -> list[list[str]]:
            return [[iso(idx[a]), iso(idx[b - 1])] for a, b in ranges]

        return [{"name": f.name, "train": dated(f.train), "test": dated(f.test)}
                for f in self.folds]



def violation(constraint: ConstraintSpec, values: Mapping[str, Any]) -> float:
    """Optuna's constraint value (<= 0 feasible); a metric undefined here violates it."""
    observed = values.get(constraint.metric)
    return 1.0 if observed is None else constraint.violation(observed)



def build_folds(validation: ValidationSpec, index: pd.DatetimeIndex,
                source: str) -> list[splits.Fold]:
    """Folds over the simulated bars from ``[optimize.validation]`` (ValueError if impossible)."""
    n = len(index)
    if validation.kind == "none":
        return splits.whole(n)
    if validation.kind in ("walk_forward", "anchored"):
        return splits.walk_forward(n, validation.folds, validation.train_frac,
                                   anchored=validation.kind == "anchored")
    return splits.crash_folds(index, _windows(validation.windows, source))



def _windows(items: Sequence[Any], source: str) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    out = []
    for i, item in enumerate(items):
        where = f"{source}: optimize.validation.windows.{i}"
        if isinstance(item, str):
            named = regimes.window(item, where)
            out.append((item, named.start, named.end))
            continue
        if len(item) != 2:
            raise ConfigError(f"{where}: expected a window name or [start, end], found {item!r}")
        try:
            start, end = (pd.Timestamp(parse_utc(v)) for v in item)
        except ValueError:
            raise ConfigError(f"{where}: expected ISO-8601 dates, found {item!r}") from None
        out.append((f"{start:%Y-%m-%d}", start, end))
    return out
