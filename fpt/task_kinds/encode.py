"""Rows to features: `encode` (any task, through its kind) and `encode_pairs` (the BERT inputs of one or two
text fields, which several kinds share)."""
from __future__ import annotations

from ..batching import Features
from ..tasks import TaskDataError, text
from .base import get_kind


def encode_pairs(task, rows: list[dict], tokenizer, fields: list[str], truncation=True) -> list[dict]:
    """Tokenize one or two rendered text fields per row (BERT inputs)."""
    if not 1 <= len(fields) <= 2:
        raise TaskDataError(f"task {task.name}: task.text_fields must name one or two fields, got {fields}")
    texts = [[text(task, r, f) for r in rows] for f in fields]
    enc = tokenizer(*texts, truncation=truncation, max_length=task.max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(rows))]


def encode(task, rows: list[dict], tokenizer, seq2seq: bool, target_prefix: str = "", train: bool = False) -> Features:
    """Features of a task of any kind (fpt/task_kinds/); `train` makes training features (e.g. one per answer)."""
    return get_kind(task).encode(task, rows, tokenizer, seq2seq, target_prefix, train)
