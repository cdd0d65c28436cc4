"""The optimization report: trials, best, Pareto front, walk-forward out-of-sample results and
overfitting measures (deflated Sharpe, PBO, in-sample -> out-of-sample decay)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna

from backtest.config.optimize import ConstraintSpec
from backtest.metrics import overfit
from backtest.optimize.evaluate import Evaluator, violation
from backtest.optimize.request import Request
from backtest.optimize.space import search_space
from backtest.optimize.storage import COMPLETE, count_states
from backtest.report import files as report

TOP_CANDIDATES = 5



def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Every constraint holds and every objective is defined (some fold has trades)."""
    ev = stored_eval(trial)
    return all(c <= 0.0 for c in ev.get("constraints", [])) and not ev.get("undefined")



def stored_eval(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The evaluation a trial stored (one user attr, so one journal write per trial)."""
    return trial.user_attrs.get("eval", {})



def pareto_front(values: np.ndarray, signs: np.ndarray) -> list[int]:
    """Row indices not dominated by any other row (``signs`` +1 maximize, -1 minimize)."""
    w = values * signs
    front = []
    for i in range(len(w)):
        dominated = np.any(np.all(w >= w[i], axis=1) & np.any(w > w[i], axis=1))
        if not dominated:
            front.append(i)
    return front



def summarize(study: optuna.Study, req: Request, evaluator: Evaluator,
              interrupted: bool) -> dict[str, Any]:
    """The optimization report: trials, best, Pareto front, walk-forward, overfitting."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == COMPLETE]
    feasible = [t for t in complete if is_feasible(t)]
    objectives = req.opt.objectives
    signs = np.array([1.0 if o.resolved_direction == "maximize" else -1.0 for o in objectives])
    front: list[optuna.trial.FrozenTrial] = []
    best = None
    if feasible:
        vals = np.array([t.values for t in feasible], dtype=float)
        front = [feasible[i] for i in pareto_front(vals, signs)]
        best = max(front, key=lambda t: (signs[0] * t.values[0], -t.number))
    dims, fixed = search_space(req.spec, req.opt, req.source)
    return {
        "schema_version": report.SCHEMA_VERSION,
        "study": req.study,
        "storage": req.storage_label,
        "config": req.cfg.model_dump(mode="json"),
        "optimize": req.opt.model_dump(mode="json"),
        "strategy": req.spec.name,
        "space": {k: d.describe() for k, d in dims.items()},
        "default_space": [k for k in dims if k not in req.opt.params],
        "fixed": fixed,
        "objectives": [{"metric": o.metric, "direction": o.resolved_direction}
                       for o in objectives],
        "requested_trials": req.opt.trials,
        "counts": {k: v for k, v in count_states(study).items() if v},
        "interrupted": interrupted,
        "folds": evaluator.describe_folds(),
        "trials": [_trial_row(t) for t in trials],
        "best": None if best is None else _best_row(best),
        "pareto_front": [_trial_brief(t) for t in front] if len(objectives) > 1 else [],
        "walk_forward": walk_forward_oos(complete, objectives[0].metric, signs[0],
                                         req.opt.constraints),
        "overfitting": overfitting(complete, best, objectives[0].metric, signs[0]),
        "best_run": None,
    }



def _trial_brief(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "values": t.values, "params": t.params}



def _trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = {**t.user_attrs, **stored_eval(t)}
    row = {"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
           "feasible": is_feasible(t) if t.state == COMPLETE else None,
           "retry_of": t.system_attrs.get("failed_trial")}
    for key in ("is_mean", "oos_mean", "folds", "constraints", "undefined", "invalid"):
        if key in attrs:
            row[key] = attrs[key]
    return row



def _best_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {**_trial_brief(t), "params": stored_eval(t)["params_all"],
            "searched": t.params, "is_mean": stored_eval(t)["is_mean"],
            "oos_mean": stored_eval(t)["oos_mean"], "folds": stored_eval(t)["folds"]}



def walk_forward_oos(trials: Sequence[optuna.trial.FrozenTrial], metric: str, sign: float,
                     constraints: Sequence[ConstraintSpec]) -> dict[str, Any] | None:
    """Per fold: the trial best in that fold's in-sample part, and its out-of-sample result.

    This is the honest walk-forward number: each fold's choice sees only its own training bars,
    among the trials that meet every constraint on that fold's in-sample part and define the
    metric there. A fold says when no trial qualifies (``trial`` None) and when all candidates
    tie (``tied``: the lowest-numbered one is shown, the choice is arbitrary). The means are
    over the folds whose out-of-sample part defines the metric (a fold without out-of-sample
    trades has no Sharpe); ``oos_folds`` and ``oos_trades`` say what the headline rests on.
    """
    if not trials or stored_eval(trials[0]).get("oos_mean") is None:
        return None
    rows = []
    for k, fold in enumerate(stored_eval(trials[0])["folds"]):
        ok = [t for t in trials if _fold_feasible(stored_eval(t)["folds"][k]["is"], metric,
                                                     constraints)]
        row: dict[str, Any] = {"fold": fold["name"], "trial": None, "params": None,
                               "candidates": len(ok), "tied": False, "is": {}, "oos": {}}
        if ok:
            scores = [sign * stored_eval(t)["folds"][k]["is"][metric] for t in ok]
            pick = ok[max(range(len(ok)), key=lambda i: (scores[i], -ok[i].number))]
            chosen = stored_eval(pick)["folds"][k]
            row.update({"trial": pick.number, "params": pick.params, "is": chosen["is"],
                        "oos": chosen["oos"],
                        "tied": bool(len(ok) > 1 and min(scores) == max(scores))})
        rows.append(row)
    picked = [r for r in rows if r["trial"] is not None]
    scored = [r for r in picked if r["oos"][metric] is not None]
    return {"metric": metric, "folds": rows,
            "oos_mean": float(np.mean([r["oos"][metric] for r in scored])) if scored else None,
            "is_mean": float(np.mean([r["is"][metric] for r in scored])) if scored else None,
            "oos_folds": len(scored), "n_folds": len(rows),
            "oos_trades": int(sum(r["oos"]["n_trades"] for r in picked))}



def _fold_feasible(values: dict[str, Any], metric: str,
                   constraints: Sequence[ConstraintSpec]) -> bool:
    return values.get(metric) is not None and all(violation(c, values) <= 0.0
                                                  for c in constraints)



def overfitting(complete: Sequence[optuna.trial.FrozenTrial],
                best: optuna.trial.FrozenTrial | None, metric: str,
                sign: float) -> dict[str, Any]:
    """Deflated Sharpe of the best trial, PBO by CSCV, and IS -> OOS decay of top candidates."""
    out: dict[str, Any] = {"n_trials": len(complete), "deflated_sharpe": None, "pbo": None,
                           "decay": []}
    if best is None or len(complete) < 2:
        return out
    srs = np.array([stored_eval(t)["full_stats"]["sharpe"] for t in complete])
    dsr = overfit.deflated_sharpe(overfit.ReturnStats(**stored_eval(best)["full_stats"]),
                                  float(np.var(srs, ddof=1)), len(complete))
    out["deflated_sharpe"] = {**dsr, "significant": dsr["dsr"] >= 0.95,
                              "sample": "best trial's bar returns over the whole period"}
    sums = np.stack([np.array(stored_eval(t)["blocks"]) for t in complete], axis=2)
    out["pbo"] = {**overfit.pbo_from_blocks(sums), "measure": "Sharpe of bar returns"}
    defined = [t for t in complete if stored_eval(t)["is_mean"][metric] is not None]
    ranked = sorted(defined, key=lambda t: (-sign * stored_eval(t)["is_mean"][metric], t.number))
    for t in ranked[:TOP_CANDIDATES]:
        is_v = stored_eval(t)["is_mean"][metric]
        oos = stored_eval(t)["oos_mean"]
        oos_v = None if oos is None else oos[metric]  # None: no out-of-sample trade
        out["decay"].append({
            "number": t.number, "params": t.params, "metric": metric, "is": is_v, "oos": oos_v,
            "decay": None if oos_v is None else oos_v - is_v,
            "oos_over_is": None if oos_v is None or is_v == 0 else oos_v / is_v})
    return out
