"""Trained-tensor files (`trainable_best.safetensors`, `trainable_final.safetensors`): what they hold and
how they are loaded back.

Each file carries, in its safetensors header, what the tensors belong to: the base model (name, path or
from_config, family, a digest of its frozen input embeddings), the prompt (type, length, projection),
the task (name, type, labels), the fpt version and a sha256 of all that and the tensors (fpt.runs.checkpoint:
a damaged file is refused, naming it). `load_trained` refuses a file whose model or prompt does not match the
model it is loaded onto, naming the key and both values.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata as _pkg
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..prompt_methods import prompt_method
from .checkpoint import read_tensors

FORMAT = "fpt-trainable"
CHECKPOINTS = ("best", "final")  # trainable_<checkpoint>.safetensors
# what must agree for the tensors to mean the same thing on another model (init_from may change the task)
MODEL_KEYS = ("family", "model_name_or_path", "model_from_config", "prompt_type", "prompt_length",
              "prompt_projection", "backbone_digest")
TASK_KEYS = ("task", "task_type", "labels")


class TrainedTensorError(ValueError):
    """A trained-tensor file does not fit the model it is loaded onto."""


def fpt_version() -> str:
    try:
        return _pkg.version("fpt")
    except _pkg.PackageNotFoundError:
        return "unknown"


def backbone_digest(model) -> str:
    """A short hash of the frozen backbone's first 256 input-embedding rows: tells random (from_config) backbones
    of different seeds, and different checkpoints behind one name, apart. Empty when the backbone trains."""
    if prompt_method(model.prompt_type).trains_backbone:
        return ""
    weight = model.backbone.get_input_embeddings().weight[:256]
    return hashlib.sha256(weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()[:16]


def tensor_metadata(cfg, model, **extra) -> dict[str, str]:
    """The header of a trained-tensor file for this run's config and model (safetensors wants str -> str)."""
    from_config = cfg.model.from_config
    plain = OmegaConf.to_container(from_config, resolve=True) if from_config is not None else None
    method = prompt_method(cfg.prompt.type)
    meta = {
        "format": FORMAT, "fpt_version": fpt_version(),
        "model_name": cfg.model.name, "model_name_or_path": cfg.model.name_or_path, "family": cfg.model.family,
        "model_from_config": json.dumps(plain, sort_keys=True) if plain is not None else "",
        "backbone_digest": backbone_digest(model),
        "prompt_type": cfg.prompt.type, "prompt_length": str(0 if method.trains_backbone else cfg.prompt.length),
        "prompt_projection": str(bool(cfg.prompt.projection and method.layer_prefix)).lower(),
        "task": cfg.task.name, "task_type": cfg.task.type, "labels": json.dumps(list(cfg.task.labels)),
        "keys": json.dumps(sorted(model.trainable_state_dict())),
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def read_trained(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a trained-tensor file, checked against its sha256 (fpt.runs.checkpoint.read_tensors:
    CheckpointError naming a damaged file); metadata is {} for files written before fpt stored it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trained-tensor file not found: {path}")
    return read_tensors(path, "trained-tensor file")


def check_metadata(meta: dict, expected: dict, path, keys=MODEL_KEYS) -> None:
    """Fail naming every key where the file's header and the model it is loaded onto disagree."""
    if not meta:
        return  # an old file without a header: the shape check in load_trained still applies
    if meta.get("format") != FORMAT:
        raise TrainedTensorError(f"{path}: not an fpt trained-tensor file (header format={meta.get('format')!r})")
    wrong = [f"{k}: file has {meta.get(k)!r}, the model has {expected.get(k)!r}"
             for k in keys if k in meta and meta.get(k) != expected.get(k)]
    if wrong:
        raise TrainedTensorError(f"{path} was trained on another model or prompt than it is loaded onto:\n  "
                                 + "\n  ".join(wrong))


def check_shapes(tensors: dict, model, path, only=None) -> None:
    """Every tensor (or those in `only`) must be a trainable tensor of the model with the same shape."""
    own = model.trainable_state_dict()
    names = list(tensors) if only is None else only
    unknown = [k for k in names if k not in own]
    if unknown:
        raise TrainedTensorError(f"{path}: tensors {unknown[:5]} are not trainable tensors of this model "
                                 f"(it has {sorted(own)[:8]})")
    wrong = [f"{k}: file {tuple(tensors[k].shape)}, model {tuple(own[k].shape)}" for k in names
             if tensors[k].shape != own[k].shape]
    if wrong:
        raise TrainedTensorError(f"{path}: tensor shapes do not match the model: " + "; ".join(wrong))


def load_trained(path, cfg, model, *, same_task: bool = True) -> dict[str, str]:
    """Load a trained-tensor file onto `model` (built from `cfg`), checking its header and shapes; return the header.

    same_task=True (eval.py): the task and labels must match too and every trainable tensor must be in the file.
    """
    tensors, meta = read_trained(path)
    expected = tensor_metadata(cfg, model)
    check_metadata(meta, expected, path, MODEL_KEYS + (TASK_KEYS if same_task else ()))
    check_shapes(tensors, model, path)
    missing = sorted(set(model.trainable_state_dict()) - set(tensors))
    if same_task and missing:
        raise TrainedTensorError(f"{path}: the model has trainable tensors the file lacks: {missing[:5]}")
    with torch.no_grad():
        model.load_state_dict(tensors, strict=False)
    return meta


def tensor_file(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint={checkpoint!r}: expected one of {CHECKPOINTS}")
    path = Path(run_dir) / f"trainable_{checkpoint}.safetensors"
    if not path.is_file():
        hint = " (the run has not finished)" if checkpoint == "final" else " (no evaluation ran in the final stage)"
        raise FileNotFoundError(f"{path} does not exist{hint}")
    return path
