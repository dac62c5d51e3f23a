"""Token classification: NER (CoNLL-2003, CoNLL04, OntoNotes) and SRL (CoNLL-2005, CoNLL-2012).

BERT: each word's tag is predicted at its first sub-word; the loss ignores the other sub-words and special
tokens. A word the tokenizer turns into no token at all (a soft hyphen, a zero-width space) is given to the
model as the tokenizer's unknown token, so every word keeps its own position and tag. SRL rows name their
predicate (task.predicate_field): the predicate word is appended as a second segment, after [SEP], as
P-tuning v2 does. Tags are read as IOB2 (task.tag_scheme=IOB1 files, such as CoNLL-2003's originals, are
converted when read) and scored with seqeval's entity F1; words cut by truncation count as "O" predictions,
so the score is over whole sentences.
T5: the template (with "{sentence}" = the words joined, "{predicate}" = the SRL predicate word) -> the
spans as "words: TYPE; words: TYPE" ("none" if there are none); generated spans are matched back to the
sentence's words, in order, to give tags for the same seqeval score.
"""
from __future__ import annotations

import unicodedata

from ..metrics import compute_metrics, iob1_to_iob2
from ..batching import Features
from ..tasks import TaskDataError, column, text
from .base import Kind, register_kind

NO_SPANS = "none"

_PRETOKENIZED = {}


def tag_labels(task) -> list[str]:
    """All tags: task.labels, or O + B-/I- of every type in task.tag_types (the hub's order for CoNLL-2003)."""
    if task.tag_types:
        return ["O"] + [f"{p}-{t}" for t in task.tag_types for p in ("B", "I")]
    return list(task.labels)


def pretokenized(tokenizer):
    """A tokenizer that accepts word lists (byte-level BPE ones, e.g. RoBERTa's, need add_prefix_space)."""
    try:
        tokenizer([["probe"]], is_split_into_words=True)
        return tokenizer
    except Exception:
        from transformers import AutoTokenizer  # lazy: the start-up checks load kinds before transformers
        key = tokenizer.name_or_path
        if key not in _PRETOKENIZED:
            _PRETOKENIZED[key] = AutoTokenizer.from_pretrained(key, add_prefix_space=True)
        return _PRETOKENIZED[key]


def visible_words(tokenizer, sentences: list[list[str]]) -> list[list[str]]:
    """The sentences with every word that tokenizes to nothing (U+00AD, U+200B, ...) replaced by the unknown token."""
    enc = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    out = []
    for i, words in enumerate(sentences):
        seen = set(enc.word_ids(i))
        out.append([w if j in seen else tokenizer.unk_token or w for j, w in enumerate(words)])
    return out


def spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of every IOB2 span."""
    out = []
    for i, tag in enumerate(tags + ["O"]):
        if out and out[-1][1] is None and not (tag.startswith("I-") and tag[2:] == out[-1][2]):
            out[-1] = (out[-1][0], i, out[-1][2])
        if tag.startswith("B-") or (tag.startswith("I-") and (not out or out[-1][1] is not None)):
            out.append((i, None, tag[2:]))
    return out


def _squeeze(value: str) -> str:
    """The text without spaces and the invisible characters a tokenizer drops (soft hyphen, zero-width, controls)."""
    return "".join(c for c in value if not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc")).lower()


def tags_from_text(generated: str, words: list[str], types: list[str]) -> list[str]:
    """Generated "words: TYPE; ..." -> IOB2 tags: each span is matched to the next words that spell it
    (invisible words, such as a soft hyphen the tokenizer dropped, spell nothing and start no span)."""
    tags, cursor, known = ["O"] * len(words), 0, {t.lower(): t for t in types}
    for part in generated.split(";"):
        phrase, _, kind = part.rpartition(":")
        kind, target = known.get(kind.strip().lower()), _squeeze(phrase)
        if kind is None or not target:
            continue
        for start in range(cursor, len(words)):
            if not _squeeze(words[start]):  # an invisible word starts no span (it may sit inside one)
                continue
            spelled, end = "", start
            while end < len(words) and len(spelled) < len(target):
                spelled += _squeeze(words[end])
                end += 1
            if spelled == target:
                tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
                cursor = end
                break
    return tags


@register_kind("token_classification")
class TokenClassification(Kind):
    reads = ("tokens_field", "tags_field", "tag_scheme", "tag_types", "predicate_field")
    def num_labels(self, task):
        return len(tag_labels(task))

    def check_config(self, task, seq2seq):
        super().check_config(task, seq2seq)
        if not tag_labels(task):
            raise ValueError(f"task {task.name}: give task.tag_types (e.g. [PER, ORG]) or task.labels (every IOB2 tag)")

    def words_and_tags(self, task, row) -> tuple[list[str], list[str]]:
        """A row's words and IOB2 tags, checked against task.labels."""
        words = column(task, row, task.tokens_field, "tokens_field")
        tags = column(task, row, task.tags_field, "tags_field")
        if not words or len(words) != len(tags):
            raise TaskDataError(f"task {task.name}: {row['_source']}: {len(words)} words but {len(tags)} tags")
        labels = tag_labels(task)
        if all(isinstance(t, int) for t in tags):  # hub datasets store class indices
            if max(tags) >= len(labels) or min(tags) < 0:
                raise TaskDataError(f"task {task.name}: {row['_source']}: tag index {max(tags)} but only "
                                    f"{len(labels)} tags")
            tags = [labels[t] for t in tags]
        if task.tag_scheme == "IOB1":
            tags = iob1_to_iob2(list(tags))
        unknown = sorted(set(tags) - set(labels))
        if unknown:
            raise TaskDataError(f"task {task.name}: {row['_source']}: tag(s) {unknown} are not among the task's "
                                f"tags {labels} (task.tag_types / task.labels)")
        return list(words), list(tags)

    def check_row_bert(self, task, row):
        words, _ = self.words_and_tags(task, row)
        if task.predicate_field:
            index = column(task, row, task.predicate_field, "predicate_field")
            if not str(index).isdigit() or int(index) >= len(words):
                raise TaskDataError(f"task {task.name}: {row['_source']}: predicate index {index!r} "
                                    f"(task.predicate_field) is not a word index below {len(words)}")

    def encode_bert(self, task, rows, tokenizer, train):
        tokenizer = pretokenized(tokenizer)
        index = {t: i for i, t in enumerate(tag_labels(task))}
        words, tags = zip(*[self.words_and_tags(task, r) for r in rows]) if rows else ((), ())
        words = visible_words(tokenizer, list(words))
        args = [words]
        if task.predicate_field:  # SRL: "<sentence> [SEP] <predicate>"
            args.append([[w[int(column(task, r, task.predicate_field, "predicate_field"))]]
                         for w, r in zip(words, rows)])
        enc = tokenizer(*args, is_split_into_words=True, truncation="only_first" if len(args) == 2 else True,
                        max_length=task.max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        items = []
        for i, row_tags in enumerate(tags):
            tag_ids, kept = [-100] * len(enc["input_ids"][i]), []
            for pos, (word, segment) in enumerate(zip(enc.word_ids(i), enc.sequence_ids(i))):
                if word is not None and segment == 0 and (not kept or word != kept[-1]):
                    tag_ids[pos] = index[row_tags[word]]
                    kept.append(word)
            if kept != list(range(len(kept))):  # predictions are read back in word order: a gap would shift tags
                missing = sorted(set(range(len(kept))) - set(kept))[0]
                raise TaskDataError(f"task {task.name}: {rows[i]['_source']}: word {missing} {words[i][missing]!r} "
                                    f"has no token of its own after tokenization")
            items.append({**{k: enc[k][i] for k in keys}, "tag_ids": tag_ids})
        return Features(items, meta=list(tags))

    # ---------------------------------------------------------------- T5: spans as text
    def _row(self, task, row):
        words, tags = self.words_and_tags(task, row)
        predicate = words[int(column(task, row, task.predicate_field, "predicate_field"))] if task.predicate_field else ""
        return {**row, "sentence": " ".join(words), "predicate": predicate}, words, tags

    def source(self, task, row):
        return text(task, self._row(task, row)[0], task.template)

    def targets(self, task, row):
        _, words, tags = self._row(task, row)
        found = [f"{' '.join(words[s:e])}: {kind}" for s, e, kind in spans(tags)]
        return ["; ".join(found) or NO_SPANS]

    def reference(self, task, row):
        _, words, tags = self._row(task, row)
        return {"words": words, "tags": tags}

    def score(self, task, features, outputs, seq2seq):
        if not seq2seq:
            return self.score_bert(task, features, outputs)
        types = sorted({t[2:] for t in tag_labels(task) if t != "O"})
        predictions = [tags_from_text(out, ref["words"], types) for out, ref in zip(outputs, features.meta)]
        return compute_metrics(list(task.metrics), predictions, [ref["tags"] for ref in features.meta])

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.heads import TokenClassificationHead  # lazy: transformers (validate.py loads kinds)
        num_labels = num_labels or len(task.labels) or 1 + 2 * len(task.tag_types)  # types: O + B-/I- per type
        if not num_labels:
            raise ValueError(f"task {task.name}: task.labels is empty; a {task.type} head needs the list of labels")
        return TokenClassificationHead(hidden, num_labels, dropout)

    def predict_bert(self, model, batch, task):
        best = model(batch)["logits"].argmax(-1)
        first = batch["tag_ids"] != -100  # the first sub-word of each word kept by truncation
        return [best[i][first[i]].tolist() for i in range(best.shape[0])]

    def score_bert(self, task, features, outputs):
        labels = tag_labels(task)
        predictions = [[labels[t] for t in out] + ["O"] * (len(gold) - len(out))
                       for out, gold in zip(outputs, features.meta)]
        return compute_metrics(list(task.metrics), predictions, features.meta)

    # ---------------------------------------------------------------- prediction records: tags per word
    def confidences(self, task, batch, logits):
        """The mean probability of the predicted tags of the words' first sub-words."""
        probs = logits.float().softmax(-1).max(-1).values
        first = batch["tag_ids"] != -100
        return [probs[i][first[i]].mean().item() if first[i].any() else None for i in range(probs.shape[0])]

    def bert_records(self, task, rows, features, outputs, scores):
        labels = tag_labels(task)
        preds = [[labels[t] for t in out] + ["O"] * (len(gold) - len(out))
                 for out, gold in zip(outputs, features.meta)]
        return preds, list(features.meta), scores

    def text_record(self, task, generated, reference):
        return self.from_text(task, generated), reference["tags"]
