"""Activation scores of a (task, model) computed ahead of a run, with the trainer's own set-up.

    python -m tools.scores model=minilm task=sst2 'task.data_dir=${paths.data_root}/GLUE/SST-2'

Takes train.py's overrides, runs the start-up checks train.py runs, builds the run's data and model with
fpt.build.build, as its Trainer does (the same rows, checks, number of labels, seed and weights as the run) and
writes the scores where the run looks for them (fpt.scores.score_path: `{output_root}/scores/{task}-{model}.safetensors`
or schedule.scores_path). A cache already holding this run's scores is kept. Optional: a run with an FFN-reducing
schedule computes (and caches) them itself.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from fpt.build import build
from fpt.config import compose
from fpt.scores import load_or_compute, score_path
from fpt.validate import check_config


def main(argv: list[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose(*(sys.argv[1:] if argv is None else argv))
    check_config(cfg, None, computes_scores=True)  # as train.py (the schedule.* score keys apply whatever the
    # stages): bad values and missing data files fail here, naming them
    parts = build(cfg, cfg.trainer.device)  # the run's set-up: its seeds, data and model
    scores, info = load_or_compute(cfg, parts.model, parts.eval_set)
    path = score_path(cfg)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in scores.items())
    how = f"in {info['seconds']:.1f}s" if info["computed"] else "(in the cache)"
    print(f"activation scores of {cfg.task.name} examples ({shapes}) {how} -> {path}")
    return path


if __name__ == "__main__":
    main()
