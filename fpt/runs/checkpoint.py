"""Atomic files and resumable checkpoints.

Every output is written to a temporary file in the same folder, flushed to disk and renamed over
the target, so a run killed mid-write leaves the previous complete file behind, never a torn one:
`atomic_write` is the one place that does it (JSON, text, safetensors, checkpoints all go through it).

Imports stay light (torch, numpy and safetensors are imported where used), so that the start-up checks
(fpt/validate.py) can write a failed run's results.json before torch is loaded.

Checkpoints and tensor files carry a sha256 that every reader checks, so a file damaged after it was written
(a broken copy or disk: same size, other bytes) is refused naming it, never used: a checkpoint ends with the
line `fpt-sha256:<sha256 of the bytes before it>` (after torch's zip archive, which torch.load ignores); a
safetensors file holds `sha256` in its header, over its tensors (name, dtype, shape, bytes) and the header's
other metadata. Files written before fpt stored them are read unverified, with a warning.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from pathlib import Path

log = logging.getLogger("fpt")
DIGEST_KEY = "sha256"  # a safetensors header's digest of the rest of the file's content
TRAILER = b"\nfpt-sha256:"  # a checkpoint's last line: TRAILER + 64 hex digits + b"\n"
TRAILER_LEN = len(TRAILER) + 65
MARK_KEY = "checksum"  # in every checkpoint's state ("sha256 trailer"): the file must end with a TRAILER line
CHUNK = 1 << 24


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


class CheckpointError(RuntimeError):
    """A checkpoint or tensor file that cannot be read or is damaged; the message names the file and how to recover."""


def tensors_digest(tensors: dict, metadata: dict[str, str]) -> str:
    """sha256 of what a safetensors file means: its metadata and each tensor's name, dtype, shape and bytes."""
    import torch
    h = hashlib.sha256(json.dumps(sorted(metadata.items())).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_tensors(path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors as safetensors; `metadata` (str -> str) goes into the header (fpt/runs/trained.py),
    with their digest (`sha256`, checked by read_tensors)."""
    from safetensors.torch import save
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = dict(metadata or {})
    metadata[DIGEST_KEY] = tensors_digest(flat, metadata)
    atomic_write(path, lambda f: f.write(_sorted_header(save(flat, metadata=metadata))))


def _sorted_header(data: bytes) -> bytes:
    """The safetensors bytes with their header's keys sorted: safetensors writes the metadata in hash-map order,
    another each time, and the same tensors and metadata should be the same bytes (fpt/scores.py's cache)."""
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + size]), sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    if len(header) > size:  # never: the same JSON, compact as safetensors writes it
        return data
    return data[:8] + header + b" " * (size - len(header)) + data[8 + size:]


def read_tensors(path, what: str = "tensor file") -> tuple[dict, dict[str, str]]:
    """(tensors, header metadata without the digest) of a safetensors file, checked against its `sha256`;
    CheckpointError naming the file when it cannot be read or does not match. A file without a digest (an
    older fpt, another tool) is read unverified, with a warning."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as err:
        raise CheckpointError(f"cannot read the {what} {path} (SafetensorError: {err}): it is damaged or "
                              f"truncated") from err
    stored = metadata.pop(DIGEST_KEY, None)
    if stored is None:
        log.warning("%s has no sha256 (written by an older fpt or another tool): read unverified", path)
    elif stored != tensors_digest(tensors, metadata):
        raise CheckpointError(f"the {what} {path} is damaged: its content does not match the sha256 written with "
                              f"it")
    return tensors, metadata


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


class _Digesting:
    """The file torch.save writes to: hashes what passes and keeps the OS error of a failed write, which torch's
    zip writer replaces by `RuntimeError: [enforce fail at inline_container.cc...]`."""

    def __init__(self, f):
        self.f, self.sha, self.error = f, hashlib.sha256(), None

    def write(self, data) -> int:
        try:
            written = self.f.write(data)
        except OSError as err:
            self.error = err
            raise
        self.sha.update(data)
        return written

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(path, state: dict, before_rename=None) -> None:
    """Write `path` atomically, ending with its sha256 (TRAILER); the checkpoint it replaces is kept as
    `previous.pt` beside it (a hard link: no copy), so a damaged last.pt can be replaced by the one before it.
    A failed write is an OSError naming `path` and the OS error; the files already there stay as they were."""
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

    def write(f):
        import torch
        out = _Digesting(f)
        try:
            torch.save({**state, MARK_KEY: "sha256 trailer"}, out)
        except RuntimeError as err:
            if out.error is not None:
                raise out.error from err
            raise
        f.write(TRAILER + out.sha.hexdigest().encode() + b"\n")

    atomic_write(path, write, keep_previous)


def _trailer(path: Path) -> str | None:
    """The sha256 a checkpoint ends with (None: its last line is no TRAILER line)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < TRAILER_LEN:
            return None
        f.seek(size - TRAILER_LEN)
        tail = f.read()
    digest = tail[len(TRAILER):-1]
    ok = tail.startswith(TRAILER) and tail.endswith(b"\n") and all(c in b"0123456789abcdef" for c in digest)
    return digest.decode() if ok else None


def _damage(path: Path, stored: str | None) -> str | None:
    """Why the checkpoint fails the sha256 `stored` in its last line (None: it matches, or there is none)."""
    if stored is None:
        return None
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        left = f.seek(0, os.SEEK_END) - TRAILER_LEN
        f.seek(0)
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            sha.update(chunk)
            left -= len(chunk)
    actual = sha.hexdigest()
    return None if actual == stored else f"its sha256 starts {actual[:16]}, the one written with it {stored[:16]}"


def _way_back(path: Path) -> str:
    previous = path.with_name("previous.pt")
    try:
        usable = previous != path and previous.is_file() and _damage(previous, _trailer(previous)) is None
    except OSError:
        usable = False
    back = f"resume from the checkpoint before it with `mv {previous} {path}`, or " if usable else ""
    return f"To recover: {back}start the run over with trainer.resume=false (or delete {path.parent})"


_verified: dict[Path, tuple] = {}  # checkpoint -> (inode, size, mtime) when last checked: the run-folder check
                                   # and the resume read it in one process, hashed once


def load_checkpoint(path, mmap: bool = False) -> dict:
    """The state save_checkpoint wrote, after checking its sha256; CheckpointError naming the file and the way
    back (previous.pt) when it is damaged, truncated or unreadable. A checkpoint of an fpt that wrote no sha256
    is read unverified, with a warning."""
    import torch
    path = Path(path)
    try:
        st = path.stat()
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        stored = _trailer(path)
        damage = None if _verified.get(path) == seen else _damage(path, stored)
    except OSError as err:
        raise CheckpointError(f"cannot read the checkpoint {path} (OSError: {err}). {_way_back(path)}") from err
    if damage is not None:
        raise CheckpointError(f"the checkpoint {path} is damaged: {damage}. {_way_back(path)}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as err:
        raise CheckpointError(
            f"cannot read the checkpoint {path} ({type(err).__name__}: {err}): it is damaged or truncated. "
            f"{_way_back(path)}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an fpt checkpoint (it holds a {type(state).__name__}). "
                              f"{_way_back(path)}")
    marked = state.pop(MARK_KEY, None) is not None
    if stored is None and marked:
        raise CheckpointError(f"the checkpoint {path} is damaged: its last line, the sha256 written with it, is "
                              f"missing or garbled. {_way_back(path)}")
    if stored is None and _verified.get(path) != seen:
        log.warning("%s has no sha256 (written by an older fpt): read unverified", path)
    _verified[path] = seen
    return state
