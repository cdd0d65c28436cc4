"""``[optimize]``: the search a config asks for (objectives, constraints, space narrowing,
validation folds). It is the ``optimize`` field of :class:`backtest.config.run.RunConfig`, so an
optimize config is validated, shown, checked and run like any other."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from backtest import catalogue
from backtest.config.common import _Strict
from backtest.errors import did_you_mean


def _metric_name(value: str) -> str:
    if value not in catalogue.METRIC_KEYS:
        raise ValueError(f"a metric name, found {value!r}"
                         f"{did_you_mean(value, catalogue.METRIC_KEYS)}")
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
        return "minimize" if catalogue.direction(self.metric) < 0 else "maximize"



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



#: Trials a worker claims, evaluates and records at once, per sampler: small where the sampler
#: learns from each result (a batch is sampled from the same history), larger where it does not
DEFAULT_BATCH = {"tpe": 8, "nsga2": 8, "random": 64, "grid": 64}


class OptimizeConfig(_Strict):
    """``[optimize]``: the search itself."""

    trials: int = Field(100, ge=1, le=1_000_000)
    timeout_s: float | None = Field(None, gt=0)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: [ObjectiveSpec(metric="sharpe")], min_length=1)
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    sampler: Literal["tpe", "nsga2", "random", "grid"] = "tpe"
    seed: int = Field(0, ge=0, le=2**31)
    batch: int | None = Field(None, ge=1, le=1024)
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    validation: ValidationSpec = ValidationSpec()
    cscv_blocks: int = Field(10, ge=2, le=16)

    @field_validator("cscv_blocks")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"an even number, found {value}")
        return value

    @property
    def resolved_batch(self) -> int:
        """The configured ``batch``, else the sampler's default (``DEFAULT_BATCH``)."""
        return self.batch or DEFAULT_BATCH[self.sampler]

    def search_hash(self) -> str:
        """What defines the search (not how long it runs, nor how it is batched): a resumed
        study must match it."""
        fixed = self.model_dump(mode="json", exclude={"trials", "timeout_s", "seed", "batch"})
        return json.dumps(fixed, sort_keys=True, separators=(",", ":"))
