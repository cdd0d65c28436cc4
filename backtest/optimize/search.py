"""``crashbt optimize`` driver: prepare or resume the study, run the workers, write
optimization.json / optimization.html and the best parameters' run report."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from backtest import pipeline
from backtest.config.common import parse_utc_now
from backtest.config.optimize import OptimizeConfig
from backtest.errors import ConfigError
from backtest.inputs import RunInputs
from backtest.optimize.evaluate import PHASES, Evaluator
from backtest.optimize.request import Request
from backtest.optimize.space import grid_values, search_space
from backtest.optimize.storage import COMPLETE, count_states, quiet_optuna, recover
from backtest.optimize.summary import is_feasible, summarize
from backtest.optimize.workers import run_children, work
from backtest.report import files as report
from backtest.report import html


@dataclass(frozen=True)
class Outcome:
    """What ``run`` did: the report path, the report itself, and whether it was interrupted."""

    path: Path
    doc: dict[str, Any]
    best_run: Path | None
    interrupted: bool



def prepare(req: Request) -> optuna.Study:
    """Create (or reopen) the study; refuse to resume a study started by another config."""
    quiet_optuna()
    dims, _ = search_space(req.spec, req.opt, req.source)
    directions = [o.resolved_direction for o in req.opt.objectives]
    if req.opt.sampler == "grid":
        grid_values(dims, req.source)
    study = optuna.create_study(study_name=req.study, storage=req.open(), directions=directions,
                                load_if_exists=True)
    if study.metric_names is None:  # optuna-dashboard labels the objectives with these
        study.set_metric_names([o.metric for o in req.opt.objectives])
    have = study.user_attrs.get("crashbt_config")
    if have is None:
        study.set_user_attr("crashbt_config", req.config_hash())
    elif have != req.config_hash():
        raise ConfigError(f"{req.source}: optimize: expected the config that started study "
                          f"'{req.study}' (hash {have}), found a changed one "
                          f"({req.config_hash()}); pass --study NEW_NAME for a new study")
    recover(study)
    return study



Progress = Callable[[int, float | None], None]  # (complete trials, best feasible value)


def run(req: Request, on_progress: Progress | None = None,
        inputs: RunInputs | None = None) -> Outcome:
    """Run (or resume) the search, then write optimization.json and the best run's report.

    ``on_progress`` hears the complete count and best value after each batch. Ctrl-C stops the
    workers (a running trial is marked failed), and the report of what was done is still
    written; ``Outcome.interrupted`` tells the caller to exit with 130. ``inputs``: the
    request's inputs when the caller loaded them (``request.inputs_loading``).
    """
    started = time.perf_counter()
    evaluator = Evaluator(req.cfg, req.opt, req.spec, req.source, inputs)
    study = prepare(req)
    interrupted = False

    def on_done(s: optuna.Study) -> None:
        if on_progress is not None:  # the counts are queried only for a listener
            on_progress(*_progress_state(s, req.opt))

    try:
        if req.jobs <= 1:
            work(req, 0, on_done if on_progress is not None else None, evaluator, study)
        else:
            run_children(req, study, on_done)
    except KeyboardInterrupt:
        interrupted = True
    doc = summarize(study, req, evaluator, interrupted)
    best_run = None
    if doc["best"] is not None and not interrupted:
        best_run = _write_best_run(req, evaluator, doc["best"]["params"])
        doc["best_run"] = str(best_run.relative_to(req.study_dir))
    doc["timing"] = {"created_at": parse_utc_now(),
                     "duration_s": round(time.perf_counter() - started, 3)}
    if req.jobs <= 1:  # the workers of --jobs N keep their clocks in their own processes
        doc["timing"]["search_s"] = search_breakdown(evaluator.clock)
    req.study_dir.mkdir(parents=True, exist_ok=True)  # a database study has no journal there
    path = req.study_dir / "optimization.json"
    text = report.to_json(doc)  # NaN/inf as null
    report.atomic_write_text(path, text)
    report.atomic_write_text(req.study_dir / "optimization.html",
                             html.render_optimization(report.as_json(doc)))
    return Outcome(path, doc, best_run, interrupted)



def search_breakdown(clock: Mapping[str, float]) -> dict[str, float]:
    """Seconds per phase of the search loop, plus what was left for Optuna and bookkeeping."""
    out = {phase: round(clock[phase], 3) for phase in PHASES}
    inside = sum(clock[phase] for phase in PHASES if phase != "search")
    out["optuna_and_bookkeeping"] = round(max(clock["search"] - inside, 0.0), 3)
    return out



def _write_best_run(req: Request, evaluator: Evaluator, params: Mapping[str, Any]) -> Path:
    """The best set's run report, from the search's own inputs (loaded once, as a run of the
    same config would load them: only the params differ)."""
    label = f"{req.study}-best"
    strategy = req.cfg.strategy.model_copy(update={"params": dict(params), "label": label})
    cfg = req.cfg.model_copy(update={"strategy": strategy})
    inputs = dataclasses.replace(evaluator.inputs, cfg=cfg,
                                 params=req.spec.make_params(strategy.params, req.source))
    outcome = pipeline.execute(cfg, req.spec, req.source, inputs)
    return pipeline.write(outcome, req.study_dir, with_html=cfg.report.html)



def _progress_state(study: optuna.Study, opt: OptimizeConfig) -> tuple[int, float | None]:
    done = [t for t in study.get_trials(deepcopy=False, states=(COMPLETE,))
            if is_feasible(t)]
    n = count_states(study)["COMPLETE"]
    if not done:
        return n, None
    first = [t.values[0] for t in done]
    return n, max(first) if opt.objectives[0].resolved_direction == "maximize" else min(first)
