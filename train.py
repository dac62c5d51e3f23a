"""Train a prompt: `python train.py task=rte model=roberta-large prompt=deep` (see README)."""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402

from fpt.config import register_configs  # noqa: E402

register_configs()


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def train(cfg) -> float:
    from fpt.run import main

    results = main(cfg, HydraConfig.get().runtime.output_dir)
    return results["best"].get(results["metric"], float("nan"))


if __name__ == "__main__":
    train()
