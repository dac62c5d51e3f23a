"""Atomic files and resumable checkpoints.

Every output is written to a temporary file in the same folder, flushed to disk and renamed over
the target, so a run killed mid-write leaves the previous complete file behind, never a torn one:
`atomic_write` is the one place that does it (JSON, text, safetensors, checkpoints all go through it).
Imports stay light (torch, numpy and safetensors are imported where used), so that the start-up checks
(fpt/validate.py) can write a failed run's results.json before torch is loaded.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

from .identity import TRAINER_RUNTIME_KEYS as RUNTIME_KEYS  # noqa: F401  (fpt.collect ignores these trainer keys)


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


def atomic_write(path, write, before_rename=None) -> None:
    """Write `path` atomically: `write(f)` fills a temporary binary file beside it, which is flushed, given the
    umask's mode, synced and renamed over `path`. `before_rename()` runs just before the rename."""
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
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, default=float) + "\n").encode()))


def write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def save_tensors(path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors as safetensors; `metadata` (str -> str) goes into the header (fpt/trained.py)."""
    from safetensors.torch import save
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda f: f.write(save(flat, metadata=metadata)))


def rng_state() -> dict:
    import numpy as np
    import torch
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file and how to recover."""


def save_checkpoint(path, state: dict, before_rename=None) -> None:
    """Write `path` atomically; the checkpoint it replaces is kept as `previous.pt` beside it (a hard link:
    no copy), so a damaged last.pt can be replaced by the one before it."""
    path = Path(path)

    def keep_previous():
        if before_rename is not None:
            before_rename()
        if path.is_file():
            previous, tmp = path.with_name("previous.pt"), path.with_name(".previous.pt.tmp")
            try:
                if tmp.exists():
                    tmp.unlink()
                os.link(path, tmp)
                os.replace(tmp, previous)
            except OSError:  # a file system without hard links: no previous checkpoint is kept
                pass

    import torch
    atomic_write(path, lambda f: torch.save(state, f), keep_previous)


def load_checkpoint(path, mmap: bool = False) -> dict:
    import torch
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as err:
        previous = path.with_name("previous.pt")
        way_back = (f"resume from the checkpoint before it with `mv {previous} {path}`, or "
                    if previous.is_file() and previous != path else "")
        raise CheckpointError(
            f"cannot read the checkpoint {path} ({type(err).__name__}: {err}): it is damaged or truncated. "
            f"To recover: {way_back}start the run over with trainer.resume=false (or delete {path.parent})"
        ) from err
