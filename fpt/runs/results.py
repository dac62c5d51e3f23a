"""results.json: the one schema of a run's result, written by fpt.runs.launch (completed, failed, interrupted runs),
the trainer and `check_start` (the start-up checks of fpt/validate.py: a run that failed before it started).

Light on imports (the start-up checks run before torch is imported). `status` is a plain string
(completed, failed, ...); a run that failed before training has the config's keys with no measurements.
"""
from __future__ import annotations

import math
import os
import traceback as tb
from pathlib import Path

from ..validate import check_config
from .checkpoint import write_json

# what the trainer measured: present once a trainer existed
MEASURED = ("total_steps", "best_step", "best_epoch", "trainable_params", "train_seconds", "eval_seconds",
            "train_flops", "growth", "init_from")


def improves(score: float, best: float | None) -> bool:
    """Whether dev value `score` beats `best` (None: nothing kept yet); higher is better (task.metric). NaN is
    never better than a number (STS-B's correlations on constant predictions are NaN), and any number beats a
    NaN best: a run's best is NaN only while every evaluation has been."""
    if best is None:
        return True
    if math.isnan(score):
        return False
    return math.isnan(best) or score > best


def run_results(cfg, status: str, *, steps: int = 0, best: dict | None = None, final: dict | None = None,
                error: str | None = None, traceback: str | None = None, **measured) -> dict:
    """The results.json dict of a run of `cfg`: what it was (task, model, prompt, schedule, seed, metric,
    prompt_length, lr, batch_size), how far it got (steps, best and final metrics, and the MEASURED keys the
    trainer gives), its status and, for a failed run, the error and its traceback."""
    unknown = sorted(set(measured) - set(MEASURED))
    if unknown:
        raise TypeError(f"run_results: {unknown} are not results.json keys (expected some of {MEASURED})")

    def some(*keys):
        return {k: measured[k] for k in keys if k in measured}

    out = {"task": cfg.task.name, "model": cfg.model.name, "prompt": cfg.prompt.type, "schedule": cfg.schedule.name,
           "seed": cfg.seed, "steps": steps, **some("total_steps", "best_step", "best_epoch"),
           "metric": cfg.task.metric, "best": best or {}, "final": final or {},
           **some("trainable_params", "train_seconds", "eval_seconds", "train_flops"),
           "status": status,
           "prompt_length": cfg.prompt.length, "lr": cfg.optim.lr, "batch_size": cfg.trainer.batch_size,
           **some("growth", "init_from")}
    if error:
        out["error"] = error
    if traceback is not None:
        out["traceback"] = traceback
    return out


def check_start(cfg, run_dir: Path | str, computes_scores: bool = False) -> None:
    """fpt.validate.check_config(cfg, run_dir); a failure is also recorded in the run folder as a failed results.json
    (a sweep's report lists it), then raised."""
    try:
        check_config(cfg, run_dir, computes_scores)
    except Exception as err:
        record_failure(cfg, Path(run_dir), err)
        raise


def record_failure(cfg, run_dir: Path, err: Exception) -> None:
    """results.json with status "failed" (as fpt.runs.launch writes for a failed run), if the folder takes it; called
    while `err` is being handled (its traceback is recorded)."""
    if os.environ.get("RANK", "0") != "0":
        return
    results = run_results(cfg, "failed", error=f"{type(err).__name__}: {err}", traceback=tb.format_exc())
    try:
        write_json(run_dir / "results.json", results)
    except OSError:
        pass  # an unwritable folder: the error itself still reaches the user
