"""TOML config -> frozen, validated objects.

One source of truth per run: a TOML file (optionally ``extends`` another, no cycles), plus
``--set key=value`` overrides from the CLI. Unknown keys are refused with a "did you mean" hint;
every error names the file, the dotted key, what was expected and what was found.

Imports nothing from the rest of crashbt but :mod:`backtest.errors`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
import typing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backtest.errors import ConfigError, did_you_mean
from backtest.redact import mask_secrets

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    """Frozen model that refuses unknown keys and NaN/inf floats."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def parse_utc(value: str | date | datetime) -> datetime:
    """Parse an ISO-8601 date or datetime as UTC; a naive value is taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class DataConfig(_Strict):
    """``[data]``: which bars, and which slice of them."""

    dataset: str | None = None
    path: str | None = None
    format: Literal["auto", "csv", "parquet", "binance"] = "auto"
    symbol: str | None = None
    timeframe: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    window: str | None = None
    bad_ticks: Literal["reject", "warn"] = "reject"

    @field_validator("start", "end", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        if isinstance(value, (str, date, datetime)):
            try:
                return parse_utc(value)
            except ValueError as exc:
                raise ValueError(f"an ISO-8601 date, found {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("exactly one of 'dataset' or 'path'")
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end after start, found start {self.start:%Y-%m-%d %H:%M} and "
                             f"end {self.end:%Y-%m-%d %H:%M}")
        if self.window and (self.start or self.end):
            raise ValueError("either 'window' or 'start'/'end', not both")
        return self


class StrategyConfig(_Strict):
    """``[strategy]``: a registered strategy name and its parameters (checked against its space)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None


class ExecutionConfig(_Strict):
    """``[execution]``: how orders fill and what they cost. See :mod:`backtest.engine`.

    ``instrument = "perp"`` trades a USDT-margined perpetual: isolated margin at ``leverage``,
    tiered maintenance margin (bundled Binance BTCUSDT tiers unless ``maintenance_tiers`` names
    a TOML file or gives ``[[notional_cap, rate, amount, max_leverage], ...]`` inline),
    liquidation with ``liquidation_fee_rate``, and funding when ``funding`` is true. Every
    engine fill is a market order: ``taker_fee_rate`` (when set) replaces ``fee_rate``;
    ``maker_fee_rate`` is recorded for limit fills, which the engine does not make yet.
    ``slippage_model = "sqrt_impact"`` adds ``slippage_vol_coef x sigma + slippage_impact_coef
    x sigma x sqrt(size / bar volume)`` to ``slippage_rate`` (sigma: realized volatility of the
    last ``slippage_vol_window`` close-to-close log returns).
    """

    init_cash: float = Field(100_000.0, gt=0, le=1e15)
    fee_rate: float = Field(0.001, ge=0, lt=0.1)
    slippage_rate: float = Field(0.0, ge=0, lt=0.1)
    fill: Literal["next_open", "close"] = "next_open"
    direction: Literal["long", "short", "both"] = "both"
    sl_stop: float | None = Field(None, gt=0, lt=1)
    tp_stop: float | None = Field(None, gt=0)
    tsl_stop: float | None = Field(None, gt=0, lt=1)
    engine: Literal["rust", "numba"] = "rust"
    instrument: Literal["spot", "perp"] = "spot"
    leverage: float = Field(1.0, ge=1, le=125)
    margin_mode: Literal["isolated"] = "isolated"
    maintenance_tiers: str | list[tuple[float, float, float, float]] | None = None
    liquidation_fee_rate: float = Field(0.0, ge=0, lt=0.1)
    funding: bool = True
    maker_fee_rate: float | None = Field(None, ge=0, lt=0.1)
    taker_fee_rate: float | None = Field(None, ge=0, lt=0.1)
    slippage_model: Literal["fixed", "sqrt_impact"] = "fixed"
    slippage_vol_coef: float = Field(0.0, ge=0, le=100)
    slippage_impact_coef: float = Field(0.0, ge=0, le=100)
    slippage_vol_window: int = Field(24, ge=2, le=10_000)

    @model_validator(mode="after")
    def _perp_settings(self) -> ExecutionConfig:
        if self.instrument == "spot":
            if self.leverage != 1:
                raise ValueError(f"leverage 1 for instrument 'spot' (set instrument = 'perp' "
                                 f"to trade with leverage), found {self.leverage:g}")
            if self.maintenance_tiers is not None or self.liquidation_fee_rate:
                raise ValueError("instrument 'perp' when maintenance_tiers or "
                                 "liquidation_fee_rate is set, found instrument 'spot'")
        coefs = self.slippage_vol_coef or self.slippage_impact_coef
        if self.slippage_model == "fixed" and coefs:
            raise ValueError("slippage_model 'sqrt_impact' when slippage_vol_coef or "
                             "slippage_impact_coef is set, found 'fixed'")
        if self.slippage_model == "sqrt_impact" and not coefs:
            raise ValueError("slippage_vol_coef or slippage_impact_coef > 0 with slippage_model "
                             "'sqrt_impact', found both 0")
        return self

    @property
    def market_fee_rate(self) -> float:
        """The fee rate of a market (taker) fill: ``taker_fee_rate`` when set, else fee_rate."""
        return self.fee_rate if self.taker_fee_rate is None else self.taker_fee_rate


