"""``crashbt optimize``: an Optuna search that resumes, scales out, and measures its overfitting.

* The search space is the strategy's space (plain data in :mod:`strategies.base`), narrowed or
  fixed by the config's ``[optimize.params]``; objectives and constraints name metrics of
  :mod:`backtest.metrics`. Every objective and constraint is the mean over validation folds of
  the IN-SAMPLE metric; out-of-sample metrics are recorded per fold and only reported.
* Storage: by default an Optuna journal file ``<out>/<study>/study.journal`` (no server; several
  local processes may share it; running the same command again resumes). ``--storage URL`` uses
  a database (PostgreSQL for many machines) with heartbeats, and trials of dead workers are
  retried. The study ends with exactly ``trials`` COMPLETE trials over all resumes and workers:
  before evaluating, a trial checks how many lower-numbered trials are complete, running or
  waiting, and steps aside (PRUNED, user attr ``surplus``) when they already make the count.
* Output: ``<out>/<study>/optimization.json`` (trials, best parameters, Pareto front, fold
  metrics, walk-forward out-of-sample results, deflated Sharpe ratio, PBO, in-sample ->
  out-of-sample decay) written atomically, and a full run report of the best parameters.

The only module that imports optuna. Never imports the CLI.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import re
import signal
import socket
import sys
import time
import tomllib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import optuna
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from backtest import data, engine, html, metrics, overfit, pipeline, report, splits
from backtest.config import (
    RunConfig,
    _format_error,
    _load_with_extends,
    _Strict,
    apply_overrides,
    parse_config,
    parse_utc,
    parse_utc_now,
)
from backtest.errors import ConfigError, OutputError, StrategyError, UserError, did_you_mean
from strategies.base import Choice, Dimension, FloatRange, IntRange, StrategySpec

COMPLETE, RUNNING, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                              optuna.trial.TrialState.WAITING)
MINIMIZED = ("max_drawdown_pct", "fees_paid")
TOP_CANDIDATES = 5
WAIT_S = 0.2  # poll interval while other workers finish the last trials
# where a search's time goes (Evaluator.clock): the strategy's features and signals, the
# engine, crashbt's metrics and fold statistics; "search" is the whole loop of one worker, so
# search minus the rest is Optuna's sampler, its storage and crashbt's trial bookkeeping
PHASES = ("search", "features", "signals", "simulation", "metrics")
HEARTBEAT_S, GRACE_S, MAX_RETRY, OPEN_ATTEMPTS = 5, 20, 3, 4

# ---------------------------------------------------------------- config


def _metric_name(value: str) -> str:
    if value not in metrics.METRIC_KEYS:
        raise ValueError(f"a metric name, found {value!r}"
                         f"{did_you_mean(value, metrics.METRIC_KEYS)}")
    return value


class ObjectiveSpec(_Strict):
    """One objective: a metric and its direction (inferred from the name when omitted)."""

    metric: str
    direction: Literal["maximize", "minimize"] | None = None

    _check = field_validator("metric")(_metric_name)

    @property
    def resolved_direction(self) -> str:
        if self.direction is not None:
            return self.direction
        return "minimize" if self.metric in MINIMIZED else "maximize"


class ConstraintSpec(_Strict):
    """A feasibility rule on a mean in-sample metric, e.g. ``n_trades >= 5``."""

    metric: str
    op: Literal[">=", "<="]
    value: float

    _check = field_validator("metric")(_metric_name)

    def violation(self, observed: float) -> float:
        """Optuna's convention: <= 0 is feasible."""
        return self.value - observed if self.op == ">=" else observed - self.value


Scalar = bool | int | float | str


class ParamSpec(_Strict):
    """Narrow one parameter: ``{low, high}``, ``{choices = [...]}`` or ``{fixed = value}``."""

    low: float | None = None
    high: float | None = None
    choices: list[Scalar] | None = None
    fixed: Scalar | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ParamSpec:
        forms = [self.low is not None or self.high is not None, self.choices is not None,
                 self.fixed is not None]
        if sum(forms) != 1 or (forms[0] and (self.low is None or self.high is None)):
            raise ValueError("exactly one of {low, high}, {choices} or {fixed}")
        if forms[0] and self.high < self.low:
            raise ValueError(f"low <= high, found low {self.low:g} and high {self.high:g}")
        if self.choices is not None and not self.choices:
            raise ValueError("at least one choice")
        return self


class ValidationSpec(_Strict):
    """``[optimize.validation]``: how the bars are split into in- and out-of-sample folds."""

    kind: Literal["none", "walk_forward", "anchored", "crash_folds"] = "none"
    folds: int = Field(4, ge=1, le=50)
    train_frac: float = Field(0.7, gt=0.0, lt=1.0)
    windows: list[str | list[str | date | datetime]] = Field(default_factory=list)


