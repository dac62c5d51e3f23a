"""Retrieval (PT-Retrieval): queries -> passages of a corpus, a bi-encoder (DPR) or late interaction (ColBERT).

Rows are judged queries (fpt/readers/beir.py: BEIR folders, DPR JSON). Training features are one per (query,
positive passage): the query's tokens plus `1 + task.hard_negatives` passages (the positive first), trained with a
contrastive loss over those and the batch's other passages (in-batch negatives; another query's passage that is a
positive of this query is masked out). Evaluation features are the split's queries followed by the whole corpus,
encoded together in the length-sorted evaluation batches; `score` searches the corpus exactly (chunked top-k,
fpt/retrieval/search.py) and computes nDCG@10, MRR@10, Recall@20/100 (ir-measures) and the ECE of the top-1
passage's softmax confidence (fpt/retrieval/measures.py). Passage text: title + " " + text, as BEIR.
"""
from __future__ import annotations

import random

from ..batching import Features
from ..metrics import compute_metrics
from ..readers.beir import load_corpus
from ..readers.common import FormatError
from ..retrieval.measures import MEASURES, expected_calibration_error
from ..retrieval.negatives import bm25_negatives
from ..tasks import TaskDataError, resolve_data_dir
from .base import Kind, register_kind


def corpus_of(task, rows: list[dict]) -> dict[str, dict]:
    """The passages the split's queries are searched in: the BEIR folder's corpus.jsonl, or DPR JSON's own."""
    if task.format == "dpr_json":
        passages = {}
        for row in rows:
            passages.update(row["passages"])
        return passages
    try:
        return load_corpus(resolve_data_dir(task.data_dir))
    except FormatError as err:
        raise TaskDataError(f"task {task.name}: {err}") from None


def passage_text(passage: dict) -> str:
    return f"{passage['title']} {passage['text']}".strip()


