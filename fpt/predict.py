"""Predictions of a trained model on a split: the metrics (exactly as training's evaluation computes them)
and one record per example for `predictions.jsonl`.

A record is {"id", "source", "prediction", "gold" (when the data has it), "score", "generated" (text-to-text)}.
`id` is the row's id/idx/guid column, else its position; `source` is its file and line (or hub row).
`score` is the model's confidence in its prediction where the output has one: the softmax probability of
the predicted class or choice (BERT heads), the mean probability of the predicted tags, the answer-minus-
not-answer margin (ReCoRD), the start+end logit of the best span (span QA), the geometric mean probability
of the generated tokens, end of sequence included (text-to-text); None for regression (whose prediction is
itself the score). The per-kind parts are the kind's (`Kind.confidences`, `bert_records`, `text_record`).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from .batching import map_sorted

ID_COLUMNS = ("id", "idx", "guid")


@torch.no_grad()
def predict(model, kind, task, features, *, seq2seq: bool, batch_size: int, device, pad_id: int,
            autocast=None) -> tuple[list, list]:
    """(outputs, confidence per feature): the kind's outputs as fpt.evaluation.evaluate makes them (length-sorted
    batches, back in feature order), and the confidence of the forward pass (BERT heads) or the decoding (T5)
    that produced them."""
    captured = []
    if seq2seq:  # keep the generated ids: T5's confidence is the probability of what it generated
        generate = model.generate
        model.generate = lambda batch, *a, **k: _keep(captured, batch, generate(batch, *a, **k))
        hook = None
    else:
        hook = model.register_forward_hook(lambda m, i, o: captured.append((i[0], o["logits"])))

    def run(batch) -> list[tuple]:
        captured.clear()
        with autocast or nullcontext():
            out = kind.predict(model, batch, task, seq2seq)
        if seq2seq:
            confidence = _generated_probability(model, *captured[-1])
        else:
            confidence = kind.confidences(task, *captured[-1]) if captured else [None] * len(out)
        return list(zip(out, confidence, strict=True))

    try:
        pairs = map_sorted(run, features, range(len(features)), batch_size, pad_id, device)
    finally:
        if hook is not None:
            hook.remove()
        if seq2seq:
            del model.generate  # back to the class's method
    return [o for o, _ in pairs], [c for _, c in pairs]


def _keep(captured: list, batch, ids):
    captured.append((batch, ids))
    return ids


def _generated_probability(model, batch, ids) -> list[float]:
    """exp(mean log-probability) of each generated sequence's tokens (up to its first end of sequence), from one
    teacher-forced pass over the generated ids."""
    config = model.backbone.config
    labels = ids[:, 1:]  # generate() starts with the decoder start token
    eos = labels == config.eos_token_id
    keep = (eos.cumsum(1) - eos.int()) == 0  # tokens up to and including the first end of sequence
    labels = labels.masked_fill(~keep, -100)
    logits = model({**batch, "labels": labels})["logits"].float()
    logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mean = (logp * keep).sum(1) / keep.sum(1).clamp(min=1)
    return mean.exp().tolist()


def example_id(row: dict, index: int):
    for key in ID_COLUMNS:
        if key in row and not isinstance(row[key], (dict, list)):
            return row[key]
    return index


def records(kind, task, rows: list[dict], features, outputs: list, scores: list, *, seq2seq: bool,
            labeled: bool = True) -> list[dict]:
    """One record per row of the split (see the module doc)."""
    if seq2seq:
        pairs = [kind.text_record(task, t, m) for t, m in zip(outputs, features.meta)]
        preds, golds = [p for p, _ in pairs], [g for _, g in pairs]
        generated = list(outputs)
    else:
        preds, golds, scores = kind.bert_records(task, rows, features, outputs, scores)
        generated = None
    if len(preds) != len(rows):
        raise RuntimeError(f"{len(preds)} predictions for {len(rows)} rows of task {task.name} (task.type={task.type})")
    out = []
    for i, (row, pred, gold, score) in enumerate(zip(rows, preds, golds, scores)):
        rec = {"id": example_id(row, i), "source": row.get("_source"), "prediction": pred}
        if labeled:
            rec["gold"] = gold
        rec["score"] = score
        if generated is not None:
            rec["generated"] = generated[i]
        out.append(rec)
    return out
