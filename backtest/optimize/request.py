"""What a search is asked to do (:class:`Request`, from ``crashbt optimize``'s arguments) and
its inputs loading while the search's own modules import: nothing here imports optuna, so the
bars (the one input builder, :func:`backtest.inputs.prepare`) load on a thread meanwhile
(~0.06 s of a 200-trial search of the shipped example)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from backtest.config.loader import _format_error, load_config
from backtest.config.optimize import OptimizeConfig
from backtest.config.run import RunConfig
from backtest.errors import ConfigError
from backtest.inputs import RunInputs, prepare
from backtest.redact import mask_secrets
from backtest.report import files as report
from backtest.strategy.contract import StrategySpec

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Request:
    """Everything a worker process needs (picklable)."""

    cfg: RunConfig
    opt: OptimizeConfig
    spec: StrategySpec
    source: str
    study: str
    out_dir: Path
    storage_url: str | None = None
    jobs: int = 1

    @property
    def study_dir(self) -> Path:
        return report.confined(self.out_dir, self.study)

    @property
    def journal(self) -> Path:
        return self.study_dir / "study.journal"

    @property
    def storage_label(self) -> str:
        url = self.storage_url
        return mask_secrets(url, url) if url else str(self.journal)

    def open(self) -> optuna.storages.BaseStorage:
        from backtest.optimize.storage import open_storage  # optuna: not before a search

        return open_storage(self.storage_url, self.journal)

    def config_hash(self) -> str:
        blob = self.cfg.canonical_json() + self.opt.search_hash() + self.spec.name
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def inputs_loading(req: Request) -> Iterator[Future[RunInputs]]:
    """The search's inputs loading on a thread (zlib and Arrow's CSV reader release the GIL)
    for the duration of the block: import optuna and the search inside it."""
    with ThreadPoolExecutor(1, thread_name_prefix="inputs") as loading:
        yield loading.submit(prepare, req.cfg, req.spec, req.source)


def request_from_cli(config: str, overrides: Sequence[str], *, trials: int | None = None,
                     timeout_s: float | None = None, seed: int | None = None,
                     storage: str | None = None, study: str | None = None, jobs: int = 1,
                     out: str | None = None, allow_external: bool = False) -> Request:
    """Build a :class:`Request` from ``crashbt optimize`` arguments (flags beat the config).

    The config is loaded as for ``run`` (extends, --set, paths relative to its folder) and the
    strategy resolved as for ``run`` (``module:SPEC`` only with ``allow_external``)."""
    from backtest import plugins

    cfg = load_config(config, list(overrides))
    if cfg.strategy is None:
        raise ConfigError(f"{config}: strategy: expected one [strategy] to optimize, found "
                          f"[[strategies]] with {len(cfg.strategies or [])} entries")
    opt = cfg.optimize or OptimizeConfig()
    cfg = cfg.model_copy(update={"optimize": None})  # the search is in opt (and its hash)
    flags = {k: v for k, v in (("trials", trials), ("timeout_s", timeout_s), ("seed", seed))
             if v is not None}
    try:
        opt = OptimizeConfig.model_validate({**opt.model_dump(), **flags})
    except ValidationError as exc:
        raise ConfigError(_format_error("command line", exc, OptimizeConfig)) from None
    if not 1 <= jobs <= 256:
        raise ConfigError(f"command line: --jobs: expected 1..256 workers, found {jobs}")
    if storage is not None and "://" not in storage:
        raise ConfigError(f"command line: --storage: expected a database URL such as "
                          f"postgresql://user:password@host/db, found {mask_secrets(storage)!r}")
    spec = plugins.resolve(cfg.strategy.name, config, allow_external)
    if jobs > 1 and plugins.is_external(cfg.strategy.name) and ".py:" in cfg.strategy.name:
        # a worker process imports the spec by module name; a file imported by path has none
        raise ConfigError(f"{config}: strategy.name: expected 'package.module:SPEC' (on "
                          f"PYTHONPATH) with --jobs {jobs}, found the file "
                          f"{cfg.strategy.name!r}; use --jobs 1 or make it a module")
    name = report.safe_name(study or cfg.name or Path(config).stem)
    return Request(cfg, opt, spec, config, name, Path(out or cfg.report.out), storage, jobs)
