"""Extractive QA: SQuAD 1.1 and 2.0 (task.allow_no_answer). Official EM/F1.

BERT: (question, context) windows of task.max_length tokens overlapping by task.doc_stride; a span head
gives start/end logits; per question the best span over all windows among the n-best starts x ends
(at most task.max_answer_length tokens) wins. SQuAD 2.0: the answer is "" when the no-answer score
([CLS] start + end, lowest over windows) beats the best span by more than task.null_threshold.
T5 (FPT): "question: {question} context: {context}" -> the first gold answer, or task.no_answer_text.
"""
from __future__ import annotations

import math

from ..metrics import compute_metrics, squad_v2_best_thresh
from ..batching import Features
from ..tasks import TaskDataError, column, text, text_fields
from .base import Kind, register_kind


@register_kind("span_qa")
class SpanQA(Kind):
    reads = ("answers_field", "doc_stride", "n_best", "max_answer_length", "null_threshold", "allow_no_answer",
             "no_answer_text")
    generates_text = True
    # what the squad_v2 metric adds for unanswerable questions (task.allow_no_answer): checked at start-up
    no_answer_metric_keys = ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")

    def answers(self, task, row) -> tuple[list[str], list[int | None]]:
        """Gold answer texts and character starts (hub/SQuAD JSON: {"text": [...], "answer_start": [...]})."""
        value = column(task, row, task.answers_field, "answers_field")
        if isinstance(value, dict) and "text" in value:
            texts, starts = list(value["text"]), list(value.get("answer_start") or [None] * len(value["text"]))
        elif isinstance(value, list):
            texts, starts = list(value), [None] * len(value)
        else:
            raise TaskDataError(f"task {task.name}: {row['_source']}: answers must be a list or "
                                f"{{'text': [...], 'answer_start': [...]}}, got {value!r}")
        if not texts and not task.allow_no_answer:
            raise TaskDataError(f"task {task.name}: {row['_source']}: no gold answer (set task.allow_no_answer=true "
                                f"for SQuAD 2.0-style unanswerable questions)")
        return texts, starts

    # ---------------------------------------------------------------- BERT: span head
    def check_row_bert(self, task, row):
        for field in text_fields(task):
            text(task, row, field)
        self.answers(task, row)

    def encode_bert(self, task, rows, tokenizer, train):
        fields = text_fields(task)
        if len(fields) != 2:
            raise TaskDataError(f"task {task.name}: task.text_fields must be [question, context], got {fields}")
        questions = [text(task, r, fields[0]).lstrip() for r in rows]
        contexts = [text(task, r, fields[1]) for r in rows]
        golds = [self.answers(task, r) for r in rows]
        enc = tokenizer(questions, contexts, truncation="only_second", max_length=task.max_length,
                        stride=task.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        items, meta = [], []
        for f, ex in enumerate(enc["overflow_to_sample_mapping"]):
            in_context = [s == 1 for s in enc.sequence_ids(f)]
            offsets = [tuple(o) if c else None for o, c in zip(enc["offset_mapping"][f], in_context)]
            item = {k: enc[k][f] for k in keys}
            if train:
                item["start_positions"], item["end_positions"] = self._positions(contexts[ex], golds[ex], offsets)
            items.append(item)
            meta.append({"example": ex, "offsets": offsets})
        examples = [{"context": c, "answers": g[0]} for c, g in zip(contexts, golds)]
        return Features(items, meta=meta, examples=examples)

    @staticmethod
    def _positions(context, gold, offsets) -> tuple[int, int]:
        """Token start/end of the first gold answer in this window, or (0, 0) ([CLS]) if it is not inside."""
        texts, starts = gold
        if not texts:
            return 0, 0
        start_char = starts[0] if starts[0] is not None else context.find(texts[0])
        if start_char < 0:
            return 0, 0
        end_char = start_char + len(texts[0])
        tokens = [i for i, o in enumerate(offsets) if o is not None]
        if not tokens or offsets[tokens[0]][0] > start_char or offsets[tokens[-1]][1] < end_char:
            return 0, 0
        start = max(i for i in tokens if offsets[i][0] <= start_char)
        end = min(i for i in tokens if offsets[i][1] >= end_char)
        return start, end

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.heads import SpanHead  # lazy: transformers (fpt/validate.py loads kinds)
        return SpanHead(hidden)

    def predict_bert(self, model, batch, task):
        logits = model(batch)["logits"]  # [N, L, 2], padding masked
        k = min(task.n_best, logits.shape[1])
        (start_v, start_i), (end_v, end_i) = logits[..., 0].topk(k), logits[..., 1].topk(k)
        null = (logits[:, 0, 0] + logits[:, 0, 1]).tolist()
        return [(list(zip(start_i[n].tolist(), start_v[n].tolist())), list(zip(end_i[n].tolist(), end_v[n].tolist())),
                 null[n]) for n in range(logits.shape[0])]

    def best_spans(self, task, features, outputs) -> tuple[list[str], list[float], list[float]]:
        """Per question: the best span's text and score over all windows, and the lowest no-answer score."""
        n = len(features.examples)
        best_score, best_text, null = [-math.inf] * n, [""] * n, [math.inf] * n
        for (starts, ends, null_score), meta in zip(outputs, features.meta):
            ex, offsets = meta["example"], meta["offsets"]
            context = features.examples[ex]["context"]
            null[ex] = min(null[ex], null_score)
            starts = [(s, v) for s, v in starts if s < len(offsets) and offsets[s] is not None]  # not padding
            ends = [(e, v) for e, v in ends if e < len(offsets) and offsets[e] is not None]
            for s, s_score in starts:
                for e, e_score in ends:
                    if e < s or e - s + 1 > task.max_answer_length or s_score + e_score <= best_score[ex]:
                        continue
                    best_score[ex], best_text[ex] = s_score + e_score, context[offsets[s][0]:offsets[e][1]]
        return best_text, best_score, null

    def score_bert(self, task, features, outputs):
        best_text, best_score, null = self.best_spans(task, features, outputs)
        references = [x["answers"] for x in features.examples]
        if not task.allow_no_answer:
            return compute_metrics(list(task.metrics), best_text, references)
        diff = [nl - b if b > -math.inf else math.inf for nl, b in zip(null, best_score)]
        predictions = ["" if d > task.null_threshold else t for d, t in zip(diff, best_text)]
        metrics = compute_metrics(list(task.metrics), predictions, references)
        finite = [d if d < math.inf else 1e9 for d in diff]
        metrics.update(squad_v2_best_thresh(best_text, finite, references, no_answer_text=None))
        return metrics

    def bert_records(self, task, rows, features, outputs, scores):
        """Per question: the best span (or "" past the no-answer threshold), scored by its start+end logit."""
        texts, best, null = self.best_spans(task, features, outputs)
        if task.allow_no_answer:
            texts = ["" if (nl - b if b > -math.inf else math.inf) > task.null_threshold else t
                     for t, b, nl in zip(texts, best, null)]
        return texts, [x["answers"] for x in features.examples], [b if b > -math.inf else None for b in best]

    # ---------------------------------------------------------------- T5: generate the answer
    def targets(self, task, row):
        texts, _ = self.answers(task, row)
        return [texts[0] if texts else task.no_answer_text]

    def reference(self, task, row):
        return self.answers(task, row)[0]

    def from_text(self, task, generated):
        generated = generated.strip()
        return "" if generated.lower() == task.no_answer_text.strip().lower() else generated
