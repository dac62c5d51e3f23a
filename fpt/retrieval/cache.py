"""Passage embeddings cached in the run folder (eval.py run=...): re-scoring a checkpoint, on the same or another
split or corpus, encodes only the passages it has not seen. The cache file is keyed by the trained-tensor file's
content (its sha256), an entry by the passage's exact token ids, so another checkpoint, tokenizer setting or
passage text can never take a stale vector. Written atomically after scoring."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class EmbeddingCache:
    def __init__(self, folder: Path, tensors: Path):
        self.path = Path(folder) / f"{Path(tensors).stem}-{file_digest(tensors)}.pt"
        self.vectors: dict[str, torch.Tensor] = torch.load(self.path) if self.path.is_file() else {}
        self.hits = self.added = 0

    @staticmethod
    def key(token_ids: torch.Tensor) -> str:
        return hashlib.sha1(token_ids.to(torch.int64).cpu().numpy().tobytes()).hexdigest()

    def get(self, key: str):
        found = self.vectors.get(key)
        self.hits += found is not None
        return found

    def put(self, key: str, vector: torch.Tensor) -> None:
        self.vectors[key] = vector
        self.added += 1

    def save(self) -> None:
        if not self.added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        torch.save(self.vectors, tmp)
        os.replace(tmp, self.path)
        self.added = 0
