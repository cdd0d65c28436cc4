"""The search space: the strategy's dimensions (plain data) narrowed or fixed by
``[optimize.params]``, and their mapping onto Optuna distributions and samplers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna

from backtest.config.optimize import OptimizeConfig, ParamSpec
from backtest.errors import ConfigError, did_you_mean
from backtest.optimize.grid import EnumeratedGridSampler
from backtest.optimize.tpe import BatchTPESampler
from backtest.strategy.contract import Choice, Dimension, FloatRange, IntRange, StrategySpec


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



def distribution(dim: Dimension) -> optuna.distributions.BaseDistribution:
    """One plain-data dimension -> its Optuna distribution (the one place this mapping lives)."""
    if isinstance(dim, IntRange):
        return optuna.distributions.IntDistribution(dim.low, dim.high, log=dim.log,
                                                    step=dim.step)
    if isinstance(dim, FloatRange):
        return optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log,
                                                      step=dim.step)
    return optuna.distributions.CategoricalDistribution(list(dim.options))



def grid_values(dims: Mapping[str, Dimension], source: str) -> dict[str, list[Any]]:
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
    """The configured sampler, seeded (constraints reach TPE and NSGA-II via set_constraint);
    TPE samples a batch in one call (``tpe``: the stock sampler's draws)."""
    if opt.sampler == "tpe":
        return BatchTPESampler(seed=seed)
    if opt.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if opt.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return EnumeratedGridSampler(grid_values(dims, source), seed=opt.seed)  # one order for all

