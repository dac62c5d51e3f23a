"""`init_from=<run folder or trained-tensor file>`: start a run from a trained prompt (and head).

- A run folder means its `trainable_final.safetensors`; give a file to start from another one
  (e.g. `<run>/trainable_best.safetensors`). A job folder that skipped or continued an earlier run (its
  run_link.json) means that run, as for eval.py.
- The prompt must fit this run's model and prompt config (fpt/runs/trained.py checks the file's header).
- The head is loaded when the source task has the same type and labels; otherwise it starts fresh
  (a prompt transferred to another task).
- Same task: a continuation. The step count goes on from the step the tensors were saved at (their
  header's `step`), the batches continue the same data stream, and the run is evaluated once before
  its first step, so its metrics continue from where the source left off. trainer.max_steps counts
  the new steps. The optimizer and LR schedule start fresh (optim.* of this run).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .folder import resolve_run_dir
from .trained import MODEL_KEYS, check_metadata, check_shapes, read_trained, tensor_metadata

RUN_FILE = "trainable_final.safetensors"


def resolve(source: str) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        path = resolve_run_dir(path) / RUN_FILE
        if not path.is_file():
            raise FileNotFoundError(f"init_from={source}: the folder has no {RUN_FILE} (did that run finish? "
                                    f"give a .safetensors file, e.g. {Path(source) / 'trainable_best.safetensors'})")
    elif not path.is_file():
        raise FileNotFoundError(f"init_from={source}: no such run folder or trained-tensor file")
    return path


def apply_init_from(cfg, model) -> dict | None:
    """Load cfg.init_from's tensors into `model`; what was loaded, for results.json (None without init_from)."""
    if not cfg.get("init_from"):
        return None
    path = resolve(cfg.init_from)
    tensors, meta = read_trained(path)
    check_metadata(meta, tensor_metadata(cfg, model), path, MODEL_KEYS)
    same_head = (meta.get("task_type") == cfg.task.type
                 and json.loads(meta.get("labels", "null")) == list(cfg.task.labels))
    own = model.trainable_state_dict()
    heads = [k for k in tensors if k.startswith("head.")]
    head_fits = same_head and all(k in own and own[k].shape == tensors[k].shape for k in heads)
    keys = [k for k in tensors if not k.startswith("head.")] + (heads if head_fits else [])
    check_shapes(tensors, model, path, only=keys)
    with torch.no_grad():
        model.load_state_dict({k: tensors[k] for k in keys}, strict=False)
    same_task = head_fits and meta.get("task") == cfg.task.name
    start = int(meta.get("step", 0)) if same_task else 0
    return {"path": str(path.resolve()), "source_task": meta.get("task"), "source_step": meta.get("step"),
            "continued": same_task, "start_step": start, "loaded": sorted(keys),
            "fresh": sorted(set(own) - set(keys))}
