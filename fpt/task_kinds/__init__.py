"""Task kinds: how a task's rows become features, which head (BERT) or target text (T5), and how
predictions become metrics and prediction records. One module per kind, named as its task.type, holding a
`Kind` subclass (base.py) registered with `@register_kind("<task.type>")`; `get_kind(task)` looks it up. A new kind
is a new module here, imported below.

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

from .base import KINDS, Kind, get_kind, register_kind
# each kind module registers its Kind when imported
from .classification import Classification
from .generation import Generation
from .multiple_choice import MultipleChoice
from .record import Record
from .regression import Regression
from .retrieval import Retrieval
from .span_qa import SpanQA
from .token_classification import TokenClassification

__all__ = ["KINDS", "Classification", "Generation", "Kind", "MultipleChoice", "Record", "Regression", "Retrieval",
           "SpanQA", "TokenClassification", "get_kind", "register_kind"]