class OptimizeConfig(_Strict):
    """``[optimize]``: the search itself."""

    trials: int = Field(100, ge=1, le=1_000_000)
    timeout_s: float | None = Field(None, gt=0)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: [ObjectiveSpec(metric="sharpe")], min_length=1)
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    sampler: Literal["tpe", "nsga2", "random", "grid"] = "tpe"
    seed: int = Field(0, ge=0, le=2**31)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    validation: ValidationSpec = ValidationSpec()
    cscv_blocks: int = Field(10, ge=2, le=16)

    @field_validator("cscv_blocks")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"an even number, found {value}")
        return value

    def search_hash(self) -> str:
        """What defines the search (not how long it runs): a resumed study must match it."""
        fixed = self.model_dump(mode="json", exclude={"trials", "timeout_s", "seed"})
        return report.to_json(fixed)


class _OptimizeFile(_Strict):
    optimize: OptimizeConfig = OptimizeConfig()


def load(path: str | Path, overrides: Sequence[str] = ()) -> tuple[RunConfig, OptimizeConfig]:
    """Read a config with an ``[optimize]`` table; errors name the file and the dotted key."""
    source = str(path)
    raw = _load_with_extends(Path(path))
    if overrides:
        raw = apply_overrides(raw, list(overrides))
    table = {"optimize": raw.pop("optimize")} if "optimize" in raw else {}
    cfg = parse_config(raw, source)
    try:
        opt = _OptimizeFile.model_validate(table).optimize
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc, _OptimizeFile)) from None
    return cfg, opt


# ---------------------------------------------------------------- search space


def search_space(spec: StrategySpec, opt: OptimizeConfig,
                 source: str) -> tuple[dict[str, Dimension], dict[str, Any]]:
    """The dimensions searched and the values fixed by ``[optimize.params]``."""
    known = [f.name for f in dataclasses.fields(spec.params)]
    dims: dict[str, Dimension] = dict(spec.space)
    fixed: dict[str, Any] = {}
    for name, narrow in opt.params.items():
        where = f"{source}: optimize.params.{name}"
        if name not in known:
            raise ConfigError(f"{where}: unknown parameter of '{spec.name}'"
                              f"{did_you_mean(name, known) or f' (known: {known})'}")
        dim = dims.get(name)
        if narrow.fixed is not None:
            if dim is not None and not dim.contains(narrow.fixed):
                raise ConfigError(f"{where}.fixed: expected {dim.describe()}, "
                                  f"found {narrow.fixed!r}")
            fixed[name] = narrow.fixed
            dims.pop(name, None)
        elif dim is None:
            raise ConfigError(f"{where}: expected a searchable parameter, found one '{spec.name}' "
                              "keeps fixed (use {fixed = value})")
        else:
            dims[name] = _narrow(dim, narrow, where)
    return dims, fixed


def _narrow(dim: Dimension, narrow: ParamSpec, where: str) -> Dimension:
    if narrow.choices is not None:
        bad = [c for c in narrow.choices if not dim.contains(c)]
        if bad:
            raise ConfigError(f"{where}.choices: expected values in {dim.describe()}, "
                              f"found {bad[0]!r}")
        return Choice(tuple(narrow.choices))
    if isinstance(dim, Choice):
        raise ConfigError(f"{where}: expected {{choices = [...]}} for {dim.describe()}, "
                          "found {low, high}")
    low, high = narrow.low, narrow.high
    if isinstance(dim, IntRange):
        if low != int(low) or high != int(high):
            raise ConfigError(f"{where}: expected integer low/high, found {low:g}..{high:g}")
        low, high = int(low), int(high)
    if not (dim.contains(low) and dim.contains(high)):
        raise ConfigError(f"{where}: expected low/high within {dim.describe()}, "
                          f"found {low:g}..{high:g}")
    return dataclasses.replace(dim, low=low, high=high)


def suggest(trial: optuna.trial.Trial, name: str, dim: Dimension) -> Any:
    """One plain-data dimension -> an Optuna suggestion (the one place this mapping lives)."""
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    if isinstance(dim, FloatRange):
        return trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)
    return trial.suggest_categorical(name, list(dim.options))


def _grid(dims: Mapping[str, Dimension], source: str) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for name, dim in dims.items():
        if isinstance(dim, Choice):
            grid[name] = list(dim.options)
        elif isinstance(dim, IntRange):
            grid[name] = list(range(dim.low, dim.high + 1, dim.step))
        elif dim.step is not None:
            grid[name] = [float(v) for v in np.arange(dim.low, dim.high + dim.step / 2, dim.step)]
        else:
            raise ConfigError(f"{source}: optimize.params.{name}: expected {{choices = [...]}} "
                              f"for the grid sampler, found {dim.describe()}")
    return grid


def make_sampler(opt: OptimizeConfig, dims: Mapping[str, Dimension], seed: int,
                 source: str) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded (constraints reach TPE and NSGA-II via set_constraint)."""
    if opt.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if opt.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if opt.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler(_grid(dims, source), seed=seed)


# ---------------------------------------------------------------- storage


_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@")


def mask_url(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db`` (anywhere in a text)."""
    return _PASSWORD.sub(r"\g<head>***@", url)


