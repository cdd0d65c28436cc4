"""Config tables of the crash lab: ``[events]`` (with ``[[events.types]]``) and ``[stress]``.

An events config is its own file (no strategy): ``name``, ``[events]`` and optional
``[external.<kind>]`` (user files / longer lags, as in a run config). A stress config is a run
config (``[data]``, ``[strategy]``, ``[execution]`` ...) plus a ``[stress]`` table. Both are
read with the run config's TOML loader (``extends``, ``--set``) and validated by the strict
pydantic models below, so errors name the file and the dotted key like every other config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from backtest.config import loader
from backtest.config.common import _Strict
from backtest.config.run import ExternalSource, ReportConfig, RunConfig
from backtest.errors import ConfigError

#: A duration such as "4h", "1d" or "2w".
Duration = Annotated[str, Field(pattern=r"^[1-9][0-9]*(m|h|d|w)$")]


class _EventBase(_Strict):
    """What every event type shares: a unique name, the symbols it applies to (default: all of
    the study's) and a cooldown overriding the study's."""

    name: str = Field(min_length=1, max_length=80)
    symbols: list[str] | None = None
    cooldown: Duration | None = None
    timeframe: Literal["1h", "1d"] = "1h"


class LevelBreak(_EventBase):
    """A confirmed break of a price level (``cross_below`` / ``cross_above``): ``level`` (absolute)
    or ``ath_fraction`` x the running all-time high, on ``timeframe`` bars."""

    kind: Literal["level_break"]
    direction: Literal["below", "above"] = "below"
    level: float | None = Field(None, gt=0)
    ath_fraction: float | None = Field(None, gt=0, le=2)
    confirm: Literal["close", "wick"] = "close"
    hold: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_level(self) -> LevelBreak:
        if (self.level is None) == (self.ath_fraction is None):
            raise ValueError("exactly one of 'level' or 'ath_fraction'")
        return self


class LiquidationSpike(_EventBase):
    """Long liquidations >= ``k`` x their mean over the previous ``window`` days (first day)."""

    kind: Literal["liquidation_spike"]
    k: float = Field(3.0, gt=0)
    window: int = Field(30, ge=1, le=3650)


class EtfOutflowStreak(_EventBase):
    """The ``days``-th consecutive trading day of net ETF outflows."""

    kind: Literal["etf_outflow_streak"]
    days: int = Field(3, ge=1, le=250)


class HashRibbon(_EventBase):
    """Hash ribbon: ``recovery`` (fast SMA back above slow) or the start of a ``capitulation``."""

    kind: Literal["hash_ribbon"]
    signal: Literal["recovery", "capitulation"] = "recovery"
    fast: int = Field(30, ge=1, le=365)
    slow: int = Field(60, ge=2, le=730)


class FearGreed(_EventBase):
    """The first day the fear & greed index is at or below (``<=``) / at or above (``>=``)
    ``threshold``."""

    kind: Literal["fear_greed"]
    op: Literal["<=", ">="] = "<="
    threshold: float = Field(ge=0, le=100)


class FastDrawdown(_EventBase):
    """Close at least ``drop_pct`` % below the highest high of the last ``within``."""

    kind: Literal["fast_drawdown"]
    drop_pct: float = Field(gt=0, lt=100)
    within: Duration = "24h"


EventType = Annotated[LevelBreak | LiquidationSpike | EtfOutflowStreak | HashRibbon | FearGreed
                      | FastDrawdown, Field(discriminator="kind")]


class EventsConfig(_Strict):
    """``[events]``: where to measure (``symbols`` on ``timeframe`` bars of the bundled data),
    which horizons, the default cooldown, the bootstrap and its seed."""

    symbols: list[Literal["BTCUSDT", "ETHUSDT"]] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"], min_length=1)
    timeframe: Literal["1h", "1d"] = "1h"
    horizons: list[Duration] = Field(
        default_factory=lambda: ["1h", "4h", "1d", "3d", "7d", "30d"], min_length=1)
    path: Duration = "30d"
    cooldown: Duration = "7d"
    bootstrap: int = Field(1000, ge=100, le=100_000)
    seed: int = Field(0, ge=0)
    types: list[EventType] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_names(self) -> EventsConfig:
        names = [t.name for t in self.types]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"a distinct name per [[events.types]] entry, found "
                             f"'{repeated[0]}' twice")
        return self


class EventStudyConfig(_Strict):
    """A whole events config file."""

    name: str | None = None
    events: EventsConfig
    external: dict[str, ExternalSource] = Field(default_factory=dict)
    report: ReportConfig = ReportConfig()

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ShocksConfig(_Strict):
    """``[stress.shocks]``: extra damage layered on the bootstrapped bars.

    ``gap_prob`` per crash-regime bar: the bar opens ``gap_pct`` % lower (and the path stays
    there); ``wick_prob`` per crash-regime bar: the low reaches ``wick_pct`` % under the close
    (a liquidation wick that closes back); ``funding_spike_prob`` per crash-regime settlement:
    the funding rate is ``funding_spike_rate`` instead of ``funding_rate``;
    ``slippage_vol_coef``: slippage widens by this x the rolling volatility (the engine's
    ``sqrt_impact`` model)."""

    gap_prob: float = Field(0.0, ge=0, le=1)
    gap_pct: float = Field(5.0, ge=0, lt=100)
    wick_prob: float = Field(0.0, ge=0, le=1)
    wick_pct: float = Field(10.0, ge=0, lt=100)
    funding_rate: float | None = Field(None, ge=-0.05, le=0.05)
    funding_spike_prob: float = Field(0.0, ge=0, le=1)
    funding_spike_rate: float = Field(0.003, ge=-0.05, le=0.05)
    slippage_vol_coef: float = Field(0.0, ge=0, le=100)


class StressConfig(_Strict):
    """``[stress]``: number of paths, seed, block length (``"auto"``: Politis-White on absolute
    log returns) and the loss that counts as ruin."""

    paths: int = Field(1000, ge=10, le=100_000)
    seed: int = Field(0, ge=0)
    block: float | Literal["auto"] = "auto"
    ruin_pct: float = Field(50.0, gt=0, le=100)
    shocks: ShocksConfig = ShocksConfig()

    @field_validator("block")
    @classmethod
    def _block(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value < 1:
            raise ValueError(f"a mean block length >= 1 bar or 'auto', found {value!r}")
        return value


def _validate(model: type[BaseModel], raw: dict[str, Any], source: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(loader._format_error(source, exc, model)) from None


def _raw(path: str | Path, overrides: list[str] | None) -> dict[str, Any]:
    raw = loader._load_with_extends(Path(path))
    return loader.apply_overrides(raw, overrides) if overrides else raw


def load_events_config(path: str | Path, overrides: list[str] | None = None
                       ) -> EventStudyConfig:
    """Read and validate an events config (``extends`` and ``--set`` as for runs)."""
    cfg = _validate(EventStudyConfig, _raw(path, overrides), str(path))
    folder = Path(path).parent
    external = {kind: src.model_copy(update={"path": None if src.path is None else
                                             str(folder / src.path)})
                for kind, src in cfg.external.items()}
    return cfg.model_copy(update={"external": external})


def load_stress_config(path: str | Path, overrides: list[str] | None = None
                       ) -> tuple[RunConfig, StressConfig]:
    """A run config plus its ``[stress]`` table (defaults when absent)."""
    raw = _raw(path, overrides)
    stress = _validate(StressConfig, raw.pop("stress", {}), f"{path}: stress")
    run = loader.relative_to(loader.parse_config(raw, str(path)), Path(path).parent)
    if run.strategies is not None:
        raise ConfigError(f"{path}: strategies: expected one [strategy] for a stress test, "
                          f"found {len(run.strategies)} [[strategies]] entries")
    return run, stress
