"""Console scripts (pyproject.toml [project.scripts]): `fpt-train` is `python train.py`, from any directory.

    fpt-train task=rte model=roberta-large prompt=deep     # the same overrides as train.py
    fpt-train --cfg job                                    # print the composed config
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402

from . import CONF_DIR  # noqa: E402
from .config import register_configs  # noqa: E402

register_configs()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def train(cfg) -> float:
    """Train a prompt; returns the best dev value of the task's selection metric (what a sweeper maximizes)."""
    hc = HydraConfig.get()
    search = hc.runtime.choices.get("hparams_search")
    if search not in (None, "null") and hc.mode != RunMode.MULTIRUN:
        command = "fpt-train" if os.path.basename(sys.argv[0]) == "fpt-train" else "python train.py"
        raise ValueError(f"hparams_search={search} is a sweep: add -m ({command} -m hparams_search={search} ...)")
    if hc.runtime.choices.get("hydra/launcher") == "local_gpus" and cfg.trainer.device == "auto":
        cfg.trainer.device = "free"  # a GPU of its own for each concurrent job (conf/hydra/launcher/local_gpus.yaml)
    from .validate import check_config
    check_config(cfg, hc.runtime.output_dir)  # config and data errors in seconds, before torch is imported
    from .run import main
    results = main(cfg, hc.runtime.output_dir)
    return results["best"].get(results["metric"], float("nan"))


def evaluate():
    """`fpt-eval`: score a trained run (fpt/evaluate_run.py's `main`, a Hydra entry point of its own)."""
    try:
        from .evaluate_run import main
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.evaluate_run":
            raise
        raise SystemExit("fpt-eval: this installation of fpt has no fpt/evaluate_run.py (the evaluation entry point); "
                         "update fpt") from err
    return main()