def _mask_text(text: str, url: str | None) -> str:
    secret = urlsplit(url).password if url and "://" in url else None
    masked = mask_url(text)
    return masked.replace(secret, "***") if secret else masked


def _driver_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here unless psycopg2 is installed."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None:
        return f"postgresql+psycopg{sep}{rest}"
    return url


class _FlockLock(optuna.storages.journal.JournalFileOpenLock):
    """A kernel lock (``flock``) on ``<journal>.lock``, released when its process dies.

    Optuna's own file locks leave a stale lock file behind a SIGKILLed writer, and the next
    process then waits 30 s before breaking it; a kernel lock has no such state to leave.
    """

    def __init__(self, journal: Path) -> None:
        self._path = f"{journal}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def repair_journal(journal: Path) -> bool:
    """Drop a torn last record left by a writer killed in the middle of an append.

    Appends hold the journal lock, so under that lock a last line without its newline belongs to a
    dead writer: it was never committed. Optuna's reader cannot get past such a line (every later
    record would be glued to it), so it is cut off. Returns whether anything was cut.
    """
    if not journal.exists():
        return False
    lock = _FlockLock(journal)
    lock.acquire()
    try:
        with open(journal, "r+b") as handle:
            data = handle.read()
            if not data or data.endswith(b"\n"):
                return False
            handle.truncate(data.rfind(b"\n") + 1)
            handle.flush()
            os.fsync(handle.fileno())
            return True
    finally:
        lock.release()


def open_storage(url: str | None, journal: Path) -> optuna.storages.BaseStorage:
    """A database storage with heartbeats and retries for ``url``, else the journal file."""
    _quiet_optuna()
    if url is None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(journal)
        backend = optuna.storages.journal.JournalFileBackend(str(journal),
                                                             lock_obj=_FlockLock(journal))
        return optuna.storages.journal.JournalStorage(backend)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                _driver_url(url), engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY))
        except Exception as exc:  # any driver or connection error becomes one masked line
            text = str(exc).strip()
            # Workers that meet an empty database race to create Optuna's tables: try again.
            racing = "already exists" in text or "duplicate key" in text
            if racing and attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            first = text.splitlines()[0] if text else type(exc).__name__
            raise OutputError(f"--storage {mask_url(url)}: expected a reachable database, "
                              f"found {_mask_text(first, url)}") from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- evaluation


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
        self.entries = [*self.entries[-(self.size - 1):], ({k: getattr(params, k) for k in read},
                                                           frame)]
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


def _mean_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean of each metric over ``rows``; an undefined metric (None) counts as 0."""
    return {k: float(np.mean([r[k] if r[k] is not None else 0.0 for r in rows]))
            for k in metrics.METRIC_KEYS}


class Evaluator:
    """Loads the bars once and scores parameter sets on every fold (one per process)."""

    def __init__(self, cfg: RunConfig, opt: OptimizeConfig, spec: StrategySpec,
                 source: str) -> None:
        self.cfg, self.opt, self.spec, self.source = cfg, opt, spec, source
        self.history, info = data.load_bars(cfg.data.model_copy(update={"start": None}), source)
        self.first = (int(self.history.index.searchsorted(pd.Timestamp(cfg.data.start)))
                      if cfg.data.start else 0)
        self.bars = self.history.iloc[self.first:]
        self.freq = info.freq
        n = len(self.bars)
        try:
            self.folds = build_folds(opt.validation, self.bars.index, source)
            self.blocks = splits.blocks(n, opt.cscv_blocks)
        except ValueError as exc:
            raise ConfigError(f"{source}: optimize.validation: expected {exc}") from None
        self.scored = set(splits.distinct_ranges(self.folds))  # ranges whose metrics count
        self.ranges = sorted({*self.scored, (0, n)})  # (0, n): the returns for the DSR/PBO
        self.features = FeatureCache(spec)
        self.context = pipeline.load_context(cfg, spec, source)
        self.clock = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to ``self.clock[phase]`` (see PHASES)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.clock[phase] += time.perf_counter() - start

    def evaluate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Fold metrics, objective and constraint values, and return statistics of one set."""
        params = self.spec.make_params(values, self.source)
        with self.timed("features"):
            feats = self.features.get(self.history, params, self.context)
        with self.timed("signals"):
            sigs = self.spec.signals(self.history, feats, params)
        by_range, full_returns = {}, np.empty(0)
        for a, b in self.ranges:
            rows = slice(self.first + a, self.first + b)
            with self.timed("simulation"):
                result = engine.simulate(self.history.iloc[rows], sigs.restrict(rows),
                                         self.cfg.execution, self.freq)
            if (a, b) in self.scored:
                with self.timed("metrics"):
                    by_range[(a, b)] = metrics.compute(result, self.freq)
            if (a, b) == (0, len(self.bars)):
                full_returns = result.returns.to_numpy(dtype=float)
        with self.timed("metrics"):
            return self._summarize(by_range, full_returns)

    def _summarize(self, by_range: Mapping[tuple[int, int], Mapping[str, Any]],
                   full_returns: np.ndarray) -> dict[str, Any]:
        folds = [{"name": f.name, "is": _mean_metrics([by_range[r] for r in f.train]),
                  "oos": _mean_metrics([by_range[r] for r in f.test]) if f.test else None}
                 for f in self.folds]
        is_mean = _mean_metrics([f["is"] for f in folds])
        has_oos = all(f["oos"] is not None for f in folds)
        stats = overfit.return_stats(full_returns)
        return {
            "folds": folds,
            "is_mean": is_mean,
            "oos_mean": _mean_metrics([f["oos"] for f in folds]) if has_oos else None,
            "objectives": [is_mean[o.metric] for o in self.opt.objectives],
            "constraints": [c.violation(is_mean[c.metric]) for c in self.opt.constraints],
            "full_stats": dataclasses.asdict(stats),
            "blocks": overfit.block_sums(full_returns, self.blocks)[:, :, 0].tolist(),
        }

    def describe_folds(self) -> list[dict[str, Any]]:
        """Folds as dated ranges (inclusive bar open times) for the report."""
        idx = self.bars.index

        def dated(ranges: Sequence[splits.Range]) -> list[list[str]]:
            return [[_iso(idx[a]), _iso(idx[b - 1])] for a, b in ranges]

        return [{"name": f.name, "train": dated(f.train), "test": dated(f.test)}
                for f in self.folds]


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
            named = _named_windows(where)
            if item not in named:
                hint = did_you_mean(item, named) or f" (known: {', '.join(named)})"
                raise ConfigError(f"{where}: unknown window '{item}'{hint}")
            out.append((item, *named[item]))
            continue
        if len(item) != 2:
            raise ConfigError(f"{where}: expected a window name or [start, end], found {item!r}")
        try:
            start, end = (pd.Timestamp(parse_utc(v)) for v in item)
        except ValueError:
            raise ConfigError(f"{where}: expected ISO-8601 dates, found {item!r}") from None
        out.append((f"{start:%Y-%m-%d}", start, end))
    return out


