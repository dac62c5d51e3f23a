"""What every task kind provides, and the text-to-text (T5) path they share.

A kind turns rows into `Features` (`encode`), a batch into one picklable output per feature (`predict`),
and all features' outputs into metrics (`score`). Outputs are gathered across DDP ranks between
`predict` and `score`, so `score` sees every feature in order. It also owns its BERT head (`head`), whether
its T5 answers are free text (`generates_text`), the placeholder label of unlabeled rows (`unlabeled_label`)
and how outputs become one prediction record per row (`confidences`, `bert_records`, `text_record`).

The T5 path is the same for every kind: `source(row)` -> input text, `targets(row)` -> target texts
(training makes one example per target), `reference(row)` -> what the metric compares with, and
`from_text(text)` -> the prediction the metric takes.
"""
from __future__ import annotations

from ..batching import Features
from ..metrics import compute_metrics
from ..registry import Registry
from ..tasks import TaskDataError, text

CHECK_ROWS = 20  # rows encoded first, so a wrong column or label fails before any heavy work

KINDS = Registry("task kind", "task.type")  # task.type -> its Kind (fpt/task_kinds/__init__.py imports every kind module)


def register_kind(name: str):
    """Class decorator: an instance of the Kind subclass is task.type `name`."""
    def register(cls):
        cls.name = name
        KINDS.add(name, cls())
        return cls
    return register


def get_kind(task) -> Kind:
    """The registered Kind of task.type."""
    return KINDS.lookup(task.type, where=f"task {task.name}: ")