class ExternalSource(_Strict):
    """``[external.<kind>]``: a user file for an external series and/or its publication lag.

    ``lag`` overrides the manifest's publication rule (e.g. ``"1d"``); it may be longer, never
    negative. Kinds: funding_8h, funding_1d, etf_flows, fear_greed, hash_rate, open_interest,
    liquidations (see ``datasets/README.md`` for their schemas).
    """

    path: str | None = None
    lag: str | None = None


class ReportConfig(_Strict):
    """``[report]``: where reports go and what is written."""

    out: str = "reports"
    html: bool = True


class RunConfig(_Strict):
    """A whole run: the resolved, validated config (saved with the report).

    A config names one ``[strategy]`` or several ``[[strategies]]`` (different strategies, or one
    strategy with several parameter sets); :meth:`runs` splits the latter into single runs on the
    same data.
    """

    name: str | None = None
    data: DataConfig
    strategy: StrategyConfig | None = None
    strategies: list[StrategyConfig] | None = Field(None, min_length=1)
    execution: ExecutionConfig = ExecutionConfig()
    external: dict[str, ExternalSource] = Field(default_factory=dict)
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _one_strategy_section(self) -> RunConfig:
        if (self.strategy is None) == (self.strategies is None):
            raise ValueError("exactly one of [strategy] or [[strategies]], found "
                             + ("both" if self.strategy else "neither"))
        labels = [entry.label or entry.name for entry in self.strategies or []]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"a distinct label per [[strategies]] entry, found '{repeated[0]}' "
                             f"{labels.count(repeated[0])} times (add label = \"...\")")
        return self

    def runs(self) -> list[RunConfig]:
        """One single-strategy config per strategy entry (itself when there is one)."""
        if self.strategies is None:
            return [self]
        return [self.model_copy(update={"strategy": entry, "strategies": None})
                for entry in self.strategies]

    def canonical_json(self) -> str:
        """Stable JSON of the resolved config: the input to run ids and hashes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a TOML file, found a directory") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: expected UTF-8 text, found byte 0x{text_byte(exc)} at "
                          f"offset {exc.start}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def text_byte(exc: UnicodeDecodeError) -> str:
    return f"{exc.object[exc.start]:02x}"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _load_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ConfigError(f"{seen[0]}: extends: expected no cycle, found {chain}")
    raw = _read_toml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a relative file path, found {parent!r}")
    return _deep_merge(_load_with_extends(path.parent / parent, (*seen, resolved)), raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value``; the value is read as a TOML value, else kept as a string."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item}: expected KEY=VALUE, found no '='")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--set {item}: expected a finite number, found {text}")
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return ``raw`` with each ``--set KEY=VALUE`` applied."""
    out = json.loads(json.dumps(raw, default=str))  # deep copy of plain data
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: '{key}' is not a table")
        node[keys[-1]] = value
    return out


def _format_error(source: str, exc: ValidationError, model: type[BaseModel]) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        owner: Any = model
        for part in loc[:-1]:  # list positions and dict keys keep the element model
            field = owner.model_fields.get(part) if owner is not None else None
            if field is not None:
                owner = _model_in(field.annotation)
        known = list(owner.model_fields) if owner is not None else []
        hint = did_you_mean(loc[-1], known) or f" (known keys: {', '.join(known)})"
        return f"{source}: {key}: unknown key{hint}"
    if err["type"] == "missing":
        return f"{source}: {key}: expected a value, found nothing (the key is required)"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    found = err.get("input")
    if err["type"].startswith(("value_error", "assertion")):
        return f"{source}: {key}: expected {msg}"
    return f"{source}: {key}: expected {msg}, found {mask_secrets(repr(found))}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[M] | None`` or ``dict[str, M]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse_config(raw: dict[str, Any], source: str) -> RunConfig:
    """Validate plain data into a :class:`RunConfig`; errors name ``source`` and the key."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc, RunConfig)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path`` (following ``extends``), apply overrides and validate."""
    path = Path(path)
    raw = _load_with_extends(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return relative_to(parse_config(raw, str(path)), path.parent)


def relative_to(cfg: RunConfig, folder: Path) -> RunConfig:
    """Resolve relative data and external file paths against the config file's folder."""
    def resolve(value: str | None) -> str | None:
        return value if value is None or Path(value).is_absolute() else str(folder / value)

    data = cfg.data.model_copy(update={"path": resolve(cfg.data.path)})
    external = {kind: src.model_copy(update={"path": resolve(src.path)})
                for kind, src in cfg.external.items()}
    return cfg.model_copy(update={"data": data, "external": external})


def parse_utc_now() -> str:
    """The current UTC time as ISO-8601 (for the one field of a report that may vary)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