def _named_windows(where: str) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    path = data.datasets_dir() / "regimes.toml"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("windows", {})
    except FileNotFoundError:
        raise ConfigError(f"{where}: expected a window named in {path}, found no such file "
                          "(give [start, end] instead)") from None
    return {name: (pd.Timestamp(parse_utc(w["start"])), pd.Timestamp(parse_utc(w["end"])))
            for name, w in table.items()}


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- workers


@dataclass(frozen=True)
class Request:
    """Everything a worker process needs (picklable)."""

    cfg: RunConfig
    opt: OptimizeConfig
    spec: StrategySpec
    source: str
    study: str
    out_dir: Path
    storage_url: str | None = None
    jobs: int = 1

    @property
    def study_dir(self) -> Path:
        return report.confined(self.out_dir, self.study)

    @property
    def journal(self) -> Path:
        return self.study_dir / "study.journal"

    @property
    def storage_label(self) -> str:
        return mask_url(self.storage_url) if self.storage_url else str(self.journal)

    def open(self) -> optuna.storages.BaseStorage:
        return open_storage(self.storage_url, self.journal)

    def config_hash(self) -> str:
        blob = self.cfg.canonical_json() + self.opt.search_hash() + self.spec.name
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recover_stale(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Fail trials left RUNNING by dead local workers and queue their parameters again.

    A database storage does this by heartbeat; the journal file has none, so a trial is stale
    when its worker (``host:pid`` user attr) ran on this host and that process is gone.
    """
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return 0
    host, found = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(RUNNING,)):
        who = trial.user_attrs.get("worker", "")
        whose_host, _, pid = who.rpartition(":")
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        orphan = not who and time.time() - started > 60.0
        if orphan or (whose_host == host and pid.isdigit() and not report.pid_alive(int(pid))):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            found += 1
    return found


def count_states(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}


class Interrupts:
    """Ctrl-C during a search. Inside a strategy's evaluation it interrupts at once (optuna
    marks the trial failed and re-raises). While optuna asks, tells or writes the storage it is
    deferred to the end of that step: a KeyboardInterrupt inside ``study.tell`` escapes optuna
    5.0 as an UnboundLocalError and can leave a trial RUNNING or a record half-written. A
    second Ctrl-C interrupts at once wherever it lands."""

    def __init__(self) -> None:
        self.requested = False
        self.evaluating = False

    def __call__(self, signum: int, frame: object) -> None:
        again, self.requested = self.requested, True
        if self.evaluating or again:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT with this object (main thread only) for the duration of the block."""
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """The block during which a Ctrl-C interrupts at once (pure computation, no I/O)."""
        if self.requested:
            raise KeyboardInterrupt
        self.evaluating = True
        try:
            yield
        finally:
            self.evaluating = False