class Kind:
    name = ""
    bert = True   # has a head for BERT-family models
    t5 = True     # has a text-to-text form
    generates_text = False  # its T5 targets are free text (not label words): growth shrinks the decoder too
    no_answer_metric_keys: tuple = ()  # metric keys added when task.allow_no_answer (span QA)
    reads: tuple = ()  # the kind-specific task.* keys it reads (another kind's stay at their defaults: fpt/validate.py)

    # ---------------------------------------------------------------- config checks
    def check_config(self, task, seq2seq: bool) -> None:
        if seq2seq and not self.t5:
            raise ValueError(f"task {task.name}: task.type={task.type} has no text-to-text form; "
                             f"use a BERT-family model (e.g. model=minilm or model=roberta-large)")
        if not seq2seq and not self.bert:
            raise ValueError(f"task {task.name}: task.type={task.type} is text-to-text only; use a T5 model "
                             f"(e.g. model=t5-base)")

    def num_labels(self, task) -> int | None:
        """Outputs of the BERT head's classifier (None where the head fixes it)."""
        return len(task.labels) or None

    def head(self, task, hidden: int, num_labels: int | None, dropout: float, pooler, pooling: str = "pooler"):
        """The BERT-family head (fpt/models/heads.py) on `hidden`-wide states; `pooler` is the backbone's pooler
        (or None) and `pooling` is model.pooling, for the pooled heads."""
        raise ValueError(f"task {task.name}: task.type={task.type!r} has no head for BERT-family models "
                         f"(it is text-to-text only: use a T5 model)")

    def wrapper(self):
        """The BERT-family model class the head goes on (fpt/models/: PromptedEncoder; retrieval: BiEncoder)."""
        from ..models.wrappers import PromptedEncoder  # lazy: transformers (fpt/validate.py loads kinds)
        return PromptedEncoder

    def unlabeled_label(self, task):
        """The placeholder gold label of rows without one (prediction only), where the task's gold is one label
        column; None: the kind needs its gold columns."""
        return None

    # ---------------------------------------------------------------- start-up row check (no tokenizer)
    def check_rows(self, task, rows, seq2seq: bool) -> None:
        """Read the first rows as encoding will (columns, texts, labels), so bad data fails at start-up."""
        for row in rows[:CHECK_ROWS]:
            if seq2seq:
                self.source(task, row)
                self.reference(task, row)
                if not self.targets(task, row):
                    raise TaskDataError(f"task {task.name}: {row['_source']}: no target text")
            else:
                self.check_row_bert(task, row)

    def check_row_bert(self, task, row) -> None:
        """What encode_bert reads from one row (a kind without this override is checked when encoded)."""

    # ---------------------------------------------------------------- features
    def features(self, task, rows, tokenizer, seq2seq: bool, target_prefix: str = "", train: bool = False):
        """All rows' features, after encoding the first rows alone (fast failure on bad columns/labels)."""
        self.encode(task, rows[:CHECK_ROWS], tokenizer, seq2seq, target_prefix, train)
        return self.encode(task, rows, tokenizer, seq2seq, target_prefix, train)

    def encode(self, task, rows, tokenizer, seq2seq: bool, target_prefix: str = "", train: bool = False) -> Features:
        if seq2seq:
            return self.encode_text_to_text(task, rows, tokenizer, target_prefix, train)
        return self.encode_bert(task, rows, tokenizer, train)

    def predict(self, model, batch, task, seq2seq: bool) -> list:
        if seq2seq:
            return model.predict_text(batch, task.generate_max_tokens, task.generate_min_tokens)
        return self.predict_bert(model, batch, task)

    def score(self, task, features: Features, outputs: list, seq2seq: bool) -> dict:
        if seq2seq:
            predictions = [self.from_text(task, t) for t in outputs]
            metrics = compute_metrics(list(task.metrics), predictions, features.meta, **self.metric_options(task))
            flags = [self.unreadable(task, t) for t in outputs]
            if flags and all(f is not None for f in flags):  # "unreadable": share of answers that are no answer
                metrics["unreadable"] = sum(flags) / len(flags)
            return metrics
        return self.score_bert(task, features, outputs)

    def metric_options(self, task) -> dict:
        """Extra arguments for the metrics that take them (classification: labels=the class indices)."""
        return {}

    def unreadable(self, task, generated: str) -> bool | None:
        """Whether a generated answer cannot be read as a prediction; None: any text is an answer."""
        return None

    # ---------------------------------------------------------------- BERT side (per kind)
    def encode_bert(self, task, rows, tokenizer, train: bool) -> Features:
        raise NotImplementedError

    def predict_bert(self, model, batch, task) -> list:
        raise NotImplementedError

    def score_bert(self, task, features, outputs) -> dict:
        return compute_metrics(list(task.metrics), outputs, features.meta, **self.metric_options(task))

    # ---------------------------------------------------------------- prediction records (fpt/predict.py)
    def confidences(self, task, batch, logits) -> list:
        """The BERT head's confidence in each feature's output; None where the output carries its own score."""
        return [None] * logits.shape[0]

    def bert_records(self, task, rows, features, outputs: list, scores: list) -> tuple[list, list, list]:
        """(predictions, golds, scores), one per row, from the BERT outputs of the rows' features."""
        raise NotImplementedError

    def text_record(self, task, generated: str, reference) -> tuple:
        """(prediction, gold) of one row from its generated answer and its reference."""
        return self.from_text(task, generated), reference

    # ---------------------------------------------------------------- T5 side
    def source(self, task, row) -> str:
        return text(task, row, task.template)

    def targets(self, task, row) -> list[str]:
        raise NotImplementedError

    def reference(self, task, row):
        raise NotImplementedError

    def from_text(self, task, generated: str):
        return generated

    def encode_text_to_text(self, task, rows, tokenizer, target_prefix: str, train: bool) -> Features:
        """One example per target in training (ReCoRD: per distinct answer), one per row for scoring."""
        sources, targets, meta = [], [], []
        for row in rows:
            source, reference, row_targets = self.source(task, row), self.reference(task, row), self.targets(task, row)
            if not row_targets:
                raise TaskDataError(f"task {task.name}: {row['_source']}: no target text")
            for target in row_targets if train else row_targets[:1]:
                sources.append(source)
                targets.append((target_prefix + " " + target).strip())
                meta.append(reference)
        enc = tokenizer(sources, truncation=True, max_length=task.max_length)
        tgt = tokenizer(text_target=targets, truncation=True, max_length=task.max_target_length)
        items = [{"input_ids": i, "attention_mask": m, "labels": t}
                 for i, m, t in zip(enc["input_ids"], enc["attention_mask"], tgt["input_ids"])]
        return Features(items, meta=meta)
