"""Hard negatives mined with BM25 (task.negatives=bm25): for each training query, the corpus passages BM25 ranks
highest that are not among its positives (DPR's "BM25 negatives"), from the `bm25s` package."""
from __future__ import annotations

import importlib.util


def bm25_negatives(queries: list[str], passage_ids: list[str], passages: list[str], positives: list[set],
                   n: int) -> dict[int, list[str]]:
    """{query position: the n best-ranked non-positive passage ids}; a query may get fewer when BM25 finds
    fewer passages sharing a word with it (the caller tops them up)."""
    if importlib.util.find_spec("bm25s") is None:
        raise ValueError("task.negatives=bm25 needs the bm25s package (pip install bm25s, or the `retrieval` "
                         "extra); or use task.negatives=qrels")
    import bm25s  # optional (the retrieval extra)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False)
    k = min(len(passages), n + max(len(p) for p in positives))
    docs, scores = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=k,
                                      show_progress=False, n_threads=1)
    out = {}
    for q, (row, row_scores) in enumerate(zip(docs.tolist(), scores.tolist())):
        ranked = [passage_ids[j] for j, s in zip(row, row_scores) if s > 0]
        out[q] = [p for p in ranked if p not in positives[q]][:n]
    return out
