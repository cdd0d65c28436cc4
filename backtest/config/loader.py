"""TOML file -> :class:`RunConfig`: ``extends`` (no cycles), ``--set key=value`` overrides, and
errors that name the file, the dotted key, what was expected and what was found.

Unknown keys are refused with a "did you mean" hint. Relative file paths (``data.path``,
``external.<kind>.path``, a ``execution.maintenance_tiers`` file found there) resolve against the
config file's folder, the same for every command.

``extends = "parent.toml"`` merge rules (a child, or a ``--set``, over its parent):

* tables merge key by key, recursively; any other value (list, string, number) of the child
  replaces the parent's;
* the run range is one choice: a child's ``data.window`` drops the parent's ``data.start`` and
  ``data.end``, and a child's ``data.start`` or ``data.end`` drops the parent's ``data.window``;
* the bars' source is one choice: a child's ``data.path`` drops the parent's ``data.dataset`` and
  the other way round (``data.dataset = "none"`` removes it;
  :func:`backtest.config.data.drop_replaced_source`);
* a child's ``strategy.name`` that differs from the parent's starts a fresh ``[strategy]``: the
  parent's ``params`` and ``label`` are dropped (they belong to the other strategy);
* ``[strategy]`` and ``[[strategies]]`` replace each other (a child names one or the other).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from backtest.config.common import REFUSED
from backtest.config.data import drop_replaced_source
from backtest.config.run import RunConfig
from backtest.errors import ConfigError, did_you_mean
from backtest.limits import CONFIG_BYTES, MAX_DEPTH, depth, read_capped
from backtest.redact import mask_secrets

_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _read_toml(path: Path) -> dict[str, Any]:
    """A config file's tables: a regular UTF-8 file of at most 1 MiB, nested at most 32 deep."""
    try:
        text = read_capped(path, CONFIG_BYTES, ConfigError, "a TOML file").decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a TOML file, found a directory") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: expected UTF-8 text, found byte 0x{text_byte(exc)} at "
                          f"offset {exc.start}") from None
    except OSError as exc:  # a symlink loop (ELOOP), no permission, an I/O error
        raise ConfigError(f"{path}: expected a readable TOML file, found "
                          f"{(exc.strerror or str(exc)).lower()}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except ValueError:  # Python refuses to convert integers of more than 4300 digits
        raise ConfigError(f"{path}: invalid TOML: expected integers of at most "
                          f"{sys.get_int_max_str_digits()} digits, found a longer one") from None
    except RecursionError:
        raise _too_deep(str(path)) from None
    if depth(raw) > MAX_DEPTH:
        raise _too_deep(str(path))
    return raw


def _too_deep(where: str) -> ConfigError:
    return ConfigError(f"{where}: expected tables and arrays nested at most {MAX_DEPTH} deep, "
                       f"found deeper")


def text_byte(exc: UnicodeDecodeError) -> str:
    return f"{exc.object[exc.start]:02x}"



def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_child(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``parent`` by the ``extends`` rules of this module's docstring."""
    parent = drop_replaced_source(copy.deepcopy(parent), child)
    data, parent_data = child.get("data", {}), parent.get("data")
    if isinstance(data, dict) and isinstance(parent_data, dict):
        if "window" in data:
            parent_data.pop("start", None)
            parent_data.pop("end", None)
        if "start" in data or "end" in data:
            parent_data.pop("window", None)
    strategy, parent_strategy = child.get("strategy"), parent.get("strategy")
    if (isinstance(strategy, dict) and isinstance(parent_strategy, dict)
            and "name" in strategy and strategy["name"] != parent_strategy.get("name")):
        parent_strategy.pop("params", None)
        parent_strategy.pop("label", None)
    if "strategy" in child:
        parent.pop("strategies", None)
    if "strategies" in child:
        parent.pop("strategy", None)
    return _deep_merge(parent, child)


def _load_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = Path(os.path.realpath(path))  # never raises: a symlink loop fails when read
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ConfigError(f"{seen[0]}: extends: expected no cycle, found {chain}")
    if len(seen) >= MAX_DEPTH:
        raise ConfigError(f"{seen[0]}: extends: expected a chain of at most {MAX_DEPTH} files, "
                          f"found a longer one")
    raw = _read_toml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a relative file path, found {parent!r}")
    return merge_child(_load_with_extends(path.parent / parent, (*seen, resolved)), raw)



def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value``; the value is read as a TOML value, else kept as a string.

    One override is one line: a line break or another control character is refused (TOML
    would read ``a=1\nb=2`` as two keys and the second would be silently dropped)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item}: expected KEY=VALUE, found no '='")
    control = next((ch for ch in item if ch < " " or ch == "\x7f"), None)
    if control is not None:
        raise ConfigError(f"--set {item}: expected KEY=VALUE on one line, found control "
                          f"character {control!r}")
    keys = key.strip().split(".")
    bad = next((k for k in keys if not _KEY.fullmatch(k)), None)
    if bad is not None or len(keys) > MAX_DEPTH:
        raise ConfigError(f"--set {item}: expected a dotted key of at most {MAX_DEPTH} names "
                          f"made of letters, digits, '_' and '-', found {key.strip()!r}")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    except (ValueError, RecursionError):  # a 5,000-digit integer, arrays nested 1,000 deep
        raise ConfigError(f"--set {item}: expected a value nested at most {MAX_DEPTH} deep with "
                          f"integers of at most {sys.get_int_max_str_digits()} digits") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--set {item}: expected a finite number, found {text}")
    if depth(value) + len(keys) > MAX_DEPTH:
        raise _too_deep(f"--set {item}")
    return keys, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return ``raw`` with each ``--set KEY=VALUE`` applied (the ``extends`` rules hold: a
    ``--set data.window=...`` replaces ``start``/``end``, a new ``strategy.name`` drops the
    params)."""
    out = json.loads(json.dumps(raw, default=str))  # deep copy of plain data
    for item in overrides:
        keys, value = parse_override(item)
        child: dict[str, Any] = {}
        node = child
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        probe = out
        for key in keys[:-1]:
            probe = probe.get(key, {}) if isinstance(probe, dict) else probe
            if not isinstance(probe, dict):
                raise ConfigError(f"--set {item}: '{key}' is not a table")
        out = merge_child(out, child)
    return out


def _format_error(source: str, exc: ValidationError, model: type[BaseModel]) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        owner: Any = model
        for part in loc[:-1]:  # list positions and dict keys keep the element model
            field = owner.model_fields.get(part) if owner is not None else None
            if field is not None:
                owner = _model_in(field.annotation)
        known = list(owner.model_fields) if owner is not None else []
        hint = did_you_mean(loc[-1], known) or f" (known keys: {', '.join(known)})"
        return f"{source}: {key}: unknown key{hint}"
    if err["type"] == REFUSED:  # from _Strict: the model's location plus the field
        return f"{source}: {'.'.join([*loc, err['ctx']['field']])}: expected {err['msg']}"
    if err["type"] == "missing":
        return f"{source}: {key}: expected a value, found nothing (the key is required)"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
    found = err.get("input")
    if err["type"].startswith(("value_error", "assertion")):
        return f"{source}: {key}: expected {msg}"
    return f"{source}: {key}: expected {msg}, found {mask_secrets(repr(found))}"



def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[M] | None`` or ``dict[str, M]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None



def parse_config(raw: dict[str, Any], source: str) -> RunConfig:
    """Validate plain data into a :class:`RunConfig`; errors name ``source`` and the key."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc, RunConfig)) from None



def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read ``path`` (following ``extends``), apply overrides and validate."""
    path = Path(path)
    raw = _load_with_extends(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return relative_to(parse_config(raw, str(path)), path.parent)



def relative_to(cfg: RunConfig, folder: Path) -> RunConfig:
    """Resolve relative data and external file paths against the config file's folder; a
    relative ``maintenance_tiers`` file too when it exists there (else it names a file in
    ``datasets/``)."""
    def resolve(value: str | None) -> str | None:
        return value if value is None or Path(value).is_absolute() else str(folder / value)

    data = cfg.data.model_copy(update={"path": resolve(cfg.data.path)})
    external = {kind: src.model_copy(update={"path": resolve(src.path)})
                for kind, src in cfg.external.items()}
    tiers = cfg.execution.maintenance_tiers
    if isinstance(tiers, str) and (folder / tiers).is_file():
        tiers = resolve(tiers)
    execution = cfg.execution.model_copy(update={"maintenance_tiers": tiers})
    return cfg.model_copy(update={"data": data, "external": external, "execution": execution})

