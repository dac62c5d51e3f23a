"""Retrievers on a prompted encoder (task.type=retrieval, task.retriever): DPR's bi-encoder and ColBERT.

`RetrievalHead` turns hidden states into what is compared: one vector per text (DPR: [CLS] or the mean of the
real tokens, unit length for cosine) or one unit vector per token through a trained linear map (ColBERT), and
scores queries against passages (dot product, or MaxSim: the sum over query tokens of the best passage token).
`BiEncoder` is a PromptedEncoder (same prompts, growth, checkpoints) that encodes queries and passages: with
task.retriever.shared=false the passages get a prompt of their own (a second deep or shallow prompt on the same
frozen backbone, as PT-Retrieval's two prompted encoders) or, when the backbone trains (none, bitfit), a backbone
copy of their own (DPR's question and context encoders). Its training loss is the softmax cross-entropy of
each query over its own passages and all other passages of the batch (in-batch negatives).
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn
from torch.nn import functional as F

from ..prompt_methods import prompt_method
from ..prompts import DeepPrompt, ShallowPrompt
from ..retrieval.cache import EmbeddingCache
from ..retrieval.search import maxsim
from .wrappers import PromptedEncoder


class RetrievalHead(nn.Module):
    def __init__(self, retriever, hidden: int):
        super().__init__()
        self.arch, self.pooling, self.similarity = retriever.arch, retriever.pooling, retriever.similarity
        self.temperature = float(retriever.temperature)
        self.shared = bool(retriever.shared)  # queries and passages through one prompt (BiEncoder reads it)
        self.linear = nn.Linear(hidden, retriever.dim, bias=False) if self.arch == "colbert" else None

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(vectors, token mask): DPR [B, d] and None; ColBERT [B, L, dim] unit vectors and the [B, L] mask."""
        if self.linear is not None:
            return F.normalize(self.linear(hidden).float(), dim=-1), mask.bool()
        if self.pooling == "cls":
            vec = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        vec = vec.float()
        return (F.normalize(vec, dim=-1) if self.similarity == "cosine" else vec), None

    def scores(self, q, p) -> torch.Tensor:
        """[Q, P] similarity of every query to every passage."""
        (qv, qm), (pv, pm) = q, p
        if self.linear is not None:
            return maxsim(qv, qm, pv, pm)
        return qv @ pv.T


