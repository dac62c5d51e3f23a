"""Atomic files and resumable checkpoints.

Every output is written to a temporary file in the same folder, flushed to disk and renamed over
the target, so a run killed mid-write leaves the previous complete file behind, never a torn one.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file


def file_mode() -> int:
    """The mode open() would give a new file (0o666 minus the umask): mkstemp's 0600 would hide results
    from the rest of a research group sharing a file system."""
    try:  # Linux: read it without changing it (os.umask sets it process-wide, a race with other threads)
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o077)
        os.umask(umask)
    return 0o666 & ~umask


def _atomic(path: Path, write, before_rename=None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OSError(err.errno, f"could not write {path}: {err.strerror}") from err
        raise


def write_json(path, obj) -> None:
    _atomic(path, lambda f: f.write((json.dumps(obj, indent=2, default=float) + "\n").encode()))


def write_text(path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def save_tensors(path, tensors: dict[str, torch.Tensor]) -> None:
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    tmp_dir = Path(path).parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=f".{Path(path).name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(flat, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, state: dict, before_rename=None) -> None:
    _atomic(path, lambda f: torch.save(state, f), before_rename)


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


# --------------------------------------------------------------------------- finding a run to resume
# trainer.* keys that change how a run is executed or displayed, not its results (fpt.collect ignores them too)
RUNTIME_KEYS = ("resume", "skip_completed", "progress", "log_every", "num_workers", "threads", "device")


def config_fingerprint(cfg) -> str:
    """A hash of everything that defines a run (not where it is written or how it is displayed)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("run_dir", None)
    plain.pop("logger", None)  # where metrics are shown, not what the run computes
    trainer = plain.get("trainer", {})
    for key in RUNTIME_KEYS:
        trainer.pop(key, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def find_previous_run(output_root, fingerprint: str, exclude: Path) -> tuple[Path, str] | None:
    """The newest run under output_root with this fingerprint: (run dir, its status)."""
    root = Path(output_root)
    if not root.is_dir():
        return None
    found = []
    for state_file in root.glob("**/run_state.json"):
        run_dir = state_file.parent
        if run_dir.resolve() == exclude.resolve():
            continue
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if state.get("fingerprint") == fingerprint:
            found.append((state_file.stat().st_mtime, run_dir, state.get("status", "running")))
    if not found:
        return None
    _, run_dir, status = max(found, key=lambda t: t[0])
    return run_dir, status
