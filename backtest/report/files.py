"""Run reports: ``report.json`` (the source of truth), CSV records, and an HTML view of the JSON.

A report directory is written to a temporary sibling and renamed into place, so a run that fails
or is killed leaves either the previous report or none, never a half-written one; the next write
sweeps what killed writers left. Everything that varies between identical runs (wall-clock time,
durations) lives in the one ``timing`` field. Reading a run back checks ``report.json`` and the
CSVs: once written they are user input.

Imports from crashbt: errors, limits, types (no engine, no optuna).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from backtest.errors import OutputError
from backtest.limits import DATA_BYTES, MAX_DEPTH, REPORT_BYTES, depth, read_capped

SCHEMA_VERSION = 1
PID_MAX = 1 << 22  # Linux's largest pid: a larger number in a temp name is not a writer's pid
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
    """Deterministic JSON: sorted keys, 2-space indent, ASCII only, values JSON has no type for
    as their ``str()``, NaN/inf as null (JSON has neither).

    The text is exactly what ``json.dumps(data, indent=2, sort_keys=True, default=str)`` wrote
    before (report.json, optimization.json and run ids hash it), encoded by orjson: a 1.15 MB
    optimization.json in ~2 ms instead of ~37 ms in Python's indenting encoder. orjson writes
    UTF-8 and small floats its own way (``0.00001``, ``1e-7``), so those are put back in
    Python's form (``\\u00e9``, ``1e-05``, ``1e-07``); what orjson refuses (integers beyond 64
    bits, keys that are not text, lone surrogates) goes through ``json`` as before."""
    try:
        text = orjson.dumps(data, default=_plain, option=_ORJSON_INDENTED).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_nulled(data), indent=2, sort_keys=True, allow_nan=False,
                          default=str) + "\n"
    text = _EXPONENT_ONE_DIGIT.sub(_two_digit_exponent, _FIVE_DECIMAL_ZEROS.sub(
        _exponent_form, text))
    if not text.isascii() or "\x7f" in text:
        text = _NOT_ASCII.sub(_ascii_escape, text)
    return text


def as_json(data: Any) -> Any:
    """``data`` as :func:`to_json` writes it, read back (sorted keys, JSON types)."""
    try:
        return orjson.loads(orjson.dumps(data, default=_plain, option=_ORJSON_OPTIONS))
    except orjson.JSONEncodeError:
        return json.loads(json.dumps(_nulled(data), sort_keys=True, allow_nan=False,
                                     default=str))


# orjson writes datetimes and dataclasses itself; json wrote their str(): pass them to _plain
_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                   | orjson.OPT_PASSTHROUGH_DATACLASS)
_ORJSON_INDENTED = _ORJSON_OPTIONS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
# orjson and Python's repr differ only for exponents -5..-9 (same digits): 1.5e-05 is
# "0.000015" and 1.5e-07 "1.5e-7" in orjson. In indented JSON every scalar ends its line (text
# never holds a raw newline; a line ending in a string ends in a quote), so a match ending a
# line is a number. Each pattern starts with a literal: the regex engine jumps between them.
_FIVE_DECIMAL_ZEROS = re.compile(r"0\.0000\d+(?=,?$)", re.M)
_EXPONENT_ONE_DIGIT = re.compile(r"e-\d(?=,?$)", re.M)
_NOT_ASCII = re.compile("[\x7f-\U0010ffff]")  # only ever inside strings


def _plain(value: Any) -> Any:
    """What json wrote for a value orjson has no native form for: a float subclass (numpy's
    float64) as its number, a named tuple as a list, anything else as its ``str()``."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _nulled(value: Any) -> Any:
    """``value`` with NaN/inf as None at any depth (orjson writes them as null itself; json,
    the fallback, refuses them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulled(v) for v in value]
    return value


def _exponent_form(match: re.Match[str]) -> str:
    """``0.000015`` as Python writes it (``1.5e-05``); ``10.00001`` and the like as they are."""
    start = match.start()
    if start and match.string[start - 1].isdigit():
        return match[0]
    return repr(float(match[0]))


def _two_digit_exponent(match: re.Match[str]) -> str:
    return f"e-0{match[0][2]}"


def _ascii_escape(match: re.Match[str]) -> str:
    """A character as json's ``ensure_ascii`` escapes it (astral ones as surrogate pairs)."""
    code = ord(match[0])
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xd800 | code >> 10:04x}\\u{0xdc00 | code & 0x3ff:04x}"


