"""Run reports: ``report.json`` (the source of truth), CSV records, and an HTML view of the JSON.

A report directory is written to a temporary sibling and renamed into place, so a run that fails
or is killed leaves either the previous report or none, never a half-written one. Everything
that varies between identical runs (wall-clock time, durations) lives in the one ``timing`` field.

Imports from crashbt: errors, types (no engine, no optuna).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.errors import OutputError

SCHEMA_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """A file-system safe single path component (no separators, no leading dots)."""
    cleaned = _SAFE.sub("-", name).strip("-.")
    return cleaned[:120] or "run"


def confined(out_dir: Path, name: str) -> Path:
    """``out_dir / safe_name(name)``, guaranteed to stay inside ``out_dir``."""
    base = out_dir.resolve()
    target = (base / safe_name(name)).resolve()
    if target.parent != base:
        raise OutputError(f"{name}: expected a name inside {base}, found a path escaping it")
    return target


def to_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, NaN/inf refused (callers turn them into null)."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def current_umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and an atomic rename.
    The file gets the mode any new file gets (0644 under umask 022), not mkstemp's 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(parent: Path, name: str) -> None:
    """Delete temp and old copies of ``name`` left by writers that were killed (dead pids)."""
    for leftover in parent.glob(f".{name}.*-*-*"):
        kind, _, rest = leftover.name.removeprefix(f".{name}.").partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("tmp", "old") and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``final`` by filling a temp directory and renaming it into place."""
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale(parent, final.name)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.tmp-{os.getpid()}-"))
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; a report is readable
    except OSError as exc:
        raise OutputError(f"{parent}: expected a writable output directory, found "
                          f"{exc.strerror.lower() if exc.strerror else exc}") from None
    try:
        fill(tmp)
        old = None
        if final.exists():
            old = parent / f".{final.name}.old-{os.getpid()}-"
            os.rename(final, old)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def records_csv(records: pd.DataFrame) -> str:
    """Trades or orders as CSV: ISO UTC times, floats to 10 significant digits. An open
    position is one trade row with status "open", marked to the last close."""
    return records.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.10g")


def equity_csv(equity: pd.DataFrame) -> str:
    """One row per bar: ISO UTC timestamp, then the float columns in shortest round-trip form
    (NaN as an empty field). Written by Arrow's C++ CSV writer: pandas' ``to_csv`` formats
    1M bars in about 7 s, this in about 0.5 s."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    index = pd.DatetimeIndex(equity.index)
    seconds = pa.array(index.tz_convert("UTC").as_unit("s").tz_localize(None).to_numpy())
    text = pc.replace_substring(pc.cast(seconds, pa.string()), " ", "T")  # 2026-02-05 00:00:00
    columns = {"timestamp": pc.binary_join_element_wise(text, "Z", "")}
    columns.update({name: pa.array(equity[name].to_numpy(dtype=np.float64), from_pandas=True)
                    for name in equity.columns})
    sink = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    pa_csv.write_csv(pa.table(columns), sink, options)
    return ",".join(columns) + "\n" + sink.getvalue().decode("utf-8")


def write_run(out_dir: Path, report: dict[str, Any], trades: pd.DataFrame,
              orders: pd.DataFrame, equity: pd.DataFrame, html: str | None) -> Path:
    """Write one run's directory ``out_dir/<run_id>/`` atomically and return its path:
    report.json, trades.csv (one row per position), orders.csv (every fill, so each tranche
    buy shows), equity.csv and report.html."""
    final = confined(out_dir, report["run_id"])

    def fill(tmp: Path) -> None:
        (tmp / "trades.csv").write_text(records_csv(trades), encoding="utf-8")
        (tmp / "orders.csv").write_text(records_csv(orders), encoding="utf-8")
        (tmp / "equity.csv").write_text(equity_csv(equity), encoding="utf-8")
        (tmp / "report.json").write_text(to_json(report), encoding="utf-8")
        if html is not None:
            (tmp / "report.html").write_text(html, encoding="utf-8")

    return write_dir_atomically(final, fill)


def read_report(run_dir: Path) -> dict[str, Any]:
    """Load ``report.json`` from a run directory (or the JSON file itself)."""
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputError(f"{path}: expected a report.json, found no such file") from None
    except json.JSONDecodeError as exc:
        raise OutputError(f"{path}: expected valid JSON, found an error at line {exc.lineno}") \
            from None


def trades_records(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """Trades as JSON-ready dicts (timestamps as ISO strings, NaN as None)."""
    frame = trades.copy()
    for col in ("entry_time", "exit_time"):
        if col in frame:
            frame[col] = frame[col].map(
                lambda t: None if pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")
