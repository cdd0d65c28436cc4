"""External (non-price) series, point in time: funding, ETF flows, sentiment, on-chain, derivatives.

Each loader returns a frame indexed by the series' own UTC timestamp plus ``published_at``: the
moment the value became public (timestamp + the publication lag from the manifest, or a lag given
in config). :func:`align_to_bars` joins a series onto bars so that bar ``t`` sees only values
published by its close, never back-filled. Bundled series are checked against the manifest hash;
user files of the same kinds follow the schemas in ``datasets/README.md``. Perp inputs are keyed
by symbol (:func:`funding_for`, :func:`check_tiers_for`): a symbol without its own bundled
funding series or tier table needs the user's, never another symbol's. A series loaded from a
file that stops publishing more than :data:`STALE_PERIODS` of its own periods before the last
bar's close is refused rather than forward-filled (its last value would pose as current).

Imports from crashbt only :mod:`backtest.errors` and :mod:`backtest.data`; never vectorbt, ta or
optuna.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.data.bars import UNIT_SECONDS, check_order, timeframe_delta
from backtest.data.files import (
    dataset_entry,
    manifest,
    parse_timestamps,
    read_csv_table,
    read_dataset_bytes,
    read_parquet_table,
    read_user_bytes,
)
from backtest.errors import ConfigError, DataError, did_you_mean

#: hash rate (H/s) = blocks per day x difficulty x 2^32 hashes per difficulty unit / 86,400 s
HASHES_PER_DIFFICULTY = 2.0**32
SECONDS_PER_DAY = 86_400.0
EH = 1e18
STALE_PERIODS = 7  # a week for daily series (ETF flows skip <= 4-day holiday weekends)
#: maintenance-tier tables bundled in datasets/, by perpetual symbol
BUNDLED_TIERS = {"BTCUSDT": "binance_btcusdt_tiers.toml"}
_LAG = re.compile(r"^([+-]?)(\d+)(s|m|min|h|d|w)$", re.IGNORECASE)


@dataclass(frozen=True)
class Kind:
    """The schema of one kind of external series: value columns and default publication lag."""

    required: tuple[str, ...]
    optional: tuple[str, ...] | None
    default_lag: str
    text: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "funding_8h": Kind(("funding_rate",), ("funding_interval_hours",), "0s"),
    "etf_flows": Kind(("net_flow_usd",), None, "1d"),  # None: keep every per-fund column
    "fear_greed": Kind(("value",), ("classification",), "1d", text=("classification",)),
    "hash_rate": Kind((), ("hash_rate_ehs", "difficulty", "blocks_mined"), "1d"),
    "open_interest": Kind(("open_interest_usd",), ("estimated_leverage_ratio",), "1d"),
    "liquidations": Kind(("long_liq_usd", "short_liq_usd"), ("long_liq_btc", "short_liq_btc"),
                         "1d"),
    "funding_1d": Kind(("funding_rate_pct",), (), "1d"),
}


def parse_lag(lag: str, where: str) -> pd.Timedelta:
    """A publication lag like ``"0s"``, ``"8h"`` or ``"1d"``; negative -> ConfigError."""
    match = _LAG.match(str(lag).strip())
    if not match:
        raise ConfigError(f"{where}: expected a duration like '0s', '8h' or '1d', found "
                          f"{lag!r}")
    sign, count, unit = match.groups()
    delta = pd.Timedelta(seconds=int(count) * UNIT_SECONDS[unit.lower()])
    if sign == "-" and delta > pd.Timedelta(0):
        raise ConfigError(f"{where}: expected a lag >= 0 (a value cannot be known before its "
                          f"timestamp), found {lag!r}")
    return delta


def load_external(name: str, lag: str | None = None, path: str | None = None) -> pd.DataFrame:
    """Load an external series with its ``published_at`` column.

    Without ``path``, ``name`` is a bundled dataset (``btc_etf_flows_1d``) or its kind
    (``etf_flows``). With ``path``, ``name`` is the kind of the user's CSV or Parquet file (see
    ``KINDS``; Parquet: by the ``.parquet`` suffix, as ``crashbt data fetch`` writes it).
    ``lag`` overrides the default publication lag.
    """
    if path is None:
        entries = {n: e for n, e in manifest().items() if e["kind"] != "bars"}
        by_kind = {e["kind"]: n for n, e in entries.items()}
        if name not in entries and name not in by_kind:
            choices = [*entries, *by_kind]
            raise DataError(f"external: name: expected a bundled series ({', '.join(choices)}), "
                            f"found {name!r}{did_you_mean(name, choices)}")
        dataset = by_kind.get(name, name)
        entry = dataset_entry(dataset, f"external {name!r}", kinds=tuple(KINDS))
        file, raw, digest = read_dataset_bytes(dataset, entry)
        kind, default_lag = entry["kind"], entry["publish_lag"]
    else:
        if name not in KINDS:
            raise ConfigError(f"external {path}: kind: expected one of {', '.join(KINDS)}, "
                              f"found {name!r}{did_you_mean(name, KINDS)}")
        file = Path(path)
        raw, digest = read_user_bytes(file)
        kind, default_lag, dataset = name, KINDS[name].default_lag, file.name.split(".")[0]
    spec = KINDS[kind]
    delay = parse_lag(default_lag if lag is None else lag, f"external {dataset}: lag")
    label = str(file)
    read = read_parquet_table if file.suffix in (".parquet", ".pq") else read_csv_table
    frame = read(label, raw, ("timestamp", *spec.required), spec.optional, spec.text)
    index = parse_timestamps(label, frame.pop("timestamp"))
    check_order(label, index)
    frame.index = index
    if kind == "hash_rate":
        frame = _with_hash_rate(label, frame)
    _check_finite(label, frame.drop(columns=list(spec.text)))
    frame["published_at"] = index + delay
    frame.attrs.update(name=dataset, kind=kind, lag=str(delay), sha256=digest, path=label)
    return frame


def funding_for(symbol: str, lag: str | None = None, path: str | None = None) -> pd.DataFrame:
    """The 8-hourly funding of ``symbol``'s perpetual: the user's file (``path``) or the bundled
    series whose manifest symbol is ``symbol``. A symbol without either is refused: paying
    another symbol's funding would be silently wrong."""
    if path is not None:
        return load_external("funding_8h", lag=lag, path=path)
    entries = {n: e for n, e in manifest().items() if e["kind"] == "funding_8h"}
    mine = [n for n, e in entries.items() if e.get("symbol") == symbol]
    if not mine:
        have = ", ".join(sorted({str(e.get("symbol")) for e in entries.values()})) or "none"
        raise ConfigError(f"execution.funding: expected a funding series for {symbol or '?'}, "
                          f"found bundled funding only for {have}; supply one with "
                          f"[external.funding_8h] path = \"<file>\", or set execution.funding "
                          f"= false")
    return load_external(mine[0], lag=lag)