def current_umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and an atomic rename.


    The file gets the mode any new file gets (0644 under umask 022), not mkstemp's 0600. The
    temp file is ``.<name>.tmp-<pid>-<random>``: when its writer is killed, the next write in
    this directory (or a run writing into the parent folder) removes it. A failing write (disk
    full, read-only, no permission) is one :class:`OutputError` naming ``path``.
    """
    try:
        kind = path.lstat().st_mode if os.path.lexists(path) else stat.S_IFREG
        if not (stat.S_ISREG(kind) or stat.S_ISLNK(kind)):  # never replace /dev/null or a dir
            raise OutputError(f"{path}: expected a regular file to write, found "
                              f"{'a directory' if stat.S_ISDIR(kind) else 'a special file'}")
        sweep(path.parent, inside=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-")
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unwritable(path: Path, exc: OSError) -> OutputError:
    reason = (exc.strerror or type(exc).__name__).lower()
    return OutputError(f"{exc.filename or path}: expected a writable output location, found "
                       f"{reason}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# .<name>.tmp-<pid>-<random>: a file or directory being written; .<name>.old-<pid>-: the
# previous report directory, set aside while the new one moves in
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-\w*$")


def sweep(folder: Path, inside: bool = True) -> None:
    """Clean up after writers that were killed (their pid is gone) in ``folder`` and, with
    ``inside``, in each folder directly inside it (the run and study directories of an output
    folder): delete their temp files and directories, and put a set-aside previous report back
    where a kill left none in its place (else delete it)."""
    for entry in _entries(folder):
        _clean(entry)
        if inside and entry.is_dir() and not entry.is_symlink() and entry.name[:1] != ".":
            for inner in _entries(entry):
                _clean(inner)


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:  # missing or unreadable: nothing of ours to clean there
        return []


def _clean(entry: Path) -> None:
    match = _LEFTOVER.match(entry.name)
    if match is None or int(match["pid"]) > PID_MAX or pid_alive(int(match["pid"])):
        return
    original = entry.with_name(match["name"])
    with contextlib.suppress(OSError):
        if match["kind"] == "old" and not original.exists():
            os.rename(entry, original)  # killed between the two renames: restore the old copy
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``final`` by filling a temp directory and renaming it into place.

    A previous ``final`` is renamed aside, the new one renamed in, then the old one deleted:
    a kill between the renames leaves the old copy aside, and the next write (:func:`sweep`)
    puts it back. Any failure leaves the previous report as it was.
    """
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        sweep(parent)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.tmp-{os.getpid()}-"))
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; a report is readable
    except OSError as exc:
        raise OutputError(f"{parent}: expected a writable output directory, found "
                          f"{exc.strerror.lower() if exc.strerror else exc}") from None
    old = parent / f".{final.name}.old-{os.getpid()}-"
    try:
        fill(tmp)
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            os.rename(old, final)
        if isinstance(exc, OSError):
            raise _unwritable(final, exc) from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final


def records_csv(records: pd.DataFrame) -> str:
    """Trades or orders as CSV: ISO UTC times, floats to 10 significant digits. An open
    position is one trade row with status "open", marked to the last close."""
    return records.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.10g")


def write_run(out_dir: Path, report: dict[str, Any], trades: pd.DataFrame,
              orders: pd.DataFrame, equity: pd.DataFrame,
              html: Callable[[], str] | None) -> Path:
    """Write one run's directory ``out_dir/<run_id>/`` atomically and return its path:
    report.json, trades.csv (one row per position), orders.csv (every fill, so each tranche
    buy shows), the equity file ``report["files"]["equity"]`` names (equity.csv or
    equity.parquet) and report.html (``html`` renders it; None for no page). The page is
    rendered while a background thread writes the equity file (Arrow formats it without the
    GIL): at 10M bars each takes about a second."""
    from backtest.report.equity import write_equity  # it reads through this module

    final = confined(out_dir, report["run_id"])
    equity_name = run_file(final, report, "equity", "equity.csv").name

    def fill(tmp: Path) -> None:
        with ThreadPoolExecutor(1) as background:
            writing = background.submit(write_equity, equity, tmp / equity_name)
            try:
                (tmp / "trades.csv").write_text(records_csv(trades), encoding="utf-8")
                (tmp / "orders.csv").write_text(records_csv(orders), encoding="utf-8")
                (tmp / "report.json").write_text(to_json(report), encoding="utf-8")
                if html is not None:
                    (tmp / "report.html").write_text(html(), encoding="utf-8")
            finally:
                writing.result()  # waits for it, and raises what it raised

    return write_dir_atomically(final, fill)


