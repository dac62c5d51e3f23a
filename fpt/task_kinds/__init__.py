"""Task kinds: how a task's rows become features, which head (BERT) or target text (T5), and how
predictions become metrics and prediction records. One module per kind, named as its task.type, holding a
`Kind` subclass (base.py) and its instance `KIND`; `get_kind(task)` picks it by `task.type`.

| task.type            | BERT-family head                     | T5 (text-to-text)                         |
|----------------------|--------------------------------------|-------------------------------------------|
| classification       | pooled [CLS] -> classes              | template -> verbalizer                    |
| regression           | pooled [CLS] -> score (MSE)          | template -> score rounded to 0.2          |
| multiple_choice      | one score per (context, choice)      | template -> verbalizer of the right choice |
| record               | each candidate entity: answer or not | query/entities/passage -> answer entity   |
| token_classification | a tag per word (first sub-word)      | sentence -> "span: TYPE; ..."             |
| span_qa              | start/end logits, n-best, doc stride | question/context -> answer or "no answer" |
| generation           | (none)                               | template -> target template               |
| retrieval            | query/passage vectors (DPR, ColBERT) | (none)                                    |
"""
from __future__ import annotations

import importlib

KINDS = ("classification", "regression", "multiple_choice", "record", "token_classification", "span_qa",
         "generation", "retrieval")  # task.type = the module fpt/task_kinds/<type>.py


def get_kind(task):
    """The Kind object for task.type (its module imported on first use)."""
    if task.type not in KINDS:
        raise ValueError(f"task {task.name}: task.type={task.type!r} is not one of {sorted(KINDS)}")
    return importlib.import_module(f"{__name__}.{task.type}").KIND
