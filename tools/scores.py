"""Activation scores of a (task, model) computed ahead of a run, with the trainer's own set-up.

    python -m tools.scores model=minilm task=sst2 'task.data_dir=${paths.data_root}/GLUE/SST-2'

Takes train.py's overrides, runs the start-up checks train.py runs, builds the run's data and model with
fpt.trainer.Trainer (the same rows, checks, number of labels, seed and weights as the run) and writes the
scores where the run looks for them (fpt.scores.score_path: `{output_root}/scores/{task}-{model}.safetensors` or
schedule.scores_path). A cache already holding this run's scores is kept. Optional: a run with an FFN-reducing
schedule computes (and caches) them itself.
"""
from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from fpt.config import compose


def main(argv: list[str] | None = None) -> Path:
    from fpt.scores import load_or_compute, score_path
    from fpt.trainer import Trainer
    from fpt.validate import check_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose(*(sys.argv[1:] if argv is None else argv))
    check_config(cfg, None, computes_scores=True)  # as train.py (the schedule.* score keys apply whatever the
    # stages): bad values and missing data files fail here, naming them
    with tempfile.TemporaryDirectory(prefix="fpt-scores-") as run_dir:  # the trainer writes nothing at set-up
        trainer = Trainer(cfg, Path(run_dir))
        scores, info = load_or_compute(cfg, trainer.model, trainer.eval_set)
    path = score_path(cfg)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in scores.items())
    how = f"in {info['seconds']:.1f}s" if info["computed"] else "(in the cache)"
    print(f"activation scores of {cfg.task.name} examples ({shapes}) {how} -> {path}")
    return path


if __name__ == "__main__":
    main()