def read_report(run_dir: Path) -> dict[str, Any]:
    """Load and check ``report.json`` from a run directory (or the JSON file itself).

    A report is user input once written: a tampered, truncated or foreign file, another
    ``schema_version`` or a wrong shape is one :class:`OutputError` naming the file and key.
    """
    path = run_dir / "report.json" if run_dir.is_dir() else run_dir
    try:
        text = read_capped(path, REPORT_BYTES, OutputError, "a report.json").decode("utf-8")
        report = json.loads(text, parse_constant=_no_constant)
    except FileNotFoundError:
        raise OutputError(f"{path}: expected a report.json, found no such file") from None
    except OSError as exc:
        raise OutputError(f"{path}: expected a readable report.json, found "
                          f"{(exc.strerror or type(exc).__name__).lower()}") from None
    except UnicodeDecodeError as exc:
        raise OutputError(f"{path}: expected UTF-8 JSON, found byte 0x{exc.object[exc.start]:02x} "
                          f"at offset {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise OutputError(f"{path}: expected valid JSON, found an error at line {exc.lineno}") \
            from None
    except RecursionError:
        raise OutputError(f"{path}: expected JSON nested at most {MAX_DEPTH} deep, found "
                          f"deeper") from None
    except ValueError as exc:  # NaN or Infinity, integers of more than 4300 digits
        raise OutputError(f"{path}: expected JSON numbers, found {str(exc)[:120]}") from None
    if depth(report) > MAX_DEPTH:
        raise OutputError(f"{path}: expected JSON nested at most {MAX_DEPTH} deep, found deeper")
    if not isinstance(report, dict):
        raise OutputError(f"{path}: expected a JSON object, found {type(report).__name__}")
    version = report.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise OutputError(f"{path}: schema_version: expected {SCHEMA_VERSION} (written by this "
                          f"crashbt), found {str(version)[:40]}")
    check_shape(report, REPORT_SHAPE, path)
    for key in ("by_regime", "by_window"):  # a "strategy" table means the split form
        block = report.get(key)
        if isinstance(block, dict) and isinstance(block.get("strategy"), dict):
            check_shape(block, _SPLIT_TABLES, path, key)
    init_cash = report["config"]["execution"]["init_cash"]
    if not 0 < init_cash < math.inf:
        raise _wrong(path, "config.execution.init_cash", "a positive number", init_cash)
    return report


def _no_constant(name: str) -> None:
    raise ValueError(name)


class Each:
    """A shape: a JSON object (any keys) or an array whose every value has ``shape``."""

    def __init__(self, container: type, shape: Any) -> None:
        self.container, self.shape = container, shape


class Stamp:
    """A shape: a text holding a timestamp (``2026-02-05T00:00:00Z``); the pages parse it."""


STAMP = Stamp()
NUMBER = (int, float, type(None))  # metrics may be null (undefined), never text or a bool
# by_regime / by_window: {"strategy": {segment: metrics}, "buy_and_hold": ...} or, from older
# reports, {segment: metrics}
_TABLES = Each(dict, Each(dict, NUMBER))
_SPLIT_TABLES = {"strategy": _TABLES, "buy_and_hold?": (_TABLES, type(None))}
SEGMENTS = (_SPLIT_TABLES, _TABLES, type(None))
# what report.json must hold for ``report`` and ``compare`` to render it; "key?" is optional
REPORT_SHAPE: dict[str, Any] = {
    "run_id": str, "engine": str, "metrics": Each(dict, NUMBER), "benchmark": Each(dict, NUMBER),
    "dataset": {"name": str, "sha256": str, "symbol": str, "timeframe": str, "start": STAMP,
                "end": STAMP},
    "strategy": {"name": str, "label": str, "levels?": (dict, type(None)),
                 "notes?": (dict, type(None))},
    "config": {"data": dict, "execution": {"init_cash": (int, float)}},
    "files?": {"equity?": str, "trades?": str},
    "regime_spans?": (Each(list, {"regime": str, "start": STAMP, "end": STAMP}), type(None)),
    "by_regime?": SEGMENTS,
    "by_window?": SEGMENTS,
}


def check_shape(value: Any, shape: Any, path: Path, where: str = "") -> None:
    """Raise an :class:`OutputError` naming ``path`` and the dotted key where ``value`` does not
    have ``shape``: a type, a tuple of alternatives, a ``{key: shape}`` dict, :class:`Each` or
    :data:`STAMP`."""
    key = where or "(top level)"
    if shape is STAMP:
        if not isinstance(value, str) or not _is_stamp(value):
            raise _wrong(path, key, "a timestamp text such as 2026-02-05T00:00:00Z", value)
        return
    if isinstance(shape, tuple) and not all(isinstance(alt, type) for alt in shape):
        errors = []
        for alt in shape:
            try:
                check_shape(value, alt, path, where)
                return
            except OutputError as exc:
                errors.append(exc)
        raise errors[0]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise _wrong(path, key, "an object", value)
        for name, sub in shape.items():
            field = name.rstrip("?")
            if field in value:
                check_shape(value[field], sub, path, _dotted(where, field))
            elif not name.endswith("?"):
                raise OutputError(f"{path}: {_dotted(where, field)}: expected a value, found "
                                  f"none (missing key)")
        return
    if isinstance(shape, Each):
        if not isinstance(value, shape.container):
            raise _wrong(path, key, _type_name(shape.container), value)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for name, item in items:
            check_shape(item, shape.shape, path, _dotted(where, str(name)))
        return
    kinds = shape if isinstance(shape, tuple) else (shape,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise _wrong(path, key, " or ".join(_type_name(kind) for kind in kinds), value)


def _is_stamp(text: str) -> bool:
    try:
        return not pd.isna(pd.Timestamp(text))
    except (ValueError, TypeError, OverflowError):
        return False


def _dotted(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _type_name(shape: type) -> str:
    return {str: "a text", int: "an integer", float: "a number", dict: "an object",
            list: "an array", type(None): "null"}.get(shape, shape.__name__)


def _wrong(path: Path, key: str, expected: str, value: Any) -> OutputError:
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    return OutputError(f"{path}: {key}: expected {expected}, found {shown}")


def read_table(path: Path, required: tuple[str, ...], times: tuple[str, ...] = (),
               texts: tuple[str, ...] = (), filled: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV of a run directory (trades.csv, equity.csv), checked: ``required`` columns, ISO
    times in ``times``, text in ``texts``, numbers elsewhere; only ``filled`` columns refuse
    empty cells."""
    try:
        raw = read_capped(path, DATA_BYTES, OutputError, "a CSV file")
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: expected a readable CSV file, found "
                          f"{(exc.strerror or type(exc).__name__).lower()}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise OutputError(f"{path}: expected a CSV file, found {str(exc).splitlines()[0][:120]}"
                          ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))[:200]
        raise OutputError(f"{path}: column {missing[0]!r}: expected a column named "
                          f"{missing[0]!r}, found columns {found}")
    for column in filled:
        empty = np.flatnonzero(frame[column].to_numpy() == "")
        if empty.size:
            raise OutputError(f"{path}: row {empty[0] + 1}: column {column!r}: expected a value, "
                              f"found an empty cell")
    out = {}
    for column in frame.columns:
        cells = frame[column].replace("", None)
        if column in texts:
            out[column] = cells
            continue
        parsed = (pd.to_datetime(cells, format="ISO8601", utc=True, errors="coerce")
                  if column in times else pd.to_numeric(cells, errors="coerce"))
        bad = np.flatnonzero(np.asarray(parsed.isna() & cells.notna()))
        if bad.size:
            kind = "an ISO-8601 UTC time" if column in times else "a number"
            raise OutputError(f"{path}: row {bad[0] + 1}: column {column!r}: expected {kind}, "
                              f"found {str(cells.iloc[bad[0]])[:40]!r}")
        out[column] = parsed
    return pd.DataFrame(out, columns=frame.columns)


def run_file(base: Path, report: dict[str, Any], key: str, default: str) -> Path:
    """The path of a CSV a report names in ``files``: a plain name inside its run directory."""
    name = report.get("files", {}).get(key, default)
    if name in ("", ".", "..") or Path(name).name != name or name.startswith("."):
        raise OutputError(f"{base / 'report.json'}: files.{key}: expected a file name inside the "
                          f"run directory, found {name[:60]!r}")
    return base / name


def trades_records(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """Trades as JSON-ready dicts (timestamps as ISO strings, NaN as None), from each column's
    Python list (pandas' ``where`` and ``to_dict`` cost ~9 ms on their first call)."""
    columns = {}
    for name in trades.columns:
        cells = trades[name]
        if name in ("entry_time", "exit_time"):
            columns[name] = [None if pd.isna(t) else pd.Timestamp(t).strftime(
                "%Y-%m-%dT%H:%M:%SZ") for t in cells.tolist()]
        else:
            present = cells.notna().to_numpy()
            columns[name] = [v if ok else None
                             for v, ok in zip(cells.tolist(), present, strict=True)]
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
