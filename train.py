"""Train a prompt: `python train.py task=rte model=roberta-large prompt=deep` (see README).

Returns the best dev value of the task's selection metric, which is what a sweeper (Optuna) maximizes.
A job that raises is recorded as failed in its results.json (fpt/run.py); in a multirun the other jobs
still run and Hydra reports the failure at the end.
"""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402

from fpt.config import register_configs  # noqa: E402

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def train(cfg) -> float:
    hc = HydraConfig.get()
    search = hc.runtime.choices.get("hparams_search")
    if search not in (None, "null") and hc.mode != RunMode.MULTIRUN:
        raise ValueError(f"hparams_search={search} is a sweep: add -m (python train.py -m hparams_search={search} ...)")
    if hc.runtime.choices.get("hydra/launcher") == "local_gpus" and cfg.trainer.device == "auto":
        cfg.trainer.device = "free"  # a GPU of its own for each concurrent job (conf/hydra/launcher/local_gpus.yaml)
    from fpt.validate import check_config
    check_config(cfg, hc.runtime.output_dir)  # config and data errors in seconds, before torch is imported
    from fpt.run import main
    results = main(cfg, hc.runtime.output_dir)
    return results["best"].get(results["metric"], float("nan"))


if __name__ == "__main__":
    train()
