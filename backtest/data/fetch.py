"""``crashbt data fetch``: OHLCV and funding from any ccxt exchange into a user data directory.

Files go to ``<data_dir>/<exchange>/<SYMBOL>_<timeframe>.parquet`` (funding:
``<SYMBOL>_funding.parquet``) with an entry in ``<data_dir>/manifest.json``: sha256, rows, first
and last timestamp, source (exchange, ccxt version, method, symbol) and ``fetched_at``.

A fetch is incremental and resumable. An existing file is read back through the same loader as
any user file, and the fetch asks only for what comes after its last row. Each page the exchange
returns is committed on its own: the whole file is written to a temporary file, validated by
:func:`backtest.data.bars.load_bars` (funding: :func:`backtest.data.external.load_external`),
and renamed over the old one. The manifest is then replaced the same way. A kill at any moment
leaves the last committed file, which is complete and valid, and the next fetch continues from
it. Only closed bars are stored: a bar whose close is after ``until`` (default: now) is left for
a later fetch.

The network: ccxt's rate limiter is on (``enableRateLimit``), every request has ccxt's
``timeout``, and a rate-limit reply (HTTP 429/418), an error page or a timeout is retried
``retries`` times with a doubling, capped back-off. After that, and for any refusal by the
exchange (unknown symbol, bad request), one :class:`~backtest.errors.DataError` line.
Gaps in the exchange's data are kept as gaps (the loader reports them).

Imports from crashbt only errors, config and the data package.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ccxt
import pandas as pd

from backtest.config.common import parse_utc_now
from backtest.config.data import DataConfig
from backtest.data.bars import load_bars, timeframe_delta
from backtest.data.external import load_external
from backtest.errors import ConfigError, DataError, did_you_mean

MANIFEST = "manifest.json"
OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
MAX_BACKOFF_S = 60.0
DEFAULT_SINCE = pd.Timestamp("2017-01-01", tz="UTC")  # before the data of most exchanges
Progress = Callable[[int, pd.Timestamp], None]


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch and where. ``since`` is the first bar of a new file (an existing file
    continues after its last row); ``until`` caps the bars (default: the moment of the fetch).
    ``exchange_config`` goes to the ccxt constructor (e.g. ``urls``, ``options``)."""

    exchange: str
    symbol: str
    kind: Literal["ohlcv", "funding"] = "ohlcv"
    timeframe: str = "1d"
    since: pd.Timestamp = DEFAULT_SINCE
    until: pd.Timestamp | None = None
    data_dir: Path = Path("data")
    timeout_s: float = 30.0
    page_limit: int = 1000
    retries: int = 5
    backoff_s: float = 1.0
    exchange_config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FetchResult:
    """The file after the fetch: its path, the rows this fetch added, and its manifest entry."""

    path: Path
    added: int
    entry: dict[str, Any]


def target_path(req: FetchRequest) -> Path:
    """``<data_dir>/<exchange>/<SYMBOL>_<timeframe | funding>.parquet``."""
    symbol = re.sub(r"[^A-Za-z0-9]+", "", req.symbol.split(":")[0]).upper()
    suffix = "funding" if req.kind == "funding" else req.timeframe
    return req.data_dir / req.exchange / f"{symbol}_{suffix}.parquet"


def make_exchange(req: FetchRequest) -> ccxt.Exchange:
    """The ccxt exchange ``req.exchange`` with the rate limiter on and a request timeout."""
    if req.exchange not in ccxt.exchanges:
        raise ConfigError(f"data fetch: exchange: expected a ccxt exchange id, found "
                          f"{req.exchange!r}{did_you_mean(req.exchange, ccxt.exchanges)}")
    config = {**req.exchange_config, "enableRateLimit": True,
              "timeout": int(req.timeout_s * 1000)}
    return getattr(ccxt, req.exchange)(config)


def fetch(req: FetchRequest, progress: Progress | None = None) -> FetchResult:
    """Append to ``target_path(req)`` every closed bar (or funding row) after its last row."""
    path = target_path(req)
    until = req.until if req.until is not None else pd.Timestamp(parse_utc_now())
    step = timeframe_delta(req.timeframe, "data fetch: timeframe") if req.kind == "ohlcv" \
        else pd.Timedelta(milliseconds=1)
    stored = _read_stored(path, req)
    since = stored.index[-1] + step if len(stored) else req.since
    exchange = make_exchange(req)
    added = 0
    entry = _manifest(req.data_dir).get(_key(req, path)) or {}
    while since <= until:
        page = _page(exchange, req, since)
        if req.kind == "ohlcv":
            page = page.loc[(page.index >= since) & (page.index + step <= until)]
        else:
            page = page.loc[(page.index >= since) & (page.index <= until)]
        if page.empty:
            break
        stored = pd.concat([stored, page])
        entry = _commit(path, stored, req)
        added += len(page)
        since = page.index[-1] + step
        if progress is not None:
            progress(added, page.index[-1])
    if not len(stored):
        raise DataError(f"data fetch: {req.exchange} {req.symbol}: expected {req.kind} rows "
                        f"from {since:%Y-%m-%dT%H:%M:%SZ} to {until:%Y-%m-%dT%H:%M:%SZ}, "
                        f"found none")
    if not entry or entry.get("sha256") != _sha256(path):
        entry = _record(path, stored, req)  # a kill between file and manifest: mend it
    return FetchResult(path=path, added=added, entry=entry)


