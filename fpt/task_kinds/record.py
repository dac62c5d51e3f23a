"""ReCoRD: fill "@placeholder" in a query with one of the passage's entities. Official EM/F1 (max over golds).

Rows have the hub's columns: passage, query, entities (list), answers (list). The passage's "@highlight"
lines are joined as sentences (as T5 does).
BERT (P-tuning v2): every distinct candidate entity is put in place of @placeholder and the pair
(passage, filled query) is classified answer / not answer; the best-scored candidate is the prediction.
T5 (FPT): "query: {query} entities: {entities} passage: {passage}" -> the entity; one training example
per distinct gold answer.
"""
from __future__ import annotations

import re

from ..batching import Features
from ..metrics import compute_metrics
from ..tasks import TaskDataError, column, text_fields
from .base import Kind, register_kind
from .encode import encode_pairs


def clean_passage(passage: str) -> str:
    """"@highlight" lines -> sentences: "...end.\n@highlight\nNext" -> "...end. Next", else "... . Next"."""
    passage = re.sub(r'([.?!"\'])\n@highlight\n', r"\1 ", passage)
    return re.sub(r"\n@highlight\n", ". ", passage)


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


@register_kind("record")
class Record(Kind):
    reads = ("answers_field",)
    generates_text = True

    def _row(self, task, row) -> dict:
        """The row with a clean passage, distinct entities/answers and "entities_text" for templates."""
        entities = _unique(column(task, row, "entities", "template (ReCoRD entities)"))
        answers = _unique(column(task, row, task.answers_field, "answers_field"))
        passage = clean_passage(column(task, row, "passage", "template (ReCoRD passage)"))
        query = column(task, row, "query", "template (ReCoRD query)")
        if "@placeholder" not in query:
            raise TaskDataError(f"task {task.name}: {row['_source']}: the query has no @placeholder: {query!r}")
        return {**row, "passage": passage, "query": query, "entities": entities, "answers": answers,
                "entities_text": ", ".join(entities)}

    # ---------------------------------------------------------------- BERT: score each candidate
    def check_row_bert(self, task, row):
        self._row(task, row)

    def encode_bert(self, task, rows, tokenizer, train):
        pairs, items_meta, labels, examples = [], [], [], []
        for i, row in enumerate(rows):
            row = self._row(task, row)
            examples.append(row["answers"])
            for entity in row["entities"]:
                pairs.append({**row, "query": row["query"].replace("@placeholder", entity)})
                labels.append(int(entity in row["answers"]))
                items_meta.append((i, entity))
        encoded = encode_pairs(task, pairs, tokenizer, text_fields(task), truncation="only_first")
        items = [{**x, "label": y} for x, y in zip(encoded, labels)]
        return Features(items, meta=items_meta, examples=examples)

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.heads import ClassificationHead  # lazy: transformers (fpt/validate.py loads kinds)
        return ClassificationHead(hidden, 2, dropout, pooler, pooling)  # is the candidate an answer?

    def predict_bert(self, model, batch, task):
        logits = model(batch)["logits"].float()
        return (logits[:, 1] - logits[:, 0]).tolist()  # how much "answer" beats "not answer"

    def bert_records(self, task, rows, features, outputs, scores):
        """Per query: the best-scored candidate, scored by its answer-minus-not-answer margin."""
        best = {}
        for (row, entity), margin in zip(features.meta, outputs):
            if row not in best or margin > best[row][0]:
                best[row] = (margin, entity)
        n = len(features.examples)
        return ([best[r][1] if r in best else None for r in range(n)], list(features.examples),
                [best[r][0] if r in best else None for r in range(n)])

    def score_bert(self, task, features, outputs):
        best = {}
        for (row, entity), score in zip(features.meta, outputs):
            if row not in best or score > best[row][0]:
                best[row] = (score, entity)
        rows = sorted(best)
        return compute_metrics(list(task.metrics), [best[r][1] for r in rows], [features.examples[r] for r in rows])

    # ---------------------------------------------------------------- T5: generate the entity
    def source(self, task, row):
        return super().source(task, self._row(task, row))

    def targets(self, task, row):
        return self._row(task, row)["answers"]

    def reference(self, task, row):
        return self._row(task, row)["answers"]

    def from_text(self, task, generated):
        return generated.strip()
