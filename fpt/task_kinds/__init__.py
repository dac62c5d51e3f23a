"""Task kinds: how a task's rows become features, which head (BERT) or target text (T5), and how
predictions become metrics. One small module per kind; `get_kind(task)` picks it by `task.type`.

| task.type            | BERT-family head                     | T5 (text-to-text)                         |
|----------------------|--------------------------------------|-------------------------------------------|
| classification       | pooled [CLS] -> classes              | template -> verbalizer                    |
| regression           | pooled [CLS] -> score (MSE)          | template -> score rounded to 0.2          |
| multiple_choice      | one score per (context, choice)      | template -> verbalizer of the right choice |
| record               | each candidate entity: answer or not | query/entities/passage -> answer entity   |
| token_classification | a tag per word (first sub-word)      | sentence -> "span: TYPE; ..."             |
| span_qa              | start/end logits, n-best, doc stride | question/context -> answer or "no answer" |
| generation           | (none)                               | template -> target template               |
"""
from __future__ import annotations

KIND_MODULES = {"classification": "classification", "regression": "classification",
                "multiple_choice": "multiple_choice", "record": "record",
                "token_classification": "token_classification", "span_qa": "span_qa", "generation": "generation"}


def get_kind(task):
    """The Kind object for task.type (imported lazily: fpt.tasks imports this package's formats)."""
    import importlib

    if task.type not in KIND_MODULES:
        raise ValueError(f"task {task.name}: task.type={task.type!r} is not one of {sorted(KIND_MODULES)}")
    module = importlib.import_module(f"{__name__}.{KIND_MODULES[task.type]}")
    return module.KIND