def _read_stored(path: Path, req: FetchRequest) -> pd.DataFrame:
    """The committed rows of ``path`` (empty frame when new), read by the user-file loaders."""
    columns = OHLCV_COLUMNS if req.kind == "ohlcv" else ("funding_rate",)
    if not path.exists():
        return pd.DataFrame(columns=list(columns), dtype="float64",
                            index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
    return _load(path, req)[list(columns)]


def _load(path: Path, req: FetchRequest) -> pd.DataFrame:
    """Validate a file with the loaders every user file goes through."""
    if req.kind == "funding":
        return load_external("funding_8h", path=str(path)).drop(columns="published_at")
    bars, _ = load_bars(DataConfig(path=str(path), format="parquet", symbol=req.symbol,
                                   timeframe=req.timeframe, bad_ticks="warn"))
    return bars


def _page(exchange: ccxt.Exchange, req: FetchRequest, since: pd.Timestamp) -> pd.DataFrame:
    """One page from ``since`` as a frame on a UTC index, retrying transient failures."""
    since_ms = int(since.value // 1_000_000)
    for attempt in range(req.retries + 1):
        try:
            if req.kind == "ohlcv":
                rows = exchange.fetch_ohlcv(req.symbol, req.timeframe, since_ms, req.page_limit)
                return _frame([r[0] for r in rows], {c: [r[i + 1] for r in rows]
                                                     for i, c in enumerate(OHLCV_COLUMNS)})
            rows = exchange.fetch_funding_rate_history(req.symbol, since_ms, req.page_limit)
            return _frame([r["timestamp"] // 1000 * 1000 for r in rows],
                          {"funding_rate": [r["fundingRate"] for r in rows]})
        except ccxt.NetworkError as exc:  # timeouts, 429/418 rate limits, error pages
            if attempt == req.retries:
                raise DataError(f"data fetch: {req.exchange} {req.symbol}: expected an answer, "
                                f"found {type(exc).__name__} after {req.retries + 1} tries "
                                f"({_short(exc)}); run the fetch again to resume") from None
            time.sleep(min(req.backoff_s * 2**attempt, MAX_BACKOFF_S))
        except ccxt.BaseError as exc:  # the exchange refused: bad symbol, bad request...
            raise DataError(f"data fetch: {req.exchange} {req.symbol}: expected {req.kind} "
                            f"data, found {type(exc).__name__} ({_short(exc)})") from None
    raise AssertionError("unreachable")


def _frame(stamps_ms: list[int], columns: dict[str, list[Any]]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(stamps_ms, unit="ms", utc=True), name="timestamp")
    frame = pd.DataFrame(columns, index=index.as_unit("ns"), dtype="float64")
    return frame[~frame.index.duplicated(keep="last")].sort_index()


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]


def _commit(path: Path, frame: pd.DataFrame, req: FetchRequest) -> dict[str, Any]:
    """Write ``frame`` to ``path`` atomically after the loader accepted it; then the manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".parquet")
    os.close(fd)
    try:
        frame.reset_index().to_parquet(tmp, index=False)
        _load(Path(tmp), req)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return _record(path, frame, req)


def _record(path: Path, frame: pd.DataFrame, req: FetchRequest) -> dict[str, Any]:
    """Replace ``path``'s manifest entry (atomically) and return it."""
    entry = {
        "kind": "bars" if req.kind == "ohlcv" else "funding_8h",
        "symbol": req.symbol, "timeframe": req.timeframe if req.kind == "ohlcv" else None,
        "sha256": _sha256(path), "rows": len(frame),
        "first": f"{frame.index[0]:%Y-%m-%dT%H:%M:%SZ}",
        "last": f"{frame.index[-1]:%Y-%m-%dT%H:%M:%SZ}",
        "source": f"ccxt {ccxt.__version__} {req.exchange} "
                  f"{'fetch_ohlcv' if req.kind == 'ohlcv' else 'fetch_funding_rate_history'} "
                  f"{req.symbol}",
        "fetched_at": parse_utc_now(),
    }
    entries = _manifest(req.data_dir)
    entries[_key(req, path)] = entry
    _write_atomic(req.data_dir / MANIFEST,
                  json.dumps({"files": dict(sorted(entries.items()))}, indent=2) + "\n")
    return entry


def _key(req: FetchRequest, path: Path) -> str:
    return path.relative_to(req.data_dir).as_posix()


def _manifest(data_dir: Path) -> dict[str, dict[str, Any]]:
    path = data_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: expected a JSON object with 'files', found unreadable "
                        f"content ({exc})") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fsync(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
