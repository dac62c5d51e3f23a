"""Classification and regression (GLUE, SuperGLUE BoolQ/CB/RTE/WiC/WSC/MultiRC).

BERT: one or two text fields -> pooled [CLS] -> a class (or a score). T5: the template -> the label's
verbalizer. With task.group_field (MultiRC) each reference is {"question_id", "label"}, so that the
metric can score whole questions.
"""
from __future__ import annotations

from ..metrics import UNREADABLE
from ..batching import Features
from ..tasks import encode_pairs, label_index, text, text_fields, verbalize
from .base import Kind


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def label_from_text(task, generated: str):
    """Generated text -> class index (UNREADABLE = -1 when it is no verbalizer: a wrong answer, never a class),
    or a number for regression (0.0 when it is no number)."""
    generated = generated.strip()
    if task.type == "regression":
        number = _number(generated)
        return 0.0 if number is None else number
    def squeeze(value):  # compare without case and spaces: tokenizers differ in how they decode "not_duplicate"
        return "".join(value.split()).lower()

    names = [squeeze(v) for v in task.verbalizers]
    return names.index(squeeze(generated)) if squeeze(generated) in names else UNREADABLE


class Classification(Kind):
    name = "classification"

    def check_config(self, task, seq2seq):
        super().check_config(task, seq2seq)
        if task.type == "regression":
            return
        if not task.labels:
            raise ValueError(f"task {task.name}: task.labels is empty; list the raw label values in class order")
        if seq2seq and len(task.verbalizers) != len(task.labels):
            raise ValueError(f"task {task.name}: task.verbalizers {list(task.verbalizers)} must give one target text "
                             f"per label in task.labels {list(task.labels)}")

    def metric_options(self, task):
        # a fixed label set: macro F1 averages over the task's classes, never over an "unreadable" class
        return {} if task.type == "regression" else {"labels": range(len(task.labels))}

    def unreadable(self, task, generated):
        if task.type == "regression":
            return _number(generated.strip()) is None
        return label_from_text(task, generated) == UNREADABLE

    def reference(self, task, row):
        label = label_index(task, row)
        if task.group_field:
            return {"question_id": text(task, row, task.group_field), "label": label}
        return label

    def check_row_bert(self, task, row):
        for field in text_fields(task):
            text(task, row, field)
        self.reference(task, row)

    def encode_bert(self, task, rows, tokenizer, train):
        refs = [self.reference(task, r) for r in rows]
        labels = [r["label"] if isinstance(r, dict) else r for r in refs]
        items = [{**x, "label": y} for x, y in zip(encode_pairs(task, rows, tokenizer, text_fields(task)), labels)]
        return Features(items, meta=refs)

    def predict_bert(self, model, batch, task):
        logits = model(batch)["logits"].float()
        return logits.tolist() if task.type == "regression" else logits.argmax(-1).tolist()

    def targets(self, task, row):
        return [verbalize(task, label_index(task, row))]

    def from_text(self, task, generated):
        return label_from_text(task, generated)


KIND = Classification()
