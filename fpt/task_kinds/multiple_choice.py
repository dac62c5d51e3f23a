"""Multiple choice (COPA): each choice is paired with the context, one score per choice, softmax over choices.

BERT: task.text_fields are filled once per choice, with "{choice}" = the value of each column in
task.choice_fields; the label is the index of the right choice. T5: as classification (template ->
the verbalizer of the right choice).
"""
from __future__ import annotations

import math

from ..batching import Features
from ..tasks import TaskDataError, column, label_index, text, text_fields
from .base import Kind, register_kind
from .encode import encode_pairs
from .classification import Classification


@register_kind("multiple_choice")
class MultipleChoice(Classification):
    reads = ("group_field", "choice_fields")
    def check_config(self, task, seq2seq):
        super().check_config(task, seq2seq)
        if not seq2seq and len(task.choice_fields) < 2:
            raise ValueError(f"task {task.name}: task.choice_fields must name the columns of at least two choices")

    def check_row_bert(self, task, row):
        for name in task.choice_fields:
            choice = {**row, "choice": column(task, row, name, "choice_fields")}
            for field in text_fields(task):
                text(task, choice, field)
        label = label_index(task, row)
        if not 0 <= label < len(task.choice_fields):
            raise TaskDataError(f"task {task.name}: {row['_source']}: label {label} is not a choice index "
                                f"below {len(task.choice_fields)}")

    def encode_bert(self, task, rows, tokenizer, train):
        fields, n = text_fields(task), len(task.choice_fields)
        if not any("{choice}" in f for f in fields):
            raise TaskDataError(f"task {task.name}: no '{{choice}}' in task.text_fields {fields}")
        pairs = [{**row, "choice": column(task, row, f, "choice_fields")} for row in rows for f in task.choice_fields]
        flat = encode_pairs(task, pairs, tokenizer, fields)
        labels = [label_index(task, row) for row in rows]
        items = []
        for i, label in enumerate(labels):
            if not 0 <= label < n:
                raise TaskDataError(f"task {task.name}: {rows[i]['_source']}: label {label} is not a choice index "
                                    f"below {n}")
            group = flat[i * n:(i + 1) * n]
            items.append({**{k: [g[k] for g in group] for k in group[0]}, "label": label})
        return Features(items, meta=labels)

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.heads import MultipleChoiceHead  # lazy: transformers (fpt/validate.py loads kinds)
        return MultipleChoiceHead(hidden, dropout, pooler, pooling)

    def unlabeled_label(self, task):
        return 0

    def predict_bert(self, model, batch, task):
        return model(batch)["logits"].argmax(-1).tolist()

    # ---------------------------------------------------------------- prediction records: choice indices
    def confidences(self, task, batch, logits):
        return logits.float().masked_fill(~batch["choice_mask"], -math.inf).softmax(-1).max(-1).values.tolist()

    def bert_records(self, task, rows, features, outputs, scores):
        return list(outputs), list(features.meta), scores

    text_record = Kind.text_record  # T5 records: the choice index itself, as the BERT ones
