"""What train.py does with a composed config: pick the run folder, resume or skip, train, write results."""
from __future__ import annotations

import logging
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from . import distributed as dist
from .checkpoint import config_fingerprint, find_previous_run, write_json, write_text

log = logging.getLogger("fpt")


def choose_run_dir(cfg, hydra_dir: Path, fingerprint: str) -> tuple[Path, str | None]:
    """Hydra's folder, or an earlier run of the same config: (folder, its status if earlier)."""
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


def main(cfg, hydra_dir: Path) -> dict:
    dist.init()
    fingerprint = config_fingerprint(cfg)
    run_dir, earlier = choose_run_dir(cfg, Path(hydra_dir), fingerprint)
    run_dir = Path(dist.broadcast_object(str(run_dir)))  # every rank writes under rank 0's folder
    if earlier == "completed":
        log.info("skipping: this exact config already completed in %s", run_dir)
        import json
        return json.loads((run_dir / "results.json").read_text())
    if earlier is not None:
        log.info("resuming the unfinished run in %s", run_dir)
    cfg.run_dir = str(run_dir)
    main_rank = dist.rank() == 0
    if main_rank:
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_json(run_dir / "run_state.json", {"fingerprint": fingerprint, "status": "running"})
    from .trainer import Trainer
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir)
        results = trainer.run()
    except Exception as err:
        if main_rank:
            error = f"{type(err).__name__}: {err}"
            partial = trainer.results(None, "failed", error) if trainer else {
                "task": cfg.task.name, "model": cfg.model.name, "prompt": cfg.prompt.type,
                "schedule": cfg.schedule.name, "seed": cfg.seed, "status": "failed", "error": error}
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