class BiEncoder(PromptedEncoder):
    def __init__(self, backbone, family, prompt_cfg, tokenizer, model_cfg, make_head, gradient_checkpointing=False,
                 checkpoint_layers=1.0):
        super().__init__(backbone, family, prompt_cfg, tokenizer, model_cfg, make_head, gradient_checkpointing,
                         checkpoint_layers)
        self.shared = self.head.shared
        self.passage_deep = self.passage_shallow = self.passage_backbone = None
        self._passage = False  # encoding passages (their own prompt when not shared)
        self.embedding_cache = None  # eval.py run=...: passage vectors of this checkpoint (attach_cache)
        if not self.shared:
            method = prompt_method(prompt_cfg.type)
            if method.layer_prefix:
                self.passage_deep = DeepPrompt(self.deep.num_sites, self.deep.length, self.deep.num_heads,
                                               self.deep.head_dim, prompt_cfg.projection, prompt_cfg.projection_hidden,
                                               prompt_cfg.dropout)
            elif method.input_tokens:
                self.passage_shallow = ShallowPrompt(self.shallow.length, self.shallow.embeds.shape[1], "uniform",
                                                     init_range=prompt_cfg.init_range)
            elif gradient_checkpointing:
                raise ValueError("task.retriever.shared=false with a trained backbone (prompt.type=none|bitfit) "
                                 "keeps a passage backbone of its own, which trainer.gradient_checkpointing does not "
                                 "reach; use one or the other")
            else:  # the backbone trains (fine-tuning, BitFit): the passages get a copy of their own (DPR's ctx model)
                self.passage_backbone = copy.deepcopy(backbone)

    # ---------------------------------------------------------------- which tower
    def deep_prompt(self):
        deep = self.passage_deep if self._passage and self.passage_deep is not None else self.deep
        if deep is None:
            return contextlib.nullcontext()
        return deep.injected(self.sites, self.active_sites, self.prefix_visible)

    def _prepend_shallow(self, module, inputs, output):
        shallow = self.passage_shallow if self._passage and self.passage_shallow is not None else self.shallow
        return torch.cat([shallow(output.shape[0]).to(output.dtype), output], dim=1)

    def encode(self, batch) -> torch.Tensor:
        if self._passage and self.passage_backbone is not None:
            return self.passage_backbone(input_ids=batch["input_ids"],
                                         attention_mask=batch["attention_mask"]).last_hidden_state
        return super().encode(batch)

    def embed(self, input_ids, attention_mask, passage: bool):
        self._passage = passage
        try:
            hidden = self.encode({"input_ids": input_ids, "attention_mask": attention_mask})
        finally:
            self._passage = False
        return self.head(hidden, attention_mask)

    # ---------------------------------------------------------------- training and scoring
    def forward(self, batch) -> dict:
        """Training batch (query + its passages): {"loss", "logits" [B, B*C]}; otherwise the rows' vectors."""
        if "p_input_ids" not in batch:
            vectors, mask = self.embed(batch["input_ids"], batch["attention_mask"], passage=False)
            return {"logits": vectors} if mask is None else {"logits": vectors, "mask": mask}
        q = self.embed(batch["input_ids"], batch["attention_mask"], passage=False)
        p = self.embed(batch["p_input_ids"], batch["p_attention_mask"], passage=True)
        logits = self.head.scores(q, p) / self.head.temperature
        b, c = batch["choice_mask"].shape
        target = torch.arange(b, device=logits.device) * c
        # another query's passage that is one of this query's positives is no negative (masked out)
        p_index = batch["p_index"].reshape(-1)
        positive = (p_index[None, :, None] == batch["q_positives"][:, None, :]).any(-1) & (p_index[None, :] > 0)
        positive[torch.arange(b), target] = False
        logits = logits.masked_fill(positive | ~batch["choice_mask"].reshape(1, -1), float("-inf"))
        return {"loss": F.cross_entropy(logits, target), "logits": logits}

    @torch.no_grad()
    def embed_rows(self, batch) -> list[torch.Tensor]:
        """One CPU float tensor per row: its vector (DPR) or its real tokens' vectors (ColBERT); rows flagged
        batch["is_passage"] are encoded as passages. With an embedding cache (eval.py run=...), a passage whose
        token ids it holds is not encoded again."""
        flags = batch["is_passage"].bool()
        out: list = [None] * flags.shape[0]
        todo = torch.ones_like(flags)
        keys = {}
        if self.embedding_cache is not None:
            for i in flags.nonzero().flatten().tolist():
                keys[i] = self.embedding_cache.key(batch["input_ids"][i][batch["attention_mask"][i].bool()])
                out[i] = self.embedding_cache.get(keys[i])
                todo[i] = out[i] is None
        sides = [(todo & flags, True), (todo & ~flags, False)] if not self.shared else [(todo, False)]
        for rows, passage in sides:
            where = rows.nonzero().flatten()
            if not len(where):
                continue
            vectors, mask = self.embed(batch["input_ids"][where], batch["attention_mask"][where], passage)
            for k, i in enumerate(where.tolist()):
                out[i] = (vectors[k] if mask is None else vectors[k][mask[k]]).cpu()
                if i in keys:
                    self.embedding_cache.put(keys[i], out[i])
        return out

    def attach_cache(self, folder, tensors) -> None:
        """Cache passage embeddings in `folder`, keyed by the trained-tensor file (fpt/retrieval/cache.py)."""
        self.embedding_cache = EmbeddingCache(folder, tensors)
