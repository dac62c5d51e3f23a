"""Exact top-k search: queries x corpus scores in chunks of passages, keeping a running top-k, so that a full
queries x corpus matrix is never held (peak memory: one [queries, chunk] block plus the top-k).

`search="torch"`: matmul per chunk; `search="faiss"`: faiss-cpu IndexFlatIP per chunk (inner product, exact), the
same ranking; `search="auto"`: faiss when installed. ColBERT (token matrices) is scored with MaxSim per chunk.
"""
from __future__ import annotations

import importlib.util

import torch


def faiss_installed() -> bool:
    return importlib.util.find_spec("faiss") is not None


def backend(name: str) -> str:
    """The search backend task.retriever.search names; "faiss" without faiss-cpu installed is an error."""
    if name == "auto":
        return "faiss" if faiss_installed() else "torch"
    if name == "faiss" and not faiss_installed():
        raise ValueError("task.retriever.search=faiss needs the faiss-cpu package (pip install faiss-cpu, or the "
                         "`retrieval` extra); or use task.retriever.search=torch")
    return name


def _merge(best_s, best_i, cand_s, cand_i, k: int):
    """Running top-k: the k best of (the best so far) and (a block's candidates), best first."""
    if best_s is not None:
        cand_s, cand_i = torch.cat([best_s, cand_s], 1), torch.cat([best_i, cand_i], 1)
    s, order = cand_s.topk(min(k, cand_s.shape[1]), dim=1)
    return s, cand_i.gather(1, order)


def _block_topk(scores: torch.Tensor, offset: int, k: int):
    s, j = scores.topk(min(k, scores.shape[1]), dim=1)
    return s, j + offset


def dense_topk(queries: torch.Tensor, passages: torch.Tensor, k: int, chunk: int = 8192,
               backend_name: str = "torch") -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, passage indices), [Q, min(k, N)] each, best first, of inner products queries @ passages.T."""
    queries, passages = queries.float().contiguous(), passages.float().contiguous()
    best_s = best_i = None
    for start in range(0, passages.shape[0], chunk):
        block = passages[start:start + chunk]
        if backend_name == "faiss":
            import faiss  # optional (the retrieval extra): imported only when chosen
            index = faiss.IndexFlatIP(block.shape[1])
            index.add(block.numpy())
            s, j = index.search(queries.numpy(), min(k, block.shape[0]))
            cand = torch.from_numpy(s), torch.from_numpy(j).long() + start
        else:
            cand = _block_topk(queries @ block.T, start, k)
        best_s, best_i = _merge(best_s, best_i, *cand, k)
    return best_s, best_i


def maxsim(q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """ColBERT late interaction: [Q, P] = sum over query tokens of the max over passage tokens of q_t . d_t
    (padding tokens of either side never count)."""
    sim = torch.einsum("qid,pjd->qpij", q, d)
    sim = sim.masked_fill(~d_mask.bool()[None, :, None, :], float("-inf")).amax(-1)
    return (sim * q_mask[:, None, :].to(sim.dtype)).sum(-1)


def _padded(mats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(m.shape[0] for m in mats)
    out = torch.zeros(len(mats), width, mats[0].shape[1])
    mask = torch.zeros(len(mats), width, dtype=torch.bool)
    for i, m in enumerate(mats):
        out[i, :m.shape[0]], mask[i, :m.shape[0]] = m.float(), True
    return out, mask


def late_topk(queries: list[torch.Tensor], passages: list[torch.Tensor], k: int, chunk: int = 256,
              query_chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ColBERT search: MaxSim of every query against every passage, in blocks, keeping the top-k."""
    results_s, results_i = [], []
    for qs in range(0, len(queries), query_chunk):
        q, q_mask = _padded(queries[qs:qs + query_chunk])
        best_s = best_i = None
        for start in range(0, len(passages), chunk):
            d, d_mask = _padded(passages[start:start + chunk])
            best_s, best_i = _merge(best_s, best_i, *_block_topk(maxsim(q, q_mask, d, d_mask), start, k), k)
        results_s.append(best_s)
        results_i.append(best_i)
    return torch.cat(results_s), torch.cat(results_i)
