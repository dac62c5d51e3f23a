"""Scoring a model on a task's eval (and test) features, delegating to the task's kind.

Each rank predicts its shard of the features (`dist.shard`) in length-sorted batches (`fpt.batching.map_sorted`:
only padding changes) and puts its outputs, one per feature, back in input order; they are gathered in rank order
(`dist.gather_lists`), which is input order, and every rank scores the whole set, so all ranks return the same dict.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from . import distributed as dist
from .metrics import METRICS, compute_metrics
from .batching import map_sorted
from .task_kinds import get_kind


def metric_keys(task) -> set[str]:
    """The keys an evaluation of this task returns (dev split): each metric scores its registered sample."""
    keys = set(get_kind(task).no_answer_metric_keys) if task.allow_no_answer else set()
    for name in task.metrics:
        if name not in METRICS:
            raise ValueError(f"task {task.name}: task.metrics has unknown metric {name!r}; known: {sorted(METRICS)}")
        keys |= set(compute_metrics([name], *METRICS[name].sample))
    return keys


def check_metric(task) -> None:
    """Fail at start-up (not at the first evaluation) when task.metric is not among the computed metrics."""
    keys = metric_keys(task)
    if task.metric not in keys:
        raise ValueError(f"task {task.name}: task.metric={task.metric!r} is not computed by task.metrics "
                         f"{list(task.metrics)}; choose one of {sorted(keys)}")


@torch.no_grad()
def evaluate(model, kind, task, features, *, seq2seq: bool, batch_size: int, device, pad_id: int,
             autocast=None) -> dict[str, float]:
    """Metrics of one split, identical on every rank."""
    def predict(batch):
        with autocast or nullcontext():
            return kind.predict(model, batch, task, seq2seq)

    outputs = map_sorted(predict, features, dist.shard(range(len(features))), batch_size, pad_id, device)
    outputs = dist.gather_lists(outputs)
    return {k: float(v) for k, v in kind.score(task, features, outputs, seq2seq).items()}


def evaluate_splits(model, kind, task, splits: dict, **kwargs) -> dict[str, float]:
    """The "eval" split's metrics, plus "<split>_<metric>" for every other split (e.g. test_f1)."""
    out = {}
    for split, features in splits.items():
        metrics = evaluate(model, kind, task, features, **kwargs)
        out.update(metrics if split == "eval" else {f"{split}_{k}": v for k, v in metrics.items()})
    if task.metric not in out:
        raise ValueError(f"task.metric={task.metric!r} is not among the computed metrics {sorted(out)}")
    return out
