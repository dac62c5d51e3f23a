"""A hyper-parameter search's sweep: the successive-halving trials table (rung reached, metric there, FLOPs, the
search's total) and `search_summary`, the outcome of any sweep (best job, total training FLOPs)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .read import SEARCH_FILE, mark_search_failures, read_job, read_sweeps
from .report import markdown, num_text

HALVING = "successive_halving"  # its "kind" for hparams_search=*_halving (optuna: "optuna")


def search_trials(root: Path) -> tuple[dict, list[dict]]:
    """(search.json, one record per trial: params, state, rung reached, stop step, metric there, best, FLOPs)."""
    search = json.loads((root / SEARCH_FILE).read_text())
    steps = search["rung_steps"]
    rows = []
    for number, trial in sorted(search["trials"].items(), key=lambda kv: int(kv[0])):
        folder = root / number
        results = read_job(folder).results if folder.is_dir() else {}
        metric = results.get("metric", "")
        reached = max((int(s) for s in trial["rung_values"]), default=None)
        rows.append({"trial": int(number), **trial["params"], "state": trial["state"],
                     "rung": f"{steps.index(reached)}/{len(steps) - 1}" if reached in steps else "",
                     "stop step": reached, "steps run": results.get("steps"), "metric": metric,
                     "value at stop step": _nan_if_none(trial["rung_values"].get(str(reached))) if reached else None,
                     "best": results.get("best", {}).get(metric), "train_flops": results.get("train_flops"),
                     "total_steps": results.get("total_steps")})
    return search, rows


def _nan_if_none(value):
    return math.nan if value is None else value  # search.json writes a NaN metric as null


def _value(value) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else num_text(value, ".4f")


def search_section(root: Path) -> list[str]:
    search, rows = search_trials(root)
    params = [k for k in rows[0] if k not in ("trial", "state", "rung", "stop step", "steps run", "metric",
                                               "value at stop step", "best", "train_flops", "total_steps")] \
        if rows else []
    header = ["trial", *params, "state", "rung", "stop step", "metric", "at stop step", "best", "train FLOPs"]
    body = [[str(r["trial"]), *(str(r[p]) for p in params), r["state"], r["rung"], num_text(r["stop step"], "d"),
             r["metric"], _value(r["value at stop step"]), num_text(r["best"], ".4f"),
             num_text(r["train_flops"], ".4g")]
            for r in rows]
    total = sum(r["train_flops"] or 0 for r in rows)
    # what running every configuration to the full length would cost, from each trial's FLOPs per step so far
    full = sum(r["train_flops"] / r["steps run"] * r["total_steps"] for r in rows
               if r["train_flops"] and r["steps run"] and r["total_steps"])
    lines = [f"## Successive halving: {len(rows)} configurations, rungs at steps {search['rung_steps']} with "
             f"{search['rung_sizes']} trials (eta {search['reduction_factor']})",
             markdown(header, body),
             f"total training FLOPs of the search: {total:.4g} (the {len(rows)} trials' cumulative train_flops "
             f"summed)" + (f"; every configuration to the full length: about {full:.4g} (each trial's FLOPs per "
                           f"step so far x its total steps), so the search cost {total / full:.2f} of that"
                           if full else "")]
    return lines



def search_summary(root: Path) -> dict:
    """The outcome of a sweep (a grid or a search) from its jobs' results: `best`, the completed job with the
    highest best value of its selection metric (the first in folder order on ties) or None, and `value`, that
    value; `flops`, the training FLOPs of every job with results summed; `jobs`, how many have results;
    `full_length`, how many completed (a search's stopped trials did not)."""
    root = Path(root)
    jobs = read_sweeps([root])
    mark_search_failures(jobs, [root])
    best, value, flops, count, full = None, None, 0.0, 0, 0
    for job in jobs:
        if not job.results:
            continue  # unfinished: nothing measured yet
        count += 1
        flops += job.results.get("train_flops") or 0
        full += job.status == "completed"
        score = job.results.get("best", {}).get(job.results.get("metric"))
        if job.status == "completed" and score is not None and (value is None or score > value):
            best, value = job, score
    return {"best": best, "value": value, "flops": flops, "jobs": count, "full_length": full}
