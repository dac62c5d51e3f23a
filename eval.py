"""Score a trained prompt: `python eval.py run=RUN_DIR [split=eval|test|...] [data=FILE] [checkpoint=best|final]`.

The same as the `fpt-eval` console script (fpt/cli.py), which runs from any directory once fpt is installed.
Rebuilds the run's model from its config.yaml, loads trainable_<checkpoint>.safetensors (its header must match
the model) and writes metrics.json and predictions.jsonl into this job's folder (hydra.run.dir). Returns the
task's selection metric (NaN for a file without gold labels). See docs/after-training.md.
`task.data_dir=OTHER` scores the run on another folder of its task's format (out of domain); without run=,
`model=... task=...` scores the untrained model (zero-shot, fpt/zero_shot.py; docs/retrieval.md).
"""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fpt.cli import evaluate  # noqa: E402

if __name__ == "__main__":
    evaluate()