@register_kind("retrieval")
class Retrieval(Kind):
    t5 = False

    def __init__(self):
        self._ranked = None  # (id of the outputs list, ranking): score and records share one search

    def check_config(self, task, seq2seq):
        super().check_config(task, seq2seq)
        r = task.retriever
        from ..retrieval.search import backend  # lazy: imports torch; this check runs in fpt/validate.py
        backend(r.search)
        for key, value in [("task.retriever.query_max_length", r.query_max_length), ("task.retriever.top_k", r.top_k),
                           ("task.retriever.chunk_size", r.chunk_size), ("task.retriever.dim", r.dim)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"task {task.name}: {key}={value!r}: expected a positive whole number")
        if isinstance(task.hard_negatives, bool) or not isinstance(task.hard_negatives, int) or task.hard_negatives < 0:
            raise ValueError(f"task {task.name}: task.hard_negatives={task.hard_negatives!r}: expected a whole "
                             f"number >= 0")
        if not r.temperature > 0:
            raise ValueError(f"task {task.name}: task.retriever.temperature={r.temperature!r}: expected > 0")
        if list(task.metrics) != ["retrieval"]:
            raise ValueError(f"task {task.name}: task.metrics={list(task.metrics)}: a retrieval task is scored by "
                             f"[retrieval] (ndcg@10, mrr@10, recall@20, recall@100, ece)")
        if task.metric not in MEASURES:
            raise ValueError(f"task {task.name}: task.metric={task.metric!r}: expected one of {list(MEASURES)} "
                             f"(higher is better; ece is not a selection metric)")

    def num_labels(self, task):
        return None

    def wrapper(self):
        from ..models.retrieval import BiEncoder  # lazy: transformers (fpt/validate.py loads kinds)
        return BiEncoder

    def head(self, task, hidden, num_labels, dropout, pooler, pooling="pooler"):
        from ..models.retrieval import RetrievalHead  # lazy: transformers (fpt/validate.py loads kinds)
        return RetrievalHead(task.retriever, hidden)

    def check_row_bert(self, task, row):
        if not str(row.get("query", "")).strip():
            raise TaskDataError(f"task {task.name}: {row['_source']}: the query has no text")

    # ---------------------------------------------------------------- features
    def features(self, task, rows, tokenizer, seq2seq, target_prefix="", train=False):
        return self.encode(task, rows, tokenizer, seq2seq, target_prefix, train)  # one corpus pass, no trial run

    def _tokenize(self, task, tokenizer, texts: list[str], passage: bool) -> list[dict]:
        r = task.retriever
        length = task.max_length if passage else r.query_max_length
        marker = None
        if r.arch == "colbert":
            marker = tokenizer.convert_tokens_to_ids(r.doc_marker if passage else r.query_marker)
            if marker is None or marker == tokenizer.unk_token_id:
                raise ValueError(f"task {task.name}: ColBERT marker "
                                 f"{r.doc_marker if passage else r.query_marker!r} is not a token of this "
                                 f"tokenizer; set task.retriever.query_marker/doc_marker")
            length -= 1
        enc = tokenizer(texts, truncation=True, max_length=length)
        out = []
        for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
            if marker is not None:  # [CLS] marker tokens ... (ColBERT's [Q] / [D])
                ids, mask = ids[:1] + [marker] + ids[1:], [1] + mask
            out.append({"input_ids": ids, "attention_mask": mask, "is_passage": int(passage)})
        return out

    def encode_bert(self, task, rows, tokenizer, train):
        corpus = corpus_of(task, rows)
        for row in rows:
            missing = [p for p in [*row["qrels"], *row["negatives"]] if p not in corpus]
            if missing:
                raise TaskDataError(f"task {task.name}: {row['_source']}: passage id {missing[0]!r} is not in the "
                                    f"corpus")
        if train:
            return self._train_features(task, rows, tokenizer, corpus)
        queries = self._tokenize(task, tokenizer, [row["query"] for row in rows], passage=False)
        ids = list(corpus)
        passages = self._tokenize(task, tokenizer, [passage_text(corpus[p]) for p in ids], passage=True)
        meta = [{"query_id": row["id"], "qrels": row["qrels"]} for row in rows] + [None] * len(ids)
        return Features(queries + passages, meta=meta, examples=ids)

    def _train_features(self, task, rows, tokenizer, corpus):
        ids = list(corpus)
        index = {p: i for i, p in enumerate(ids)}
        n = task.hard_negatives
        mined = {}
        if n and task.negatives == "bm25":
            mined = bm25_negatives([row["query"] for row in rows], ids, [passage_text(corpus[p]) for p in ids],
                                   [{p for p, s in row["qrels"].items() if s > 0} for row in rows], n)
        rng = random.Random(task.shuffle_seed)
        pairs = []
        for k, row in enumerate(rows):
            positives = [p for p, s in sorted(row["qrels"].items(), key=lambda x: -x[1]) if s > 0]
            pool = mined.get(k) if mined else (row["negatives"] + [p for p, s in row["qrels"].items() if s <= 0])
            negatives = [p for p in pool if p not in positives][:n]
            while len(negatives) < n:  # fewer judged negatives than asked: random passages of the corpus
                p = ids[rng.randrange(len(ids))]
                if p not in positives and p not in negatives:
                    negatives.append(p)
                elif len(ids) <= len(positives) + len(negatives):
                    raise TaskDataError(f"task {task.name}: the corpus has too few passages for "
                                        f"task.hard_negatives={n}")
            for positive in positives:
                pairs.append((row, positive, negatives, positives))
        queries = self._tokenize(task, tokenizer, [row["query"] for row, *_ in pairs], passage=False)
        needed = sorted({p for _, pos, neg, _ in pairs for p in [pos, *neg]}, key=index.get)
        tokens = dict(zip(needed, self._tokenize(task, tokenizer, [passage_text(corpus[p]) for p in needed],
                                                 passage=True)))
        items = []
        for q, (row, positive, negatives, positives) in zip(queries, pairs):
            group = [positive, *negatives]
            items.append({"input_ids": q["input_ids"], "attention_mask": q["attention_mask"],
                          "p_input_ids": [tokens[p]["input_ids"] for p in group],
                          "p_attention_mask": [tokens[p]["attention_mask"] for p in group],
                          "p_index": [index[p] + 1 for p in group],  # + 1: 0 is collate's padding
                          "q_positives": [index[p] + 1 for p in positives]})
        return Features(items, meta=[row["id"] for row, *_ in pairs])

    # ---------------------------------------------------------------- prediction and scoring
    def predict_bert(self, model, batch, task):
        return model.embed_rows(batch)

    def rank(self, task, features, outputs) -> tuple:
        """(query ids, top-k scores [Q, k], top-k passage indices [Q, k]) of the split's queries."""
        import torch  # lazy: the start-up checks (fpt/validate.py) load kinds before torch
        if self._ranked is not None and self._ranked[0] is outputs:
            return self._ranked[1]
        from ..retrieval.search import backend, dense_topk, late_topk  # lazy: imports torch (as above)
        r = task.retriever
        queries = [m for m in features.meta if m is not None]
        q_out, p_out = outputs[:len(queries)], outputs[len(queries):]
        if r.arch == "colbert":
            scores, index = late_topk(q_out, p_out, r.top_k, chunk=max(1, r.chunk_size // 32))
        else:
            scores, index = dense_topk(torch.stack(q_out), torch.stack(p_out), r.top_k, r.chunk_size,
                                       backend(r.search))
        result = ([m["query_id"] for m in queries], scores, index)
        self._ranked = (outputs, result)
        return result

    def rankings(self, task, features, outputs) -> list[dict]:
        """{passage id: score} of each query's top-k."""
        _, scores, index = self.rank(task, features, outputs)
        ids = features.examples
        return [{ids[j]: s for s, j in zip(srow.tolist(), jrow.tolist())} for srow, jrow in zip(scores, index)]

    def score_bert(self, task, features, outputs):
        import torch  # lazy: the start-up checks (fpt/validate.py) load kinds before torch
        queries = [m for m in features.meta if m is not None]
        runs = self.rankings(task, features, outputs)
        metrics = compute_metrics(list(task.metrics), runs, [m["qrels"] for m in queries])
        _, scores, index = self.rank(task, features, outputs)
        ids = features.examples
        correct = torch.tensor([m["qrels"].get(ids[j[0]], 0) > 0 for m, j in zip(queries, index.tolist())])
        metrics["ece"] = expected_calibration_error(scores, correct, task.retriever.temperature)
        return metrics

    def bert_records(self, task, rows, features, outputs, scores):
        """prediction: the top-k [passage id, score] pairs, best first; gold: the relevant passage ids; score: the
        top-1 passage's score."""
        _, top_scores, index = self.rank(task, features, outputs)
        ids = features.examples
        preds = [[[ids[j], round(s, 6)] for s, j in zip(srow, jrow)]
                 for srow, jrow in zip(top_scores.tolist(), index.tolist())]
        golds = [sorted(p for p, s in row["qrels"].items() if s > 0) for row in rows]
        return preds, golds, [p[0][1] if p else None for p in preds]

    @staticmethod
    def trec_run(records: list[dict], tag: str = "fpt") -> str:
        """Prediction records as a TREC run: `query-id Q0 passage-id rank score tag`, one line per passage."""
        return "".join(f"{r['id']} Q0 {pid} {rank} {score} {tag}\n" for r in records
                       for rank, (pid, score) in enumerate(r["prediction"], 1))