class Objective:
    """Suggest, evaluate, record; steps aside once the requested count is reached."""

    def __init__(self, req: Request, evaluator: Evaluator, storage: optuna.storages.BaseStorage,
                 on_done: Callable[[optuna.Study], None], interrupts: Interrupts) -> None:
        dims, fixed = search_space(req.spec, req.opt, req.source)
        self.req, self.evaluator, self.on_done, self.dims = req, evaluator, on_done, dims
        self.storage, self.interrupts = storage, interrupts
        self.base = {**req.cfg.strategy.params, **fixed}
        self.invalid = 0
        self.deadline = time.monotonic() + (req.opt.timeout_s or math.inf)

    def surplus(self, study: optuna.Study, trial: optuna.trial.Trial) -> bool:
        live = study.get_trials(deepcopy=False, states=(COMPLETE, RUNNING, WAITING))
        return sum(t.number < trial.number for t in live) >= self.req.opt.trials

    def __call__(self, trial: optuna.trial.Trial) -> list[float]:
        trial.set_user_attr("worker", _worker_id())
        if self.surplus(trial.study, trial):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("surplus: the requested trial count is already reached")
        values = {**self.base, **{n: suggest(trial, n, d) for n, d in self.dims.items()}}
        try:
            with self.interrupts.evaluation():
                ev = self.evaluator.evaluate(values)
        except StrategyError as exc:
            self.invalid += 1
            if self.invalid > max(50, 5 * self.req.opt.trials):
                raise ConfigError(f"{self.req.source}: optimize.params: expected a space with "
                                  f"valid parameter sets, found {self.invalid} invalid ones "
                                  f"(last: {exc})") from None
            trial.set_user_attr("invalid", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        keys = ("folds", "is_mean", "oos_mean", "constraints", "full_stats", "blocks")
        trial.set_user_attr("eval", {**{k: ev[k] for k in keys}, "params_all": values})
        for spec, violation in zip(self.req.opt.constraints, ev["constraints"], strict=True):
            trial.set_constraint(f"{spec.metric} {spec.op} {spec.value:g}", violation)
        return ev["objectives"]

    def callback(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        """After each trial: stop at the count; a surplus worker waits for the others."""
        while True:
            counts = count_states(study)
            self.on_done(study)
            if self.interrupts.requested:  # a deferred Ctrl-C: work() raises it after optimize
                study.stop()
                return
            if counts["COMPLETE"] >= self.req.opt.trials:
                study.stop()
                return
            if not frozen.user_attrs.get("surplus"):
                return
            if counts["COMPLETE"] + counts["RUNNING"] + counts["WAITING"] < self.req.opt.trials:
                return
            if time.monotonic() > self.deadline:
                study.stop()
                return
            recover_stale(study, self.storage)
            time.sleep(WAIT_S)


def _quiet_optuna() -> None:
    """Optuna's info logs and experimental/deprecation notices are not for crashbt's users."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def work(req: Request, index: int, on_done: Callable[[optuna.Study], None] | None = None,
         evaluator: Evaluator | None = None) -> None:
    """One worker: open the shared study and run trials until the count or the timeout.

    The sampler's seed is ``seed + 7919 * worker + trials already stored``: a fresh single
    worker is reproducible, and neither a resume nor a second worker replays the same draws.
    """
    _quiet_optuna()
    evaluator = evaluator or Evaluator(req.cfg, req.opt, req.spec, req.source)
    storage = req.open()
    study = optuna.load_study(study_name=req.study, storage=storage)
    recover_stale(study, storage)
    existing = len(study.get_trials(deepcopy=False))
    interrupts = Interrupts()
    objective = Objective(req, evaluator, storage, on_done or (lambda _s: None), interrupts)
    study.sampler = make_sampler(req.opt, objective.dims,
                                 req.opt.seed + 7919 * index + existing, req.source)
    if count_states(study)["COMPLETE"] >= req.opt.trials:
        return
    try:
        with interrupts.installed(), evaluator.timed("search"):
            study.optimize(objective, timeout=req.opt.timeout_s,
                           callbacks=[objective.callback])
    except KeyboardInterrupt:
        _fail_own_running(study, existing)
        raise
    if interrupts.requested:
        raise KeyboardInterrupt


def _fail_own_running(study: optuna.Study, first_new: int) -> None:
    """After Ctrl-C: a trial of this process interrupted outside the objective (while being
    asked or told) would stay RUNNING; mark it failed. A trial without a worker attr is ours
    when it was created after this worker started."""
    me = _worker_id()
    for trial in study.get_trials(deepcopy=False, states=(RUNNING,)):
        who = trial.user_attrs.get("worker")
        if who == me or (who is None and trial.number >= first_new):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _child(req: Request, index: int) -> None:
    try:
        work(req, index)
    except KeyboardInterrupt:
        sys.exit(130)
    except UserError as exc:
        print(f"crashbt: error: worker {index}: {_mask_text(str(exc), req.storage_url)}",
              file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------- driver


@dataclass(frozen=True)
class Outcome:
    """What ``run`` did: the report path, the report itself, and whether it was interrupted."""

    path: Path
    doc: dict[str, Any]
    best_run: Path | None
    interrupted: bool


def prepare(req: Request) -> optuna.Study:
    """Create (or reopen) the study; refuse to resume a study started by another config."""
    _quiet_optuna()
    dims, _ = search_space(req.spec, req.opt, req.source)
    directions = [o.resolved_direction for o in req.opt.objectives]
    if req.opt.sampler == "grid":
        _grid(dims, req.source)
    storage = req.open()
    study = optuna.create_study(study_name=req.study, storage=storage, directions=directions,
                                load_if_exists=True)
    have = study.user_attrs.get("crashbt_config")
    if have is None:
        study.set_user_attr("crashbt_config", req.config_hash())
    elif have != req.config_hash():
        raise ConfigError(f"{req.source}: optimize: expected the config that started study "
                          f"'{req.study}' (hash {have}), found a changed one "
                          f"({req.config_hash()}); pass --study NEW_NAME for a new study")
    recover_stale(study, storage)
    return study


def run(req: Request) -> Outcome:
    """Run (or resume) the search, then write optimization.json and the best run's report.

    Ctrl-C stops the workers (a running trial is marked failed), and the report of what was
    done is still written; ``Outcome.interrupted`` tells the caller to exit with 130.
    """
    started = time.perf_counter()
    evaluator = Evaluator(req.cfg, req.opt, req.spec, req.source)
    study = prepare(req)
    interrupted = False
    with _progress(req.opt.trials) as show:
        def on_done(s: optuna.Study) -> None:
            show(*_progress_state(s, req.opt))

        try:
            if req.jobs <= 1:
                work(req, 0, on_done, evaluator)
            else:
                _run_children(req, study, on_done)
        except KeyboardInterrupt:
            interrupted = True
    doc = summarize(study, req, evaluator, interrupted)
    best_run = None
    if doc["best"] is not None and not interrupted:
        best_run = _write_best_run(req, doc["best"]["params"])
        doc["best_run"] = str(best_run.relative_to(req.study_dir))
    doc["timing"] = {"created_at": parse_utc_now(),
                     "duration_s": round(time.perf_counter() - started, 3)}
    if req.jobs <= 1:  # the workers of --jobs N keep their clocks in their own processes
        doc["timing"]["search_s"] = search_breakdown(evaluator.clock)
    path = req.study_dir / "optimization.json"
    clean = _finite(doc)
    report.atomic_write_text(path, report.to_json(clean))
    report.atomic_write_text(req.study_dir / "optimization.html", html.render_optimization(
        json.loads(report.to_json(clean))))
    return Outcome(path, doc, best_run, interrupted)


def search_breakdown(clock: Mapping[str, float]) -> dict[str, float]:
    """Seconds per phase of the search loop, plus what was left for Optuna and bookkeeping."""
    out = {phase: round(clock[phase], 3) for phase in PHASES}
    inside = sum(clock[phase] for phase in PHASES if phase != "search")
    out["optuna_and_bookkeeping"] = round(max(clock["search"] - inside, 0.0), 3)
    return out


def _run_children(req: Request, study: optuna.Study,
                  on_done: Callable[[optuna.Study], None]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(req, i), name=f"crashbt-worker-{i}")
             for i in range(req.jobs)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            on_done(study)
            for p in procs:
                p.join(timeout=0.5 / len(procs))
    except KeyboardInterrupt:
        for p in procs:  # they got SIGINT too: each fails its running trial and exits
            p.join(timeout=30)
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        if 130 in failed:
            raise KeyboardInterrupt
        raise OutputError(f"{req.source}: optimize: expected every worker to finish, found "
                          f"exit codes {failed} (see the worker errors above)")


def _write_best_run(req: Request, params: Mapping[str, Any]) -> Path:
    label = f"{req.study}-best"
    strategy = req.cfg.strategy.model_copy(update={"params": dict(params), "label": label})
    cfg = req.cfg.model_copy(update={"strategy": strategy})
    outcome = pipeline.execute(cfg, req.spec, req.source)
    return pipeline.write(outcome, req.study_dir, with_html=cfg.report.html)


def _finite(value: Any) -> Any:
    """Replace NaN/inf by None everywhere (report JSON refuses them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------- progress


def _progress_state(study: optuna.Study, opt: OptimizeConfig) -> tuple[int, float | None]:
    done = [t for t in study.get_trials(deepcopy=False, states=(COMPLETE,))
            if _feasible(t)]
    n = count_states(study)["COMPLETE"]
    if not done:
        return n, None
    first = [t.values[0] for t in done]
    return n, max(first) if opt.objectives[0].resolved_direction == "maximize" else min(first)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int, float | None], None]]:
    """A rich progress bar on stderr with the best value; silent when stderr is not a TTY."""
    if not sys.stderr.isatty():
        yield lambda _n, _best: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("best {task.fields[best]}"), console=Console(stderr=True),
                   transient=False)
    task = bar.add_task("search", total=total, best="-")
    with bar:
        yield lambda n, best: bar.update(task, completed=min(n, total),
                                         best="-" if best is None else f"{best:.4g}")


