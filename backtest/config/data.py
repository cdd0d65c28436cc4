"""``[data]``: which bars, from a bundled dataset or a user file, and which slice of them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import field_validator, model_validator

from backtest.config.common import _Strict, parse_utc


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