def check_tiers_for(symbol: str, tiers: str | list | None) -> None:
    """Refuse a perp run on ``symbol`` that would fall back to another symbol's bundled tier
    table: without ``[execution] maintenance_tiers`` (a file or inline rows), only a symbol in
    :data:`BUNDLED_TIERS` has a table."""
    if tiers is None and symbol not in BUNDLED_TIERS:
        raise ConfigError(f"execution.maintenance_tiers: expected a tier table for "
                          f"{symbol or '?'}, found bundled tiers only for "
                          f"{', '.join(BUNDLED_TIERS)}; supply one (a TOML file with [[tier]] "
                          f"tables, or rows of notional_cap, maintenance_margin_rate, "
                          f"maintenance_amount, max_leverage)")


def derive_hash_rate_ehs(difficulty: pd.Series, blocks_mined: pd.Series) -> pd.Series:
    """Daily hash rate in EH/s = blocks x difficulty x 2^32 / 86,400 s / 1e18."""
    return (blocks_mined * difficulty * HASHES_PER_DIFFICULTY / SECONDS_PER_DAY / EH).rename(
        "hash_rate_ehs")


def _with_hash_rate(label: str, frame: pd.DataFrame) -> pd.DataFrame:
    if "hash_rate_ehs" in frame.columns:
        return frame
    missing = [c for c in ("difficulty", "blocks_mined") if c not in frame.columns]
    if missing:
        raise DataError(f"{label}: column {missing[0]!r}: expected 'hash_rate_ehs' or both "
                        f"'difficulty' and 'blocks_mined', found columns "
                        f"{', '.join(frame.columns)}")
    return frame.assign(hash_rate_ehs=derive_hash_rate_ehs(frame["difficulty"],
                                                           frame["blocks_mined"]))