# ---------------------------------------------------------------- summary


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0.0 for c in _ev(trial).get("constraints", []))


def _ev(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The evaluation a trial stored (one user attr, so one journal write per trial)."""
    return trial.user_attrs.get("eval", {})


def pareto_front(values: np.ndarray, signs: np.ndarray) -> list[int]:
    """Row indices not dominated by any other row (``signs`` +1 maximize, -1 minimize)."""
    w = values * signs
    front = []
    for i in range(len(w)):
        dominated = np.any(np.all(w >= w[i], axis=1) & np.any(w > w[i], axis=1))
        if not dominated:
            front.append(i)
    return front


def summarize(study: optuna.Study, req: Request, evaluator: Evaluator,
              interrupted: bool) -> dict[str, Any]:
    """The optimization report: trials, best, Pareto front, walk-forward, overfitting."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == COMPLETE]
    feasible = [t for t in complete if _feasible(t)]
    objectives = req.opt.objectives
    signs = np.array([1.0 if o.resolved_direction == "maximize" else -1.0 for o in objectives])
    front: list[optuna.trial.FrozenTrial] = []
    best = None
    if feasible:
        vals = np.array([t.values for t in feasible], dtype=float)
        front = [feasible[i] for i in pareto_front(vals, signs)]
        best = max(front, key=lambda t: (signs[0] * t.values[0], -t.number))
    dims, fixed = search_space(req.spec, req.opt, req.source)
    return {
        "schema_version": report.SCHEMA_VERSION,
        "study": req.study,
        "storage": req.storage_label,
        "config": req.cfg.model_dump(mode="json"),
        "optimize": req.opt.model_dump(mode="json"),
        "strategy": req.spec.name,
        "space": {k: d.describe() for k, d in dims.items()},
        "fixed": fixed,
        "objectives": [{"metric": o.metric, "direction": o.resolved_direction}
                       for o in objectives],
        "requested_trials": req.opt.trials,
        "counts": {k: v for k, v in count_states(study).items() if v},
        "interrupted": interrupted,
        "folds": evaluator.describe_folds(),
        "trials": [_trial_row(t) for t in trials],
        "best": None if best is None else _best_row(best),
        "pareto_front": [_trial_brief(t) for t in front] if len(objectives) > 1 else [],
        "walk_forward": walk_forward_oos(feasible, objectives[0].metric, signs[0]),
        "overfitting": overfitting(complete, best, objectives[0].metric, signs[0]),
        "best_run": None,
    }


def _trial_brief(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "values": t.values, "params": t.params}


def _trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = {**t.user_attrs, **_ev(t)}
    row = {"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
           "feasible": _feasible(t) if t.state == COMPLETE else None}
    for key in ("is_mean", "oos_mean", "folds", "constraints", "invalid", "retry_of", "surplus"):
        if key in attrs:
            row[key] = attrs[key]
    return row


def _best_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {**_trial_brief(t), "params": _ev(t)["params_all"],
            "searched": t.params, "is_mean": _ev(t)["is_mean"],
            "oos_mean": _ev(t)["oos_mean"], "folds": _ev(t)["folds"]}


def walk_forward_oos(trials: Sequence[optuna.trial.FrozenTrial], metric: str,
                     sign: float) -> dict[str, Any] | None:
    """Per fold: the trial best in that fold's in-sample part, and its out-of-sample result.

    This is the honest walk-forward number: each fold's choice sees only its own training bars.
    """
    if not trials or _ev(trials[0])["oos_mean"] is None:
        return None
    rows = []
    for k, fold in enumerate(_ev(trials[0])["folds"]):
        pick = max(trials, key=lambda t: (sign * _ev(t)["folds"][k]["is"][metric],
                                          -t.number))
        chosen = _ev(pick)["folds"][k]
        rows.append({"fold": fold["name"], "trial": pick.number, "params": pick.params,
                     "is": chosen["is"], "oos": chosen["oos"]})
    return {"metric": metric, "folds": rows,
            "oos_mean": float(np.mean([r["oos"][metric] for r in rows])),
            "is_mean": float(np.mean([r["is"][metric] for r in rows]))}


def overfitting(complete: Sequence[optuna.trial.FrozenTrial],
                best: optuna.trial.FrozenTrial | None, metric: str,
                sign: float) -> dict[str, Any]:
    """Deflated Sharpe of the best trial, PBO by CSCV, and IS -> OOS decay of top candidates."""
    out: dict[str, Any] = {"n_trials": len(complete), "deflated_sharpe": None, "pbo": None,
                           "decay": []}
    if best is None or len(complete) < 2:
        return out
    srs = np.array([_ev(t)["full_stats"]["sharpe"] for t in complete])
    dsr = overfit.deflated_sharpe(overfit.ReturnStats(**_ev(best)["full_stats"]),
                                  float(np.var(srs, ddof=1)), len(complete))
    out["deflated_sharpe"] = {**dsr, "significant": dsr["dsr"] >= 0.95,
                              "sample": "best trial's bar returns over the whole period"}
    sums = np.stack([np.array(_ev(t)["blocks"]) for t in complete], axis=2)
    out["pbo"] = {**overfit.pbo_from_blocks(sums), "measure": "Sharpe of bar returns"}
    ranked = sorted(complete, key=lambda t: (-sign * _ev(t)["is_mean"][metric], t.number))
    for t in ranked[:TOP_CANDIDATES]:
        is_v = _ev(t)["is_mean"][metric]
        oos = _ev(t)["oos_mean"]
        oos_v = None if oos is None else oos[metric]
        out["decay"].append({
            "number": t.number, "params": t.params, "metric": metric, "is": is_v, "oos": oos_v,
            "decay": None if oos_v is None else oos_v - is_v,
            "oos_over_is": None if oos_v is None or is_v == 0 else oos_v / is_v})
    return out


def study_trials(storage_url: str | None, journal: Path, study: str) -> list[dict[str, Any]]:
    """Number, state, values, params and worker of every trial of a stored study (for tools)."""
    _quiet_optuna()
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage_url, journal))
    return [{"number": t.number, "state": t.state.name, "values": t.values, "params": t.params,
             "worker": t.user_attrs.get("worker"), "surplus": bool(t.user_attrs.get("surplus")),
             "retry_of": t.user_attrs.get("retry_of")}
            for t in loaded.get_trials(deepcopy=False)]


