"""Load a finished (or running) training run's trained prompt back and score it: what eval.py does.

`load_run(run_dir, checkpoint)` rebuilds the run's model exactly as its Trainer did (the run's config.yaml,
the same seed before the model is built, so a random from_config backbone is the same one; the final stage
of a growth schedule) and loads `trainable_<checkpoint>.safetensors` onto it, checking the file's header.
`score(loaded, split=... | data=...)` returns the metrics and one prediction record per example.
"""
from __future__ import annotations

import copy
import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf, open_dict

from .build import build
from .predict import predict, records
from .runs.checkpoint import write_json, write_text
from .runs.folder import resolve_run_dir, run_config
from .runs.trained import load_trained, tensor_file
from .tasks import TaskDataError, read_rows

log = logging.getLogger("fpt")
SUFFIX_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass
class LoadedRun:
    cfg: object
    model: object
    tokenizer: object
    kind: object
    seq2seq: bool
    device: torch.device
    header: dict
    path: Path
    partial: bool = False  # the run ends on a partial model (a partial_* growth schedule)


def _total_steps(cfg, run_dir: Path) -> int:
    """The steps the run's schedule was laid out for (what its Trainer computed)."""
    try:
        results = json.loads((Path(run_dir) / "results.json").read_text())
        offset = (results.get("init_from") or {}).get("start_step", 0)
        return int(results["total_steps"]) - offset
    except (OSError, KeyError, ValueError):
        if cfg.trainer.max_steps:
            return int(cfg.trainer.max_steps)
        raise ValueError(f"{run_dir}: no results.json with total_steps, and trainer.max_steps is not set") from None


def load_run(run_dir, checkpoint: str = "best", device: str = "auto", overrides: dict | None = None) -> LoadedRun:
    """The run's model with its trained tensors, in eval mode on `device`."""
    run_dir = resolve_run_dir(run_dir)
    cfg = run_config(run_dir)
    with open_dict(cfg):
        cfg.init_from = None  # the tensors come from this run's own file
        for key, value in (overrides or {}).items():
            OmegaConf.update(cfg, key, value, merge=False)
    path = tensor_file(run_dir, checkpoint)
    steps = _total_steps(cfg, run_dir) if cfg.schedule.stages else None
    parts = build(cfg, device, training=False, steps=steps)  # fpt/build.py: seeded and shaped as the Trainer's
    model, partial = parts.model, False
    if cfg.schedule.stages:  # shaped as the schedule's final stage: is that the full model?
        dims, last = parts.family.dims(model.backbone.config), parts.growth.stages[-1]
        partial = any(len(last.layers[s]) < n or last.ffn[s] < dims["ffn"] for s, n in dims["layers"].items())
    header = load_trained(path, cfg, model, same_task=True)
    if hasattr(model, "attach_cache"):  # a retriever: passage embeddings cached in the run folder, per checkpoint
        model.attach_cache(run_dir / "embedding_cache", path)
    model.eval()
    return LoadedRun(cfg, model, parts.tokenizer, parts.kind, parts.seq2seq, parts.device, header, path, partial)


# --------------------------------------------------------------------------- which rows
def file_task(task, data: str, data_format: str | None):
    """The task reading one file (all its rows) as split "file"."""
    path = Path(data).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"data={data}: no such file")
    fmt = data_format or (task.format if task.data_dir else SUFFIX_FORMATS.get(path.suffix))
    if fmt is None:
        raise ValueError(f"data={data}: cannot tell its format from the suffix; give data_format=tsv|csv|jsonl|...")
    task = copy.deepcopy(task)
    with open_dict(task):
        task.data_dir, task.format, task.files, task.max_eval_samples = str(path.parent), fmt, {"file": path.name}, None
    return task


def fill_missing_labels(kind, task, rows: list[dict]) -> bool:
    """True if the rows carry gold labels. Rows without any (prediction only) get the kind's placeholder label
    (`Kind.unlabeled_label`) where the task's gold is one label column; other kinds need their gold columns."""
    have = [task.label_field in row for row in rows]
    placeholder = kind.unlabeled_label(task)
    if all(have) or placeholder is None:
        return True
    if any(have):
        missing = next(row["_source"] for row, h in zip(rows, have) if not h)
        raise TaskDataError(f"task {task.name}: {missing}: no label column {task.label_field!r}, though other rows "
                            f"have one; label every row or none")
    for row in rows:
        row[task.label_field] = placeholder
    return False


