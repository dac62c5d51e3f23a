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

# tiny (predictions, references) per metric: which keys a metric returns, checked at start-up
_SAMPLES = {
    "accuracy": ([0, 1], [0, 1]), "f1": ([0, 1], [0, 1]), "f1_macro": ([0, 1], [0, 1]),
    "matthews": ([0, 1], [0, 1]), "pearson_spearman": ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]),
    "accuracy_f1": ([0, 1], [0, 1]), "accuracy_macro_f1": ([0, 1], [0, 1]),
    "squad": (["a"], [["a"]]), "squad_v2": (["a", ""], [["a"], []]), "record": (["a"], [["a"]]),
    "multirc": ([1, 0], [{"question_id": 0, "label": 1}, {"question_id": 0, "label": 0}]),
    "seqeval": ([["B-X", "O"]], [["B-X", "O"]]), "rouge": (["a b"], ["a b"]),
}


def metric_keys(task) -> set[str] | None:
    """The keys an evaluation of this task returns (dev split); None if a metric has no sample to try."""
    from .task_kinds import get_kind
    keys = set(get_kind(task).no_answer_metric_keys) if task.allow_no_answer else set()
    for name in task.metrics:
        if name not in METRICS:
            raise ValueError(f"task {task.name}: task.metrics has unknown metric {name!r}; known: {sorted(METRICS)}")
        if name not in _SAMPLES:
            return None
        keys |= set(compute_metrics([name], *_SAMPLES[name]))
    return keys


def check_metric(task) -> None:
    """Fail at start-up (not at the first evaluation) when task.metric is not among the computed metrics."""
    keys = metric_keys(task)
    if keys is not None and task.metric not in keys:
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
