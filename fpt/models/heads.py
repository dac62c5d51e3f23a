"""Task heads for BERT-like encoders (P-tuning v2 style): hidden states of the real tokens -> logits -> loss.

Every head is called as `head(hidden_states, batch) -> logits` and `head.loss(logits, batch)`, which is
None when the batch carries no targets. Each task kind picks its head (`Kind.head`, fpt/task_kinds/).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PooledHead(nn.Module):
    """Pool the sequence, dropout, a linear layer. Pooling (model.pooling): "pooler" = the backbone's frozen
    pooler on [CLS] (P-tuning v2), "cls" = [CLS] itself, "mean" = mean over the real tokens."""

    def __init__(self, hidden: int, outputs: int, dropout: float, pooler: nn.Module | None, pooling: str = "pooler"):
        super().__init__()
        self.pooler = [pooler if pooling == "pooler" else None]  # a list: the frozen pooler is not registered twice
        self.mean = pooling == "mean"
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, outputs)

    def pool(self, hidden_states: torch.Tensor, batch: dict | None) -> torch.Tensor:
        if self.mean:
            if batch is None or "attention_mask" not in batch:
                return hidden_states.mean(1)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden_states.dtype)
            return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooler = self.pooler[0]
        return pooler(hidden_states) if pooler is not None else hidden_states[:, 0]

    def forward(self, hidden_states: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(hidden_states, batch)))


class ClassificationHead(PooledHead):
    """One logit per class; cross-entropy on batch["label"]."""

    def loss(self, logits, batch):
        return F.cross_entropy(logits.float(), batch["label"]) if "label" in batch else None


class RegressionHead(PooledHead):
    """One score; mean squared error on batch["label"] (STS-B)."""

    def __init__(self, hidden, dropout, pooler, pooling="pooler"):
        super().__init__(hidden, 1, dropout, pooler, pooling)

    def forward(self, hidden_states, batch=None):
        return super().forward(hidden_states, batch).squeeze(-1)

    def loss(self, logits, batch):
        return F.mse_loss(logits.float(), batch["label"].float()) if "label" in batch else None


class MultipleChoiceHead(PooledHead):
    """One score per (context, choice) pair, softmax over an example's choices (COPA).

    The batch holds the B*C pairs flattened and batch["choice_mask"] [B, C] marks the real choices.
    """

    def __init__(self, hidden, dropout, pooler, pooling="pooler"):
        super().__init__(hidden, 1, dropout, pooler, pooling)

    def forward(self, hidden_states, batch=None):
        mask = batch["choice_mask"]
        scores = super().forward(hidden_states, batch).view(mask.shape)
        return scores.float().masked_fill(~mask, torch.finfo(torch.float32).min)

    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch["label"]) if "label" in batch else None


class TokenClassificationHead(nn.Module):
    """A tag per token (NER, SRL); the loss covers the first sub-word of each word (tag_ids != -100)."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states, batch=None):
        return self.classifier(self.dropout(hidden_states))

    def loss(self, logits, batch):
        if "tag_ids" not in batch:
            return None
        return F.cross_entropy(logits.float().flatten(0, 1), batch["tag_ids"].flatten(), ignore_index=-100)


class SpanHead(nn.Module):
    """Start and end logits per token (extractive QA); [CLS] (position 0) stands for "no answer"."""

    def __init__(self, hidden: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden, 2)

    def forward(self, hidden_states, batch=None):
        logits = self.qa_outputs(hidden_states).float()  # [N, L, 2]
        if batch is not None and "attention_mask" in batch:  # padding can never be a start or an end
            logits = logits.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), torch.finfo(torch.float32).min)
        return logits

    def loss(self, logits, batch):
        if "start_positions" not in batch:
            return None
        start, end = logits.unbind(-1)
        return (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
