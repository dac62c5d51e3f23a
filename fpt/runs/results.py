"""results.json: the one schema of a run's result, written by fpt.runs.launch (completed, failed, interrupted runs),
the trainer and the start-up checks (fpt/validate.py: a run that failed before it started).

Light on imports (the start-up checks run before torch is imported). `status` is a plain string
(completed, failed, ...); a run that failed before training has the config's keys with no measurements.
"""
from __future__ import annotations

import math

# what the trainer measured: present once a trainer existed
MEASURED = ("total_steps", "best_step", "best_epoch", "trainable_params", "train_seconds", "train_flops", "growth",
            "init_from")


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
           **some("trainable_params", "train_seconds", "train_flops"), "status": status,
           "prompt_length": cfg.prompt.length, "lr": cfg.optim.lr, "batch_size": cfg.trainer.batch_size,
           **some("growth", "init_from")}
    if error:
        out["error"] = error
    if traceback is not None:
        out["traceback"] = traceback
    return out
