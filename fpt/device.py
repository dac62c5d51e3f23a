"""Where a run computes and how it is seeded: the device, the model's placement on it, the seeds."""
from __future__ import annotations

import random

import numpy as np
import torch

from . import distributed as dist
from .validate import check_device


def pick_device(name: str) -> torch.device:
    """trainer.device as a torch device; a device this machine does not have is a ConfigError naming it."""
    check_device(name)
    if name == "auto":
        if dist.is_distributed() and torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def place_model(model, device: torch.device, sharded: bool) -> torch.device:
    """Move the model to `device`; return the device batches go to.

    A model loaded with `model.device_map` (sharded over GPUs by Hugging Face) stays where it was put:
    only the prompt and head move, to the device of the input embeddings, where batches go too.
    """
    if not sharded:
        model.to(device)
        return device
    if dist.world_size() > 1:
        raise ValueError("model.device_map shards one model over this process's GPUs; it cannot be combined with "
                         "DDP (torchrun with more than one process). Use one or the other.")
    first = model.backbone.get_input_embeddings().weight.device
    for name, child in model.named_children():
        if name != "backbone":
            child.to(first)
    return first


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each DDP rank (its dropout masks), the run's seed on rank 0."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
