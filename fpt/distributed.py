"""Data parallelism in a few functions; single-process runs pass straight through.

Where the ranks come from:
- `torchrun --nproc_per_node=N train.py ...` sets WORLD_SIZE/RANK/LOCAL_RANK/MASTER_ADDR/MASTER_PORT;
- a submitit job with several tasks (`hydra/launcher=slurm`, or `submitit_local`) gets them from submitit's
  job environment (the first host of the job is the master, the port is derived from the job id);
- a plain `srun python train.py ...` step gets them from SLURM_PROCID/SLURM_LOCALID/SLURM_STEP_NUM_TASKS.

Each rank takes a contiguous slice of every global batch, so the global batch is trainer.batch_size
whatever the number of processes. `SameRunDir` makes every rank use rank 0's Hydra output folder, and
`claim_gpu` gives concurrent sweep jobs on one machine a GPU each.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import re
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf, open_dict


class _Lazy:
    """A module imported on first use: Hydra loads this file for its callback at every launch, and the start-up
    checks (fpt/validate.py) answer before torch is imported."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)


torch = _Lazy("torch")
tdist = _Lazy("torch.distributed")


# --------------------------------------------------------------------------- process group
def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: "gpu[07-09,12],cpu1" -> "gpu07"."""
    m = re.match(r"([^,\[]+)(?:\[([^\],-]+))?", nodelist)
    if not m:
        raise ValueError(f"SLURM_JOB_NODELIST={nodelist!r}: cannot read the first host")
    return m.group(1) + (m.group(2) or "")


def _set_env_from_launcher() -> None:
    """Fill in torch's env:// variables when a launcher other than torchrun started the ranks."""
    if "WORLD_SIZE" in os.environ:
        return
    found: dict[str, object] = {}
    if os.environ.get("SUBMITIT_EXECUTOR"):
        from submitit import JobEnvironment
        job = JobEnvironment()
        if job.num_tasks > 1:
            local = os.environ["SUBMITIT_EXECUTOR"] == "local"
            found = {"RANK": job.global_rank, "WORLD_SIZE": job.num_tasks, "LOCAL_RANK": job.local_rank,
                     "MASTER_ADDR": "127.0.0.1" if local else job.hostnames[0],
                     "MASTER_PORT": 20000 + int(job.raw_job_id) % 40000}
    elif int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1:  # set by srun only, not in the batch script
        found = {"RANK": os.environ["SLURM_PROCID"], "WORLD_SIZE": os.environ["SLURM_STEP_NUM_TASKS"],
                 "LOCAL_RANK": os.environ.get("SLURM_LOCALID", "0"),
                 "MASTER_ADDR": first_host(os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")),
                 "MASTER_PORT": 20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 40000}
    for key, value in found.items():
        os.environ.setdefault(key, str(value))


def is_distributed() -> bool:
    _set_env_from_launcher()
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    if is_distributed() and not tdist.is_initialized():
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
    return int(os.environ.get("LOCAL_RANK", "0"))


def _device() -> torch.device:
    """Where collective tensors live: NCCL only reduces CUDA tensors."""
    if tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --------------------------------------------------------------------------- collectives
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


def total(value: float) -> float:
    """The sum of `value` over ranks."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_device())
    tdist.all_reduce(t)
    return t.item()


def mean(value: float) -> float:
    return total(value) / world_size()


def broadcast_object(obj):
    if world_size() == 1:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def no_sync(model):
    return model.no_sync() if hasattr(model, "no_sync") else nullcontext()


# --------------------------------------------------------------------------- one run folder for all ranks
class SameRunDir(Callback):
    """Hydra callback (conf/config.yaml): every rank of a DDP job uses rank 0's `${now:}` folder.

    Each rank composes its own config, so `${now:...}` can differ by a second between ranks; here rank 0's
    resolved folder is broadcast before Hydra creates it. Ranks other than 0 write no `.hydra/` and no log file.
    """

    def _agree(self, config, key: str) -> None:
        if not is_distributed():
            return
        init()
        with open_dict(config):
            OmegaConf.update(config, key, broadcast_object(str(OmegaConf.select(config, key))))
            if rank() != 0:
                config.hydra.output_subdir = None
                if OmegaConf.select(config, "hydra.job_logging.root.handlers") is not None:
                    config.hydra.job_logging.root.handlers = [
                        h for h in config.hydra.job_logging.root.handlers if h != "file"]

    def on_run_start(self, config, **kwargs) -> None:
        self._agree(config, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._agree(config, "hydra.sweep.dir")


# --------------------------------------------------------------------------- a GPU per sweep job
_claimed: dict[str, object] = {}  # lock files this process holds, kept open for its lifetime


def claim_gpu(n_gpus: int | None = None, lock_dir: str | None = None, poll_seconds: float = 5.0) -> int:
    """Index of a GPU no other fpt process on this machine holds (waits until one is free).

    The claim is an exclusive lock on a file named after the GPU, held until this process exits, so
    concurrent jobs (e.g. joblib workers of `hydra/launcher=local_gpus`) each get their own GPU. A process
    that already holds one keeps it (a worker runs its jobs one after another).
    """
    if _claimed:
        return int(next(iter(_claimed)))
    if n_gpus is None:
        n_gpus = torch.cuda.device_count()
    if n_gpus < 1:
        raise RuntimeError("trainer.device=free (the default under hydra/launcher=local_gpus) claims a free GPU, but "
                           "no CUDA GPU is visible; set trainer.device=cpu to run the jobs on CPU")
    folder = Path(lock_dir or os.environ.get("FPT_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / "fpt-gpu-locks")
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(n_gpus):
            f = open(folder / f"{_gpu_name(index)}.lock", "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            _claimed[str(index)] = f
            return index
        time.sleep(poll_seconds)


def _gpu_name(index: int) -> str:
    """A name that is the same whatever CUDA_VISIBLE_DEVICES renumbering a process sees."""
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        if uuid is not None:
            return f"gpu-{uuid}"
    return f"gpu{index}"