# --------------------------------------------------------------------------- scoring
def score(loaded: LoadedRun, split: str = "eval", data: str | None = None, data_format: str | None = None,
          batch_size: int | None = None, bf16: bool | None = None) -> tuple[dict, list[dict]]:
    """(metrics, prediction records) of the split, or of the file `data` in the task's format."""
    cfg = loaded.cfg
    task = file_task(cfg.task, data, data_format) if data else cfg.task
    rows = read_rows(task, "file" if data else split)
    if not rows:
        raise TaskDataError(f"task {task.name}: {'data=' + data if data else 'split ' + split} has no rows")
    labeled = fill_missing_labels(loaded.kind, task, rows)
    features = loaded.kind.features(task, rows, loaded.tokenizer, loaded.seq2seq, cfg.model.target_prefix)
    use_bf16 = cfg.trainer.bf16 if bf16 is None else bf16
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if loaded.device.type == "cuda" and use_bf16
                else nullcontext())
    outputs, scores = predict(loaded.model, loaded.kind, task, features, seq2seq=loaded.seq2seq,
                              batch_size=batch_size or cfg.trainer.eval_batch_size, device=loaded.device,
                              pad_id=loaded.tokenizer.pad_token_id or 0, autocast=autocast)
    metrics = ({k: float(v) for k, v in loaded.kind.score(task, features, outputs, loaded.seq2seq).items()}
               if labeled else {})
    return metrics, records(loaded.kind, task, rows, features, outputs, scores, seq2seq=loaded.seq2seq,
                            labeled=labeled)


def evaluate_run(run_dir, out_dir, *, split: str = "eval", data: str | None = None, checkpoint: str = "best",
                 device: str = "auto", data_format: str | None = None, batch_size: int | None = None,
                 bf16: bool | None = None, overrides: dict | None = None) -> dict:
    """Score a run's trained prompt and write metrics.json and predictions.jsonl into out_dir; return the summary.
    `overrides` ({dotted key: value}, e.g. {"task.data_dir": OTHER}) replace keys of the run's config."""
    loaded = load_run(run_dir, checkpoint, device, overrides)
    metrics, preds = score(loaded, split, data, data_format, batch_size, bf16)
    summary = {"run": str(resolve_run_dir(run_dir).resolve()), "checkpoint": checkpoint, "tensors": str(loaded.path),
               "step": int(loaded.header["step"]) if "step" in loaded.header else None,
               "task": loaded.cfg.task.name, "model": loaded.cfg.model.name, "prompt": loaded.cfg.prompt.type,
               "split": None if data else split, "data": str(Path(data).resolve()) if data else None,
               "examples": len(preds), "labeled": bool(metrics), "metric": loaded.cfg.task.metric,
               "metrics": metrics, "device": str(loaded.device), "overrides": dict(overrides or {})}
    if getattr(loaded.model, "embedding_cache", None) is not None:
        summary["cached_passages"] = loaded.model.embedding_cache.hits
        loaded.model.embedding_cache.save()
    return write_outputs(loaded, summary, preds, out_dir)


def write_outputs(loaded: LoadedRun, summary: dict, preds: list[dict], out_dir) -> dict:
    """metrics.json (the summary), predictions.jsonl and, for a kind that has one, its run file (retrieval:
    run.trec, TREC run format)."""
    out_dir = Path(out_dir)
    write_text(out_dir / "predictions.jsonl", "".join(json.dumps(r, default=float) + "\n" for r in preds))
    if hasattr(loaded.kind, "trec_run"):
        write_text(out_dir / "run.trec", loaded.kind.trec_run(preds, tag=loaded.cfg.model.name))
    write_json(out_dir / "metrics.json", summary)
    log.info("%s %s: %s -> %s", summary["task"], summary["data"] or summary["split"],
             summary["metrics"] or "(no gold labels)", out_dir)
    return summary