# ---------------------------------------------------------------- command line


def request_from_cli(config: str, overrides: Sequence[str], *, trials: int | None = None,
                     timeout_s: float | None = None, seed: int | None = None,
                     storage: str | None = None, study: str | None = None, jobs: int = 1,
                     out: str | None = None) -> Request:
    """Build a :class:`Request` from ``crashbt optimize`` arguments (flags beat the config)."""
    import strategies

    cfg, opt = load(config, overrides)
    flags = {k: v for k, v in (("trials", trials), ("timeout_s", timeout_s), ("seed", seed))
             if v is not None}
    try:
        opt = OptimizeConfig.model_validate({**opt.model_dump(), **flags})
    except ValidationError as exc:
        raise ConfigError(_format_error("command line", exc, OptimizeConfig)) from None
    if not 1 <= jobs <= 256:
        raise ConfigError(f"command line: --jobs: expected 1..256 workers, found {jobs}")
    if storage is not None and "://" not in storage:
        raise ConfigError(f"command line: --storage: expected a database URL such as "
                          f"postgresql://user:password@host/db, found {mask_url(storage)!r}")
    spec = strategies.get(cfg.strategy.name, config)
    name = report.safe_name(study or cfg.name or Path(config).stem)
    return Request(cfg, opt, spec, config, name, Path(out or cfg.report.out), storage, jobs)


