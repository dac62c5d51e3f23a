"""Train a prompt: `python train.py task=rte model=roberta-large prompt=deep` (see README).

The same as the `fpt-train` console script (fpt/cli.py), which runs from any directory once fpt is installed.
Returns the best dev value of the task's selection metric, which is what a sweeper (Optuna) maximizes.
A job that raises is recorded as failed in its results.json (fpt/runs/launch.py); in a multirun the other jobs
still run and Hydra reports the failure at the end.
"""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fpt.cli import train  # noqa: E402

if __name__ == "__main__":
    train()
