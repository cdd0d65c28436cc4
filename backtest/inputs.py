"""The one input builder: everything a run needs, decided once, for every command.

``run``, ``check lookahead|warmup``, ``optimize`` (every trial and fold) and the Python API call
:func:`prepare` and nothing else to turn a config into bars, params and context, so the run
range (``data.window`` or ``data.start``/``data.end``), the warm-up history before the start,
the external series (required kinds, and optional kinds the config supplies), the funding of a
perp run, the maintenance tiers and the bar frequency cannot differ between commands.
:meth:`RunInputs.signals` and :meth:`RunInputs.simulate` are the one way from inputs to a
simulation; the optimizer's batches (:mod:`backtest.engine.batch`) run the same kernel on the
same slices of these inputs, so a trial and a run on the same range agree.

Imports from crashbt: config, data, engine, errors, types, strategy contract; never ``strategies``
(the spec is passed in), optuna or the report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.config.run import RunConfig
from backtest.data import bars as data
from backtest.data import external, regimes
from backtest.data.bars import DataInfo
from backtest.engine import margin
from backtest.engine import simulate as engine
from backtest.errors import ConfigError, DataError, did_you_mean
from backtest.strategy.contract import StrategySpec
from backtest.types import Bars, Signals, SimResult


@dataclass(frozen=True)
class RunInputs:
    """What one run is made of: the config, its strategy and params, and the loaded data.

    ``history`` holds every bar up to the run's end (the warm-up before the start included);
    features and signals are computed on it, the simulation runs on ``history[first:]``.
    """

    cfg: RunConfig
    spec: StrategySpec
    source: str
    params: Any
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    history: Bars
    first: int
    info: DataInfo
    context: dict[str, pd.DataFrame]
    funding: pd.Series | None
    tiers: np.ndarray | None
    tiers_source: str | None
    bar_duration: pd.Timedelta
    input_hashes: dict[str, str]

    @property
    def bars(self) -> Bars:
        """The simulated bars: ``history`` from the run's first bar."""
        return self.history.iloc[self.first:]

    @property
    def freq(self) -> str:
        """The bar frequency as a pandas offset (``"1h"``, ``"1D"``)."""
        return self.info.freq

    @property
    def run_start(self) -> pd.Timestamp:
        return self.history.index[self.first]

    @property
    def run_end(self) -> pd.Timestamp:
        return self.history.index[-1]

    def signals(self, params: Any = None, features: pd.DataFrame | None = None) -> Signals:
        """The strategy's signals on the whole history (``params`` default to the config's)."""
        params = self.params if params is None else params
        if features is None:
            features = self.spec.features(self.history, params, self.context)
        return self.spec.signals(self.history, features, params)

    def simulate(self, sigs: Signals, rows: tuple[int, int] | None = None) -> SimResult:
        """The engine on simulated bars ``[a, b)`` (default: all of them), funding included."""
        a, b = rows if rows is not None else (0, len(self.history) - self.first)
        part = slice(self.first + a, self.first + b)
        return engine.simulate(self.history.iloc[part], sigs.restrict(part), self.cfg.execution,
                               self.freq, self.funding)


def prepare(cfg: RunConfig, spec: StrategySpec, source: str,
            params: Any = None) -> RunInputs:
    """Load and validate everything a run of ``cfg`` with ``spec`` needs (``source`` names the
    config in errors). ``params`` default to ``cfg.strategy.params`` checked by the spec."""
    if params is None:
        values = cfg.strategy.params if cfg.strategy is not None else {}
        params = spec.make_params(values, source)
    start, end = run_range(cfg, source)
    history_cfg = cfg.data.model_copy(update={"start": None, "end": end, "window": None})
    history, info = data.load_bars(history_cfg, source)
    first = int(history.index.searchsorted(start)) if start is not None else 0
    if first >= len(history):
        until = f"{end:%Y-%m-%d %H:%M}" if end is not None else "the end of the data"
        raise DataError(f"{source}: data: expected bars between {start:%Y-%m-%d %H:%M} and "
                        f"{until}, found data from {info.first:%Y-%m-%d %H:%M} to "
                        f"{info.last:%Y-%m-%d %H:%M}")
    context = load_context(cfg, spec, source)
    funding = load_funding(cfg, info.symbol)
    perp = cfg.execution.instrument == "perp"
    if perp:
        external.check_tiers_for(info.symbol, cfg.execution.maintenance_tiers)
    tiers = margin.load_tiers(cfg.execution.maintenance_tiers) if perp else None
    tiers_source = margin.tiers_source(cfg.execution.maintenance_tiers) if perp else None
    hashes = {"data": info.sha256}
    hashes |= {f"external.{kind}": frame.attrs["sha256"] for kind, frame in context.items()}
    if funding is not None:
        hashes["funding"] = funding.attrs["sha256"]
    if tiers is not None:
        hashes["tiers"] = hashlib.sha256(np.ascontiguousarray(tiers).tobytes()).hexdigest()
    return RunInputs(
        cfg=cfg, spec=spec, source=source, params=params, start=start, end=end,
        history=history, first=first, info=info, context=context, funding=funding,
        tiers=tiers, tiers_source=tiers_source,
        bar_duration=data.timeframe_delta(info.timeframe, f"{source}: data.timeframe"),
        input_hashes=hashes)


def run_range(cfg: RunConfig, source: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The run's [start, end] from ``data.window`` or ``data.start`` / ``data.end``."""
    if cfg.data.window:
        win = regimes.window(cfg.data.window, f"{source}: data.window")
        return win.start, win.end
    as_ts = [pd.Timestamp(t) if t is not None else None for t in (cfg.data.start, cfg.data.end)]
    return as_ts[0], as_ts[1]


def load_context(cfg: RunConfig, spec: StrategySpec, source: str) -> dict[str, pd.DataFrame]:
    """The external series a strategy reads: every required kind (bundled unless the config
    names a file), and each optional kind the config supplies under ``[external.<kind>]``."""
    for kind in cfg.external:
        if kind not in external.KINDS:
            raise ConfigError(f"{source}: external.{kind}: unknown series kind"
                              f"{did_you_mean(kind, external.KINDS)}")
    wanted = [*spec.requires, *(k for k in spec.optional if k in cfg.external)]
    context = {}
    for kind in wanted:
        override = cfg.external.get(kind)
        context[kind] = external.load_external(
            kind, lag=override.lag if override else None,
            path=override.path if override else None)
    return context


def load_funding(cfg: RunConfig, symbol: str) -> pd.Series | None:
    """Funding rates of ``symbol``'s perpetual by settlement time for a perp run with funding
    on (else None; :func:`backtest.data.external.funding_for` refuses another symbol's); the
    series carries its file's ``name``, ``lag`` and ``sha256`` in ``attrs``."""
    if cfg.execution.instrument != "perp" or not cfg.execution.funding:
        return None
    src = cfg.external.get("funding_8h")
    frame = external.funding_for(symbol, lag=src.lag if src else None,
                                 path=src.path if src else None)
    rates = frame["funding_rate"]
    rates.attrs = dict(frame.attrs)
    return rates