def summary_lines(outcome: Outcome) -> list[str]:
    """What ``crashbt optimize`` prints: counts, best, walk-forward, overfitting, paths."""
    doc = outcome.doc
    lines = [f"study: {doc['study']} (storage {doc['storage']})",
             "trials: " + ", ".join(f"{v} {k.lower()}" for k, v in doc["counts"].items())]
    best = doc["best"]
    if best is None:
        lines.append("best: none (no complete feasible trial)")
    else:
        objs = ", ".join(f"{o['metric']} {v:.4g}" for o, v in
                         zip(doc["objectives"], best["values"], strict=True))
        lines.append(f"best: trial {best['number']}: in-sample {objs}; params {best['searched']}")
        if best["oos_mean"] is not None:
            metric = doc["objectives"][0]["metric"]
            lines.append(f"best out-of-sample {metric} (mean over folds): "
                         f"{best['oos_mean'][metric]:.4g}")
    wf = doc["walk_forward"]
    if wf is not None:
        lines.append(f"walk-forward (each fold picks on its own in-sample part): {wf['metric']} "
                     f"in-sample {wf['is_mean']:.4g} -> out-of-sample {wf['oos_mean']:.4g}")
    dsr, pbo = doc["overfitting"]["deflated_sharpe"], doc["overfitting"]["pbo"]
    if dsr is not None:
        lines.append(f"deflated Sharpe ratio: {dsr['dsr']:.3f} over {dsr['n_trials']} trials "
                     f"({'significant' if dsr['significant'] else 'not significant'} at 0.95); "
                     f"PBO {pbo['pbo']:.3f} ({pbo['n_splits']} CSCV splits)")
    lines.append(f"report: {outcome.path}")
    if outcome.best_run is not None:
        lines.append(f"best run: {outcome.best_run}")
    if outcome.interrupted:
        lines.append("interrupted: the report shows the trials done so far")
    return lines
