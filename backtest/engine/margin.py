"""Isolated-margin arithmetic of a USDT-margined perpetual: maintenance tiers and liquidation.

A tier table is a float array of shape (k, 4): ``notional_cap, maintenance_margin_rate,
maintenance_amount, max_leverage`` with increasing caps. The bundled table is Binance's BTCUSDT
one (``datasets/binance_btcusdt_tiers.toml``). :func:`liquidation_price` and :func:`tier_index`
are plain scalar arithmetic so that :mod:`backtest.engine.kernels` compiles them with numba
unchanged.

Imports numpy, tomllib and from crashbt only :mod:`backtest.errors`, :mod:`backtest.limits`
and :mod:`backtest.data` (for the datasets folder); never pandas, vectorbt or the engine.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backtest.data.external import BUNDLED_TIERS as TIERS_BY_SYMBOL
from backtest.data.files import datasets_dir
from backtest.errors import ConfigError
from backtest.limits import CONFIG_BYTES, read_capped

BUNDLED_TIERS = TIERS_BY_SYMBOL["BTCUSDT"]  # the default table (inputs refuse other symbols)
TIER_KEYS = ("notional_cap", "maintenance_margin_rate", "maintenance_amount", "max_leverage")


def liquidation_price(entry: float, size: float, margin: float, mmr: float, cum: float) -> float:
    """Binance's isolated one-way liquidation price.

    ``size`` is signed (long > 0), ``margin`` the position's isolated wallet balance, ``mmr``
    and ``cum`` the maintenance margin rate and amount of its tier. It is the price P at which
    margin + size x (P - entry) = |size| x P x mmr - cum, i.e.
    P = (size x entry - margin - cum) / (size - |size| x mmr). A long at 1x gets P <= 0 (never).
    """
    return (size * entry - margin - cum) / (size - abs(size) * mmr)


def tier_index(caps: np.ndarray, notional: float) -> int:
    """The tier of a position notional: the first whose cap is >= it (the last one above all)."""
    return min(int(np.searchsorted(caps, notional)), caps.shape[0] - 1)


def max_notional(tiers: np.ndarray, leverage: float, source: str) -> float:
    """The largest notional a position may have at ``leverage``: the cap of the last tier that
    allows it (tiers allow less leverage as the notional grows). The most leverage allowed is
    the table's (``source`` names it in the error), never a number written in the code."""
    allowed = tiers[tiers[:, 3] >= leverage]
    if not allowed.size:
        raise ConfigError(f"execution.leverage: expected at most {tiers[:, 3].max():g} (the "
                          f"highest max_leverage of the maintenance tiers in {source}), found "
                          f"{leverage:g}")
    return float(allowed[:, 0].max())


def check_tiers(rows: Sequence[Sequence[float]], where: str) -> np.ndarray:
    """Validate a tier table and return it as a (k, 4) float array."""
    try:
        tiers = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected rows of 4 numbers ({', '.join(TIER_KEYS)}), "
                          f"found {rows!r}") from None
    if tiers.ndim != 2 or tiers.shape[1] != 4 or not len(tiers):
        raise ConfigError(f"{where}: expected at least one row of 4 numbers "
                          f"({', '.join(TIER_KEYS)}), found shape {tiers.shape}")
    checks = (
        (np.isfinite(tiers).all(axis=1), "finite numbers"),
        (tiers[:, 0] > 0, "notional_cap > 0"),
        (np.concatenate(([True], np.diff(tiers[:, 0]) > 0)), "notional_cap increasing"),
        ((tiers[:, 1] > 0) & (tiers[:, 1] < 1), "0 < maintenance_margin_rate < 1"),
        (tiers[:, 2] >= 0, "maintenance_amount >= 0"),
        (tiers[:, 3] >= 1, "max_leverage >= 1"),
    )
    for ok, what in checks:
        if not ok.all():
            row = int(np.argmin(ok))
            raise ConfigError(f"{where}: tier {row + 1}: expected {what}, found "
                              f"{tiers[row].tolist()}")
    return tiers


def tiers_source(spec: str | Sequence[Sequence[float]] | None = None) -> str:
    """Where a tier table comes from, for messages: its file (the bundled BTCUSDT one for
    ``None``; a name alone is looked up in ``datasets/``), or the inline config rows."""
    if spec is not None and not isinstance(spec, str):
        return "the inline execution.maintenance_tiers"
    path = Path(spec or BUNDLED_TIERS)
    if not path.exists() and (datasets_dir() / path).exists():
        path = datasets_dir() / path
    return str(path)


def load_tiers(spec: str | Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """A tier table: the bundled BTCUSDT one (``None``), a TOML file with ``[[tier]]`` tables
    (``str``: a path, or a file name in ``datasets/``), or inline rows (a user's table always
    replaces the bundled one)."""
    if spec is not None and not isinstance(spec, str):
        return check_tiers(spec, "execution.maintenance_tiers")
    path = Path(tiers_source(spec))
    try:
        text = read_capped(path, CONFIG_BYTES, ConfigError, "a tier TOML file").decode("utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"execution.maintenance_tiers: expected a tier TOML file, found no "
                          f"file {path}") from None
    except OSError as exc:  # a directory, no permission, a symlink loop
        raise ConfigError(f"{path}: expected a readable tier TOML file, found "
                          f"{(exc.strerror or str(exc)).lower()}") from None
    except (ValueError, RecursionError) as exc:  # bad TOML or UTF-8, huge integers, nesting
        raise ConfigError(f"{path}: invalid TOML: {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from None
    rows = raw.get("tier")
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: tier: expected [[tier]] tables, found {type(rows).__name__}")
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: tier {k + 1}: expected a [[tier]] table, found "
                              f"{type(row).__name__} {str(row)[:60]}")
        missing = [key for key in TIER_KEYS if key not in row]
        if missing:
            raise ConfigError(f"{path}: tier {k + 1}: expected {missing[0]}, found keys "
                              f"{', '.join(row)}")
    return check_tiers([[row[key] for key in TIER_KEYS] for row in rows], str(path))
