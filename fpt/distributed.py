"""Data parallelism in a few functions; single-process runs pass straight through.

`torchrun --nproc_per_node=N train.py ...` sets WORLD_SIZE/RANK/LOCAL_RANK (Slurm's srun sets
SLURM_* which `init()` maps to the same). Each rank takes a contiguous slice of every global batch,
so the global batch is trainer.batch_size whatever the number of processes.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.distributed as tdist


def _env(name: str, slurm: str, default: str) -> int:
    return int(os.environ.get(name, os.environ.get(slurm, default)))


def is_distributed() -> bool:
    return _env("WORLD_SIZE", "SLURM_NTASKS", "1") > 1


def init() -> None:
    if is_distributed() and not tdist.is_initialized():
        os.environ.setdefault("RANK", os.environ.get("SLURM_PROCID", "0"))
        os.environ.setdefault("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        tdist.init_process_group(backend=backend)


def rank() -> int:
    return tdist.get_rank() if tdist.is_initialized() else 0


def world_size() -> int:
    return tdist.get_world_size() if tdist.is_initialized() else 1


def local_rank() -> int:
    return _env("LOCAL_RANK", "SLURM_LOCALID", "0")


def wrap(model, device):
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(indices) -> list:
    """This rank's contiguous slice of a list (all of it on one process)."""
    indices = list(indices)
    n, w, r = len(indices), world_size(), rank()
    return indices[r * n // w:(r + 1) * n // w]


def gather_lists(items: list) -> list:
    """Concatenate every rank's list in rank order (undoes `shard`)."""
    if world_size() == 1:
        return items
    out = [None] * world_size()
    tdist.all_gather_object(out, items)
    return [x for part in out for x in part]


def mean(value: float) -> float:
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    tdist.all_reduce(t)
    return t.item() / world_size()


def broadcast_object(obj):
    if world_size() == 1:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def no_sync(model):
    return model.no_sync() if hasattr(model, "no_sync") else nullcontext()
