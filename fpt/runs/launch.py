"""What train.py does with a composed config: pick the run folder, resume or skip, train, write results.

run_state.json's status: running (or killed), completed, failed (an exception; results.json has it) or
interrupted (SIGINT/SIGTERM: a checkpoint was written at a step boundary; the same command resumes).
"""
from __future__ import annotations

import json
import logging
import shutil
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from .. import distributed as dist
from .checkpoint import write_json, write_text
from .identity import fingerprint, run_identity
from .results import check_start, run_results
from .folder import RunFolderError, choose, clear_outputs, read_json

log = logging.getLogger("fpt")


def pick_gpu(cfg) -> None:
    """trainer.device=free: claim a GPU no other fpt job on this machine holds (hydra/launcher=local_gpus)."""
    if cfg.trainer.device != "free":
        return
    if dist.is_distributed():
        raise ValueError("trainer.device=free gives a single-process job its own GPU; DDP ranks use the GPU of "
                         "their LOCAL_RANK: use trainer.device=auto")
    import torch  # lazy: only trainer.device=free needs it here
    index = dist.claim_gpu()
    torch.cuda.set_device(index)
    cfg.trainer.device = f"cuda:{index}"
    log.info("claimed GPU %d", index)


HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")


def _hydra_files(hydra_dir: Path) -> dict:
    """Hydra's record of this job (.hydra/), kept in run_state.json: Hydra rewrites it before any job code
    runs, so a refused job puts back the record of the run the folder holds."""
    folder = hydra_dir / ".hydra"
    return {name: (folder / name).read_text() for name in HYDRA_FILES if (folder / name).is_file()}


def _restore_hydra_files(hydra_dir: Path) -> None:
    saved = read_json(hydra_dir / "run_state.json").get("hydra") or {}
    for name, text in saved.items():
        if name in HYDRA_FILES and (hydra_dir / ".hydra").is_dir():
            write_text(hydra_dir / ".hydra" / name, text)


def _prepare(cfg, hydra_dir: Path):
    """Rank 0: (choice, identity, error message), never raising, so that every rank can follow rank 0."""
    choice = None
    try:
        identity = run_identity(cfg)
        choice = choose(hydra_dir, identity, cfg.output_root, cfg.trainer.resume, cfg.trainer.skip_completed)
        if choice.start_over:  # before the other ranks look into the folder
            removed = clear_outputs(choice.run_dir)
            if removed:
                log.info("starting over in %s (removed the earlier run's %s)", choice.run_dir, ", ".join(removed))
        return choice, identity, None
    except RunFolderError as err:
        if (hydra_dir / "run_state.json").is_file():
            _restore_hydra_files(hydra_dir)
        return None, None, str(err)
    except Exception as err:  # e.g. an unreadable checkpoint (the error names it), a folder that cannot be written
        if choice is not None:
            choice.release()
        return None, None, f"{type(err).__name__}: {err}"


def main(cfg, hydra_dir: Path) -> dict:
    dist.init()
    hydra_dir = Path(hydra_dir)
    check_start(cfg, hydra_dir)  # bad values, device, model positions, data files: before any folder is written
    hydra_files = _hydra_files(hydra_dir) if dist.rank() == 0 else {}  # as Hydra wrote them for this job
    choice, identity, error = _prepare(cfg, hydra_dir) if dist.rank() == 0 else (None, None, None)
    decided = (str(choice.run_dir), choice.earlier) if choice else None
    decided, error = dist.broadcast_object((decided, error))  # every rank follows rank 0
    if error:
        raise RunFolderError(error)
    try:
        return _run(cfg, hydra_dir, Path(decided[0]), decided[1], identity, hydra_files)
    finally:
        if choice is not None:
            choice.release()


def _run(cfg, hydra_dir: Path, run_dir: Path, earlier: str | None, identity: dict | None, hydra_files: dict) -> dict:
    main_rank = dist.rank() == 0
    fp = fingerprint(identity) if identity else None
    if main_rank and run_dir.resolve() != hydra_dir.resolve():
        # this job's own folder points at the run it continued or skipped (fpt.collect follows it)
        write_json(hydra_dir / "run_link.json", {"run_dir": str(run_dir.resolve()), "earlier_status": earlier})
    if earlier == "completed":
        log.info("skipping: this exact config already completed in %s", run_dir)
        return json.loads((run_dir / "results.json").read_text())
    if earlier is not None:
        log.info("resuming the %s run in %s", "unfinished" if earlier == "running" else earlier, run_dir)
    cfg.run_dir = str(run_dir)
    from ..trainer import Interrupted, Trainer  # lazy: torch and transformers after the run folder checks

    def state(status: str) -> dict:
        return {"fingerprint": fp, "status": status, "identity": identity, "hydra": hydra_files}

    trainer = None
    try:
        pick_gpu(cfg)
        if main_rank:
            write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            write_json(run_dir / "run_state.json", state("running"))
        trainer = Trainer(cfg, run_dir, identity=identity)
        results = trainer.run()
    except Interrupted as stop:
        if main_rank:
            write_json(run_dir / "run_state.json", state("interrupted"))
        log.warning("interrupted by %s at step %d: checkpoint written in %s; run the same command again to "
                    "resume", stop.signal_name, stop.step, run_dir)
        raise SystemExit(128 + stop.signum) from None
    except Exception as err:
        if main_rank:
            error = f"{type(err).__name__}: {err}"
            partial = trainer.results(None, "failed", error) if trainer else run_results(cfg, "failed", error=error)
            partial["traceback"] = traceback.format_exc()
            write_json(run_dir / "results.json", partial)
            write_json(run_dir / "run_state.json", state("failed"))
        raise
    if main_rank:
        write_json(run_dir / "results.json", results)
        write_json(run_dir / "run_state.json", state(results["status"]))  # completed, or stopped (stop_at_step)
        if results["status"] == "completed" and not cfg.trainer.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)  # results and safetensors say it all now
        best = results["best"].get(results["metric"], float("nan"))
        log.info("done: %s best %s=%.4f at step %s, final %s, %d trainable params, %.3g train FLOPs, %.1fs -> %s",
                 results["task"], results["metric"], best, results["best_step"], results["final"],
                 results["trainable_params"], results["train_flops"], results["train_seconds"], run_dir)
    return results