def _check_finite(label: str, values: pd.DataFrame) -> None:
    """Empty cells (NaN) mean "no value" and are kept; infinities are refused."""
    bad = np.isinf(values.to_numpy(dtype="float64"))
    rows, cols = np.nonzero(bad)
    if rows.size:
        row, col = int(rows[0]), values.columns[cols[0]]
        raise DataError(f"{label}: row {row + 1}: column {col!r}: expected a finite number or "
                        f"an empty cell, found {values.iloc[row, cols[0]]}")


def align_to_bars(series: pd.DataFrame, bars_index: pd.DatetimeIndex, columns: list[str],
                  freq: str | None = None) -> pd.DataFrame:
    """As-of join: bar ``t`` gets the latest row with ``published_at <= close(t)``.

    ``close(t) = t + freq`` (``freq`` like ``"1h"``; inferred from the index when omitted).
    Bars before the first published value get NaN; nothing is back-filled.
    """
    known = [c for c in series.columns if c != "published_at"]
    for column in columns:
        if column not in known:
            raise DataError(f"external {series.attrs.get('name', 'series')}: column {column!r}: "
                            f"expected one of {', '.join(known)}{did_you_mean(column, known)}")
    if freq is not None:
        delta = timeframe_delta(freq, "align_to_bars: freq")
    elif bars_index.freq is not None:
        delta = pd.Timedelta(bars_index.freq)
    else:
        steps, counts = np.unique(np.diff(bars_index.asi8), return_counts=True)
        if not steps.size:
            raise DataError("align_to_bars: expected at least 2 bars or an explicit freq, "
                            f"found {len(bars_index)} bar(s)")
        delta = pd.Timedelta(int(steps[np.argmax(counts)]), unit="ns")
    check_coverage(series, bars_index, delta)
    closes = pd.DataFrame({"close_time": (bars_index + delta).as_unit("ns")})
    right = series[[*columns, "published_at"]].copy()
    right["published_at"] = pd.DatetimeIndex(right["published_at"]).as_unit("ns")
    right = right.sort_values("published_at", kind="stable")
    joined = pd.merge_asof(closes, right, left_on="close_time", right_on="published_at",
                           direction="backward", allow_exact_matches=True)
    return pd.DataFrame({c: joined[c].to_numpy() for c in columns}, index=bars_index)


def check_coverage(series: pd.DataFrame, bars_index: pd.DatetimeIndex,
                   bar_delta: pd.Timedelta) -> None:
    """Refuse a file-backed series that ended before the bars (more than STALE_PERIODS late).

    Only frames from :func:`load_external` (``attrs["path"]`` set) are checked: they know their
    file, so the error can name it and its last row.
    """
    path = series.attrs.get("path")
    published = pd.DatetimeIndex(series["published_at"].dropna())
    if path is None or len(published) < 2 or not len(bars_index):
        return
    steps, counts = np.unique(np.diff(np.sort(published.asi8)), return_counts=True)
    allowed = STALE_PERIODS * pd.Timedelta(int(steps[np.argmax(counts)]), unit="ns")
    last_close = bars_index[-1] + bar_delta
    if last_close - published.max() > allowed:
        latest_open = published.max() + allowed - bar_delta
        raise DataError(f"{path}: row {len(series)} ({series.index.max():%Y-%m-%dT%H:%M:%SZ}, "
                        f"the last): expected the series to cover the bars up to "
                        f"{last_close:%Y-%m-%dT%H:%M:%SZ}, found it ends "
                        f"{(last_close - published.max()) / pd.Timedelta('1D'):.1f} days earlier;"
                        f" set data.end to {latest_open:%Y-%m-%dT%H:%M:%SZ} or earlier, or "
                        f"supply a longer file")
