"""Which folder a run uses, and whether it may: a lock per folder, and no mixing of two configs' runs.

`choose(...)` runs on rank 0 before anything is written. It locks the job's own (Hydra) folder, reads what
is there (run_state.json, results.json, the checkpoint's identity) and decides: skip (a completed run of this
exact config), resume (a checkpoint of this config), start over (nothing reusable, or trainer.resume=false),
or refuse (the folder's checkpoint or results belong to another config; the error names the differing keys).
A fresh folder looks for an earlier run of the same config under output_root (a re-run lands in a new
`${now:}` folder) and locks that one too.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from .checkpoint import load_checkpoint
from .identity import differences, fingerprint

log = logging.getLogger("fpt")

LOCK_NAME = "run.lock"
# what a run leaves in its folder (besides config.yaml, Hydra's .hydra/ and log): removed when starting over
RUN_OUTPUTS = ("checkpoint", "results.json", "run_state.json", "run_link.json", "metrics.jsonl", "tensorboard",
               "trainable_best.safetensors", "trainable_final.safetensors")


class RunFolderError(RuntimeError):
    """This run may not use that folder (another config's run is there, or another process holds it)."""


# --------------------------------------------------------------------------- the lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """An exclusive lock on `folder/run.lock`, held while this process runs there.

    The lock is an flock(2) on the file, which the kernel drops when the process dies however it dies, so a
    lock left by a killed process is taken over by the next run. The file says who holds it (pid, host, start
    time) for the error message. On file systems without flock, an O_EXCL file is used instead, taken over
    when its process (on this host) is gone.
    """

    def __init__(self, folder: Path):
        self.folder, self.path, self.fd = Path(folder), Path(folder) / LOCK_NAME, None

    def holder(self) -> str:
        try:
            h = json.loads(self.path.read_text())
            return f"pid {h['pid']} on host {h['host']} (since {h['started']})"
        except (OSError, ValueError, KeyError):
            return "another process (its lock file names no holder)"

    def _refuse(self):
        raise RunFolderError(f"{self.folder} is in use by another run: {self.holder()}. Two processes writing one "
                             f"run folder would mix their outputs; wait for it to finish or stop it, or give this "
                             f"run its own folder (hydra.run.dir=... / hydra.sweep.dir=...)")

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._refuse()
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    return self._acquire_exclusive_file(me)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder released (and removed) it between our open and flock: try again
                os.close(fd)
                continue
            stale = os.read(fd, 4096).decode(errors="replace").strip()
            if stale:
                log.warning("%s: taking over the lock of a run that ended without releasing it: %s",
                            self.folder, stale)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            self.fd = fd
            return self

    def _acquire_exclusive_file(self, me: dict) -> "FolderLock":
        log.warning("%s: no flock on this file system; using a lock file checked by pid", self.folder)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    h = json.loads(self.path.read_text())
                    dead = h["host"] == socket.gethostname() and not _alive(int(h["pid"]))
                except (OSError, ValueError, KeyError):
                    dead = False
                if not dead:
                    self._refuse()
                log.warning("%s: taking over the stale lock of %s", self.folder, self.holder())
                self.path.unlink(missing_ok=True)
                continue
            os.write(fd, json.dumps(me).encode())
            self.fd = fd
            return self
        self._refuse()

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


# --------------------------------------------------------------------------- what a folder holds
def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def checkpoint_identity(run_dir: Path) -> dict | None:
    """The identity stored in the folder's checkpoint ({} for a checkpoint that records none), None if none."""
    path = Path(run_dir) / "checkpoint" / "last.pt"
    if not path.is_file():
        return None
    return load_checkpoint(path, mmap=True).get("identity") or {}


@dataclass
class Choice:
    run_dir: Path
    earlier: str | None = None     # status of the earlier run that is resumed or skipped; None for a new run
    start_over: bool = False       # remove what an earlier run left in run_dir before starting
    locks: list = field(default_factory=list)

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()
        self.locks.clear()


def _refuse(folder: Path, what: str, diffs: list[str]):
    listed = "; ".join(diffs[:12]) + (f"; ... ({len(diffs)} keys)" if len(diffs) > 12 else "")
    raise RunFolderError(
        f"{folder} holds {what} of another config; differing keys: {listed}. Nothing was written. Either give "
        f"this run a new folder (another hydra.run.dir or hydra.sweep.dir), or start over in this one with "
        f"trainer.resume=false (removes its checkpoint and results)")


def _check_folder(folder: Path, identity: dict, fp: str, rfp: str, skip: bool) -> str | None:
    """Decide on a used folder: "completed" (skip), "resume", "start_over", or raise RunFolderError."""
    state = read_json(folder / "run_state.json")
    stored = state.get("identity") or {}
    same_config = state.get("fingerprint") == fp
    results = read_json(folder / "results.json") if (folder / "results.json").exists() else None
    completed = results is not None and results.get("status") == "completed"
    if completed and same_config and skip:
        return "completed"
    ckpt = checkpoint_identity(folder)
    if ckpt is not None:
        if not ckpt:
            _refuse(folder, "a checkpoint (made by an older fpt, recording no config)", ["unknown"])
        if ckpt.get("fingerprint") != rfp:
            _refuse(folder, "a checkpoint", differences(ckpt.get("keys", {}), identity, resume=True)
                    or ["the data or config (the stored checkpoint records different values)"])
    if results is not None and not same_config:
        _refuse(folder, f"results ({results.get('status', 'unknown status')})",
                differences(stored, identity) if stored else ["unknown (no run_state.json fingerprint)"])
    link = read_json(folder / "run_link.json")
    if link and not ckpt and results is None:
        target = read_json(Path(link.get("run_dir", "")) / "run_state.json")
        if target.get("fingerprint") not in (None, fp):
            _refuse(folder, f"a link (run_link.json) to {link.get('run_dir')}, a run",
                    differences(target.get("identity") or {}, identity))
    return "resume" if ckpt is not None else "start_over"


def find_previous_run(output_root, fp: str, exclude: Path) -> tuple[Path, str] | None:
    """The newest run under output_root with this fingerprint: (run dir, its status)."""
    root = Path(output_root)
    if not root.is_dir():
        return None
    found = []
    for state_file in root.glob("**/run_state.json"):
        run_dir = state_file.parent
        if run_dir.resolve() == exclude.resolve():
            continue
        state = read_json(state_file)
        if state.get("fingerprint") == fp:
            found.append((state_file.stat().st_mtime, run_dir, state.get("status", "running")))
    if not found:
        return None
    _, run_dir, status = max(found, key=lambda t: t[0])
    return run_dir, status


def _used(folder: Path) -> bool:
    return any((folder / name).exists() for name in RUN_OUTPUTS)


def choose(hydra_dir: Path, identity: dict, output_root, resume: bool, skip_completed: bool) -> Choice:
    hydra_dir = Path(hydra_dir)
    fp, rfp = fingerprint(identity), fingerprint(identity, resume=True)
    own = Choice(hydra_dir, locks=[FolderLock(hydra_dir).acquire()])
    try:
        if _used(hydra_dir):
            if not resume:
                state = read_json(hydra_dir / "run_state.json")
                if skip_completed and state.get("fingerprint") == fp and state.get("status") == "completed":
                    own.earlier = "completed"
                    return own
                own.start_over = True
                return own
            verdict = _check_folder(hydra_dir, identity, fp, rfp, skip_completed)
            if verdict == "completed":
                own.earlier = "completed"
            elif verdict == "resume":
                own.earlier = read_json(hydra_dir / "run_state.json").get("status", "running")
            else:
                own.start_over = True
            return own
        if not (resume or skip_completed):
            return own
        previous = find_previous_run(output_root, fp, exclude=hydra_dir)
        if previous is None:
            return own
        run_dir, _ = previous
        lock = FolderLock(run_dir).acquire()  # the earlier run may be running right now: then refuse
        state = read_json(run_dir / "run_state.json")  # read again under the lock
        status = state.get("status")
        if status == "completed" and skip_completed and state.get("fingerprint") == fp:
            own.locks.append(lock)
            return Choice(run_dir, "completed", locks=own.locks)
        has_ckpt = (run_dir / "checkpoint" / "last.pt").is_file()
        # a run stopped on purpose (trainer.stop_at_step: a search's rung) stays its search's; only the same
        # folder continues it
        if status not in ("completed", "stopped") and resume and has_ckpt and (checkpoint_identity(run_dir) or {}).get(
                "fingerprint") == rfp:
            own.locks.append(lock)
            return Choice(run_dir, status, locks=own.locks)
        lock.release()
        return own
    except BaseException:
        own.release()
        raise


def clear_outputs(run_dir: Path) -> list[str]:
    """Remove what an earlier run left (start over); returns the names removed."""
    removed = []
    for name in RUN_OUTPUTS:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


# what rebuilding a run reads from its config.yaml; `seed` is written after the groups, so a file cut short
# anywhere in them lacks it too
RUN_KEYS = ("model", "task", "prompt", "schedule", "optim", "trainer", "seed")


def resolve_run_dir(run_dir) -> Path:
    """The run folder, following run_link.json (a job folder that continued or skipped an earlier run)."""
    run_dir = Path(run_dir)
    link = run_dir / "run_link.json"
    if not (run_dir / "config.yaml").is_file() and link.is_file():
        return Path(json.loads(link.read_text())["run_dir"])
    return run_dir


def run_config(run_dir: Path):
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"run={run_dir}: no config.yaml there; give the folder train.py wrote "
                                f"(it holds config.yaml, results.json, trainable_best.safetensors)")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not a readable run config ({type(err).__name__}: {err}); expected the "
                         f"config.yaml train.py wrote") from None
    missing = [key for key in RUN_KEYS if not isinstance(cfg, DictConfig) or key not in cfg]
    if missing:
        raise ValueError(f"{path}: the run's config lacks {', '.join(missing)} (cut short or edited?); expected the "
                         f"whole config.yaml train.py wrote (its keys: {', '.join(RUN_KEYS)}, ...)")
    return cfg
