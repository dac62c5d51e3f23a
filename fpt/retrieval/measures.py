"""Ranking metrics from ir-measures (pytrec_eval's trec_eval, as BEIR), and the calibration of retrieval scores.

`ranking_metrics(runs, qrels)`: runs[i] = {passage id: score} retrieved for query i, qrels[i] = {passage id:
relevance}; returns ndcg@10, mrr@10, recall@20, recall@100 (fractions, averaged over queries, as BEIR).

`expected_calibration_error(scores, correct, temperature)`: the confidence of a query's top-1 passage is its softmax
probability over the query's retrieved top-k scores divided by the temperature (the training loss's own softmax,
so the calibrated confidence of a trained retriever); ECE = sum over 10 equal-width confidence bins of
(bin share) x |accuracy - mean confidence|, where accuracy = the top-1 passage is relevant.
"""
from __future__ import annotations

import importlib.util

MEASURES = {"ndcg@10": "nDCG@10", "mrr@10": "RR@10", "recall@20": "R@20", "recall@100": "R@100"}
ECE_BINS = 10


def ir_measures_installed() -> bool:
    return importlib.util.find_spec("ir_measures") is not None


def ranking_metrics(runs: list[dict], qrels: list[dict]) -> dict[str, float]:
    if len(runs) != len(qrels):
        raise ValueError(f"got {len(runs)} rankings but {len(qrels)} judged queries")
    if not runs:
        raise ValueError("got no queries to score")
    if not ir_measures_installed():
        raise ValueError("retrieval metrics need the ir-measures package (pip install ir-measures, or the "
                         "`retrieval` extra)")
    import ir_measures  # optional (the retrieval extra)
    measures = {name: ir_measures.parse_measure(spec) for name, spec in MEASURES.items()}
    qrel_dict = {str(i): {str(p): int(r) for p, r in q.items()} for i, q in enumerate(qrels)}
    run_dict = {str(i): {str(p): float(s) for p, s in r.items()} for i, r in enumerate(runs)}
    per_query = {name: 0.0 for name in measures}
    by_measure = {m: name for name, m in measures.items()}
    for m in ir_measures.iter_calc(list(measures.values()), qrel_dict, run_dict):
        name = by_measure[m.measure]
        per_query[name] += m.value
    # a query with an empty ranking scores 0 (trec_eval leaves it out: BEIR's mean is over all judged queries)
    return {name: per_query[name] / len(qrels) for name in measures}


def expected_calibration_error(scores, correct, temperature: float, bins: int = ECE_BINS) -> float:
    """scores: [Q, k] top-k scores (a torch tensor), best first; correct: [Q] bool, the top-1 passage is relevant."""
    import torch  # lazy: the ranking metrics (fpt/metrics.py, start-up checks) run without torch
    confidence = (scores.float() / temperature).softmax(-1)[:, 0]
    correct = correct.float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        inside = (confidence > lo) & (confidence <= hi) if b else (confidence >= lo) & (confidence <= hi)
        if inside.any():
            ece += inside.float().mean().item() * abs(correct[inside].mean().item() - confidence[inside].mean().item())
    return float(ece)
