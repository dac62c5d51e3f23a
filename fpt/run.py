"""What train.py does with a composed config: pick the run folder, resume or skip, train, write results."""
from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from . import distributed as dist
from .checkpoint import config_fingerprint, find_previous_run, write_json, write_text
from .validate import check_config

log = logging.getLogger("fpt")


def run_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def choose_run_dir(cfg, hydra_dir: Path, fingerprint: str) -> tuple[Path, str | None]:
    """Hydra's folder, or an earlier run of the same config: (folder, its status if earlier)."""
    own = run_state(hydra_dir)
    if own.get("fingerprint") == fingerprint and own.get("status") == "completed" and cfg.trainer.skip_completed:
        return hydra_dir, "completed"  # the same job again in its own folder (a fixed sweep dir, a requeue)
    if (hydra_dir / "checkpoint" / "last.pt").exists() or (hydra_dir / "results.json").exists():
        return hydra_dir, None
    if not (cfg.trainer.resume or cfg.trainer.skip_completed):
        return hydra_dir, None
    previous = find_previous_run(cfg.output_root, fingerprint, exclude=hydra_dir)
    if previous is None:
        return hydra_dir, None
    run_dir, status = previous
    if status == "completed" and cfg.trainer.skip_completed:
        return run_dir, status
    if status != "completed" and cfg.trainer.resume and (run_dir / "checkpoint" / "last.pt").exists():
        return run_dir, status
    return hydra_dir, None


def pick_gpu(cfg) -> None:
    """trainer.device=free: claim a GPU no other fpt job on this machine holds (hydra/launcher=local_gpus)."""
    if cfg.trainer.device != "free":
        return
    if dist.is_distributed():
        raise ValueError("trainer.device=free gives a single-process job its own GPU; DDP ranks use the GPU of "
                         "their LOCAL_RANK: use trainer.device=auto")
    import torch
    index = dist.claim_gpu()
    torch.cuda.set_device(index)
    cfg.trainer.device = f"cuda:{index}"
    log.info("claimed GPU %d", index)


def main(cfg, hydra_dir: Path) -> dict:
    dist.init()
    hydra_dir = Path(hydra_dir)
    check_config(cfg, hydra_dir)  # bad values, device, model positions, data files: before any folder is written
    fingerprint = config_fingerprint(cfg)
    run_dir, earlier = choose_run_dir(cfg, hydra_dir, fingerprint)
    run_dir, earlier = dist.broadcast_object((str(run_dir), earlier))  # every rank follows rank 0
    run_dir = Path(run_dir)
    main_rank = dist.rank() == 0
    if main_rank and run_dir.resolve() != hydra_dir.resolve():
        # this job's own folder points at the run it continued or skipped (fpt.collect follows it)
        write_json(hydra_dir / "run_link.json", {"run_dir": str(run_dir.resolve()), "earlier_status": earlier})
    if earlier == "completed":
        log.info("skipping: this exact config already completed in %s", run_dir)
        return json.loads((run_dir / "results.json").read_text())
    if earlier is not None:
        log.info("resuming the unfinished run in %s", run_dir)
    cfg.run_dir = str(run_dir)
    from .trainer import Trainer
    trainer = None
    try:
        pick_gpu(cfg)
        if main_rank:
            write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            write_json(run_dir / "run_state.json", {"fingerprint": fingerprint, "status": "running"})
        trainer = Trainer(cfg, run_dir)
        results = trainer.run()
    except Exception as err:
        if main_rank:
            error = f"{type(err).__name__}: {err}"
            partial = trainer.results(None, "failed", error) if trainer else {
                "task": cfg.task.name, "model": cfg.model.name, "prompt": cfg.prompt.type,
                "schedule": cfg.schedule.name, "seed": cfg.seed, "steps": 0, "metric": cfg.task.metric,
                "best": {}, "final": {}, "status": "failed", "error": error, "prompt_length": cfg.prompt.length,
                "lr": cfg.optim.lr, "batch_size": cfg.trainer.batch_size}
            partial["traceback"] = traceback.format_exc()
            write_json(run_dir / "results.json", partial)
            write_json(run_dir / "run_state.json", {"fingerprint": fingerprint, "status": "failed"})
        raise
    if main_rank:
        write_json(run_dir / "results.json", results)
        write_json(run_dir / "run_state.json", {"fingerprint": fingerprint, "status": "completed"})
        best = results["best"].get(results["metric"], float("nan"))
        log.info("done: %s best %s=%.4f at step %s, final %s, %d trainable params, %.3g train FLOPs, %.1fs -> %s",
                 results["task"], results["metric"], best, results["best_step"], results["final"],
                 results["trainable_params"], results["train_flops"], results["train_seconds"], run_dir)
    return results
