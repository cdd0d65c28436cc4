"""What every config table shares: strict frozen models, UTC parsing and the one ISO-8601
format every report, CSV and message writes, the schema version."""

from __future__ import annotations

import types
import typing
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1
#: How crashbt writes a moment: UTC, seconds, a trailing Z (bar open times in reports and CSVs).
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# pandas' nanosecond range, to the day inside it
FIRST_TIME = datetime(1677, 9, 22, tzinfo=UTC)
LAST_TIME = datetime(2262, 4, 11, tzinfo=UTC)
# the error type of a value _Strict refuses; its context names the field (loader formats it)
REFUSED = "crashbt_refused"



class _Strict(BaseModel):
    """Frozen model that refuses unknown keys, NaN/inf floats, a bool where no bool is expected
    (pydantic would read ``trials = true`` as 1) and anything else where one is (``1``, ``"on"``),
    an empty text where a name or path may be left out (``window = ""`` would silently mean no
    window), and datetimes pandas cannot hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_silent_coercion(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                problem = _coercion(field.annotation, value) if field is not None else None
                if problem:
                    raise PydanticCustomError(REFUSED, "{expected}",
                                              {"field": name, "expected": problem})
        return data

    @model_validator(mode="after")
    def _pandas_time(self) -> Any:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, datetime) and not FIRST_TIME <= value <= LAST_TIME:
                raise PydanticCustomError(REFUSED, "{expected}", {"field": name, "expected": (
                    f"a time between {FIRST_TIME:%Y-%m-%d} and {LAST_TIME:%Y-%m-%d} (what "
                    f"pandas can hold), found {value:%Y-%m-%d}")})
        return self


def _coercion(annotation: Any, value: Any) -> str | None:
    """What a field of ``annotation`` expects when pydantic would silently coerce ``value``."""
    kinds = _leaf_types(annotation)
    if Any in kinds:
        return None
    if isinstance(value, bool) and bool not in kinds:
        wanted = "an integer" if int in kinds else "a number" if float in kinds else "a text"
        return f"{wanted}, found {value}"
    if bool in kinds and not isinstance(value, bool) and not kinds & {int, float, str}:
        return f"true or false, found {value!r}"  # not 1, "yes" or "on"
    if value == "" and str in kinds and type(None) in kinds:
        return "a non-empty text (leave the key out for none), found ''"
    return None


def _leaf_types(annotation: Any) -> set[Any]:
    """The types an annotation admits at its top level (``int | None`` -> {int, NoneType})."""
    if annotation is Any:
        return {Any}
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return set().union(*(_leaf_types(arg) for arg in args))
    if typing.get_origin(annotation) is typing.Annotated:
        return _leaf_types(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        return {type(arg) for arg in args}
    return {typing.get_origin(annotation) or annotation}



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
