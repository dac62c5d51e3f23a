"""Regression (GLUE STS-B): classification's inputs with a score for a label.

BERT: pooled [CLS] -> one score, mean squared error. T5: the template -> the score rounded to 0.2 as text
("3.8"); a generated answer that is no number is None: "unreadable", and scored as a wrong score (the end of
the references' range farther from the reference, fpt/metrics.py pearson_spearman).
"""
from __future__ import annotations

import math

from ..tasks import TaskDataError, column
from .base import Kind, register_kind
from .classification import Classification


def _number(text: str) -> float | None:
    """The finite number a generated answer spells, else None ("nan" and "inf" are no scores)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@register_kind("regression")
class Regression(Classification):
    def check_config(self, task, seq2seq):
        Kind.check_config(self, task, seq2seq)  # no label list, no verbalizers

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.heads import RegressionHead  # lazy: transformers (fpt/validate.py loads kinds)
        return RegressionHead(hidden, dropout, pooler, pooling)

    def unlabeled_label(self, task):
        return 0.0

    def metric_options(self, task):
        return {}

    def unreadable(self, task, generated):
        return _number(generated.strip()) is None

    def label(self, task, row):
        raw = column(task, row, task.label_field, "label_field")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise TaskDataError(f"task {task.name}: {row['_source']}: label {raw!r} is not a number") from None

    def predict_bert(self, model, batch, task):
        return model(batch)["logits"].float().tolist()

    def verbalize(self, task, label):
        return f"{round(float(label) * 5) / 5:.1f}"  # T5 practice: STS-B scores rounded to 0.2

    def from_text(self, task, generated):
        return _number(generated.strip())

    def label_name(self, task, value):
        return value  # a score is its own name

    def confidences(self, task, batch, logits):
        return [None] * logits.shape[0]  # the prediction is itself the score
