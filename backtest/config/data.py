"""``[data]``: which bars, from a bundled dataset or a user file, which slice of them, at which
bar size (``resample``), and how a user file names its columns (``[data.columns]``).

A config (or ``--set``) naming one source replaces the other source of the config it extends:
``data.path`` drops a parent's ``data.dataset`` and vice versa (:func:`drop_replaced_source`);
``data.dataset = "none"`` removes it outright."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from backtest.config.common import _Strict, parse_utc

SOURCES = ("dataset", "path")
#: bar columns a ``[data.columns]`` table may map to a file's own header
COLUMN_KEYS = ("timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades",
               "taker_buy_base_volume", "taker_buy_quote_volume")


def drop_replaced_source(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` (raw config data) without the ``[data]`` source that ``over`` replaces: when
    ``over`` names ``data.path`` the base's ``data.dataset`` goes, and the other way round."""
    given = over.get("data") or {}
    named = [k for k in SOURCES if k in given and not _unset(given[k])]
    data = base.get("data")
    if len(named) != 1 or not isinstance(data, dict):
        return base
    other = SOURCES[1 - SOURCES.index(named[0])]
    return {**base, "data": {k: v for k, v in data.items() if k != other}}


def _unset(value: Any) -> bool:
    """``"none"`` (or empty) as a source: no source (lets ``--set`` remove a parent's)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", ""))


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
    resample: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("dataset", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        return None if _unset(value) else value

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in value if k not in COLUMN_KEYS]
        if unknown:
            raise ValueError(f"keys among {', '.join(COLUMN_KEYS)}, found {unknown[0]!r}")
        return value

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
        if self.columns and self.path is None:
            raise ValueError("[data.columns] only with 'path' (bundled datasets name their own)")
        return self

