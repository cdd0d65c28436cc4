"""What every config table shares: strict frozen models, UTC parsing and the one ISO-8601
format every report, CSV and message writes, the schema version."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1
#: How crashbt writes a moment: UTC, seconds, a trailing Z (bar open times in reports and CSVs).
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"



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



def parse_utc_now() -> str:
    """The current UTC time as ISO-8601 (for the one field of a report that may vary)."""
    return datetime.now(UTC).isoformat(timespec="seconds")



def iso(moment: Any) -> str:
    """``moment`` (a pandas Timestamp or datetime, UTC) as :data:`ISO_FORMAT`."""
    return moment.strftime(ISO_FORMAT)
