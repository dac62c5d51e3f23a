"""Classification (GLUE, SuperGLUE BoolQ/CB/RTE/WiC/WSC/MultiRC).

BERT: one or two text fields -> pooled [CLS] -> a class. T5: the template -> the label's verbalizer.
With task.group_field (MultiRC) each reference is {"question_id", "label"}, so that the metric can
score whole questions. Regression (STS-B) is a variant: fpt/task_kinds/regression.py.
"""
from __future__ import annotations

from ..metrics import UNREADABLE
from ..batching import Features
from ..tasks import label_index, text, text_fields
from .base import Kind, register_kind
from .encode import encode_pairs


def label_from_text(task, generated: str):
    """Generated text -> class index (UNREADABLE = -1 when it is no verbalizer: a wrong answer, never a class)."""
    generated = generated.strip()

    def squeeze(value):  # compare without case and spaces: tokenizers differ in how they decode "not_duplicate"
        return "".join(value.split()).lower()

    names = [squeeze(v) for v in task.verbalizers]
    return names.index(squeeze(generated)) if squeeze(generated) in names else UNREADABLE


@register_kind("classification")
class Classification(Kind):
    reads = ("group_field",)
    def check_config(self, task, seq2seq):
        super().check_config(task, seq2seq)
        if not task.labels:
            raise ValueError(f"task {task.name}: task.labels is empty; list the raw label values in class order")
        if seq2seq and len(task.verbalizers) != len(task.labels):
            raise ValueError(f"task {task.name}: task.verbalizers {list(task.verbalizers)} must give one target text "
                             f"per label in task.labels {list(task.labels)}")

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.heads import ClassificationHead  # lazy: transformers (fpt/validate.py loads kinds)
        if not num_labels:
            raise ValueError(f"task {task.name}: task.labels is empty; a {task.type} head needs the list of labels")
        return ClassificationHead(hidden, num_labels, dropout, pooler, pooling)

    def unlabeled_label(self, task):
        return task.labels[0]

    def metric_options(self, task):
        # a fixed label set: macro F1 averages over the task's classes, never over an "unreadable" class
        return {"labels": range(len(task.labels))}

    def unreadable(self, task, generated):
        return self.from_text(task, generated) == UNREADABLE

    def label(self, task, row):
        """The row's gold label as the head and the metric take it (here: its class index)."""
        return label_index(task, row)

    def reference(self, task, row):
        label = self.label(task, row)
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
        return model(batch)["logits"].float().argmax(-1).tolist()

    def targets(self, task, row):
        return [self.verbalize(task, self.label(task, row))]

    def verbalize(self, task, label) -> str:
        """A gold label's T5 target text."""
        return task.verbalizers[label]

    def from_text(self, task, generated):
        return label_from_text(task, generated)

    # ---------------------------------------------------------------- prediction records
    def label_name(self, task, value):
        """A prediction or reference as the record shows it: the raw label value of a class index."""
        if isinstance(value, dict):  # MultiRC reference {"question_id", "label"}
            value = value["label"]
        return task.labels[value] if isinstance(value, int) and 0 <= value < len(task.labels) else None

    def confidences(self, task, batch, logits):
        return logits.float().softmax(-1).max(-1).values.tolist()

    def bert_records(self, task, rows, features, outputs, scores):
        preds = [self.label_name(task, o[0] if isinstance(o, list) else o) for o in outputs]
        return preds, [self.label_name(task, m) for m in features.meta], scores

    def text_record(self, task, generated, reference):
        return self.label_name(task, self.from_text(task, generated)), self.label_name(task, reference)
