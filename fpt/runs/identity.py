"""What a run is: its config (less where and how it runs) plus the identity of every data file it reads.

`run_identity(cfg)` is a flat {dotted key: value} dict. Two fingerprints are hashed from it:
- the full one (`fingerprint(identity)`): a completed run with it is skipped, and a new folder finds an
  earlier run of the same config by it;
- the resume one (`fingerprint(identity, resume=True)`), which leaves out RESUMABLE_KEYS: what may change
  between a checkpoint and the run that continues it. Every checkpoint carries it.

Data files are identified by content (sha256) up to HASH_LIMIT bytes: an edited file is another run, and the
same bytes copied to another folder or machine are the same data (a run can be resumed there). Bigger files
are identified by resolved absolute path, size and modification time, which costs no read.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from omegaconf import OmegaConf

from ..config import RetrieverConfig, flatten
from ..tasks import resolve_data_dir

# where the run is written and how it is executed or displayed: never part of a run's identity.
# gradient checkpointing recomputes the same values; stop_at_step (where a search's rung pauses the run) neither:
# the same run continues with a later stop step
TRAINER_RUNTIME_KEYS = ("resume", "skip_completed", "progress", "log_every", "threads", "device",
                        "gradient_checkpointing", "checkpoint_layers", "stop_at_step", "keep_checkpoints")
RUNTIME_KEYS = ("run_dir", "output_root", *(f"trainer.{k}" for k in TRAINER_RUNTIME_KEYS))
# whole groups that say where metrics are shown (logger) or where files are found (paths: a data folder
# enters the identity through task.data_dir and the data files' contents)
RUNTIME_GROUPS = ("logger", "paths")
# may differ between a checkpoint and the run that resumes it (a completed run's results depend on them)
RESUMABLE_KEYS = ("trainer.eval_every", "trainer.save_every", "trainer.eval_batch_size")
# keys added after runs existed, with the value that reproduces those runs: a key at that value is left out, so an
# older run (whose identity lacks it) is the same run as a new one with the old behaviour
ADDED_KEYS = {"trainer.group_by_length": False, "schedule.keep_layers": "spread",
              # retrieval (fpt/config.py RetrieverConfig): at their defaults in every task of another kind
              "task.hard_negatives": 0, "task.negatives": "qrels", "task.shared_files": [],
              **{f"task.retriever.{k}": v for k, v in dataclasses.asdict(RetrieverConfig()).items()}}
HASH_LIMIT = 1 << 30  # bytes; larger data files are identified by path, size and mtime


def file_identity(path: Path) -> str:
    path = Path(path).resolve()
    if not path.is_file():
        return f"missing: {path}"
    st = path.stat()
    if st.st_size > HASH_LIMIT:
        return f"{path} size={st.st_size} mtime_ns={st.st_mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()} size={st.st_size}"


def data_identity(task) -> dict[str, str]:
    """{"data.<split>": identity} for every split the trainer reads (train, eval, task.test_splits)."""
    splits = ["train", "eval", *task.test_splits]
    if not task.data_dir:  # a hub dataset: its id and split names (already in the config, kept for clarity)
        hub = "/".join(task.hub or [])
        return {f"data.{s}": f"hub:{hub}[{task.hub_splits.get(s, s)}]" for s in splits}
    folder = resolve_data_dir(task.data_dir)
    return {**{f"data.{s}": file_identity(folder / task.files[s]) if s in task.files else "no file"
               for s in splits},
            **{f"data.{name}": file_identity(folder / name) for name in task.get("shared_files") or []}}


def run_identity(cfg) -> dict:
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    for key in RUNTIME_KEYS:
        flat.pop(key, None)
    for key, old in ADDED_KEYS.items():
        if key in flat and flat[key] == old:
            del flat[key]
    for key in [k for k in flat if k.split(".", 1)[0] in RUNTIME_GROUPS]:
        del flat[key]
    flat.update(data_identity(cfg.task))
    return flat


def fingerprint(identity: dict, resume: bool = False) -> str:
    kept = {k: v for k, v in identity.items() if not (resume and k in RESUMABLE_KEYS)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_fingerprint(cfg) -> str:
    return fingerprint(run_identity(cfg))


def differences(old: dict, new: dict, resume: bool = False) -> list[str]:
    """"key: old -> new" for every key whose value differs (RESUMABLE_KEYS left out when resume)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if resume and key in RESUMABLE_KEYS:
            continue
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            out.append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
