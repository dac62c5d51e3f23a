"""Score an untrained model (zero-shot): `python eval.py model=minilm task=beir task.data_dir=FOLDER split=test`.

eval.py without run= composes the training config train.py would see for the given model/task/prompt overrides
(prompt=none unless one is given: the pretrained model as it is), builds that model seeded as a Trainer does, and
scores it with the same code as a trained run (fpt/evaluate_run.py's `score`, `write_outputs`).
"""
from __future__ import annotations

from .build import build
from .evaluate_run import LoadedRun, score, write_outputs
from .validate import check_config

TRAIN_KEYS = ("model", "task", "prompt", "seed")  # what eval.py's overrides may say about the model


def train_overrides(eval_overrides: list[str]) -> list[str]:
    """The eval.py overrides that configure the model and task (model=, task=, task.data_dir=, prompt=...), plus
    prompt=none unless a prompt is chosen."""
    kept = [o for o in eval_overrides if o.lstrip("+~").split("=", 1)[0].split(".")[0] in TRAIN_KEYS]
    if not any(o.lstrip("+~").split("=", 1)[0] == "prompt" for o in kept):
        kept.append("prompt=none")
    return kept


def load_untrained(cfg, device: str = "auto") -> LoadedRun:
    """The model of a training config before any training step (no tensors loaded), in eval mode."""
    check_config(cfg)
    parts = build(cfg, device, training=False)  # fpt/build.py: seeded as a Trainer's
    parts.model.eval()
    return LoadedRun(cfg, parts.model, parts.tokenizer, parts.kind, parts.seq2seq, parts.device, {}, None)


def evaluate_untrained(cfg, out_dir, *, split: str = "eval", device: str = "auto", batch_size: int | None = None,
                       bf16: bool | None = None) -> dict:
    loaded = load_untrained(cfg, device)
    metrics, preds = score(loaded, split, batch_size=batch_size, bf16=bf16)
    summary = {"run": None, "checkpoint": None, "tensors": None, "step": 0, "task": cfg.task.name,
               "model": cfg.model.name, "prompt": cfg.prompt.type, "split": split, "data": None,
               "data_dir": cfg.task.data_dir, "examples": len(preds), "labeled": bool(metrics),
               "metric": cfg.task.metric, "metrics": metrics, "device": str(loaded.device)}
    return write_outputs(loaded, summary, preds, out_dir)
