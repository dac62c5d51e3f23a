"""Score a trained prompt: `python eval.py run=RUN_DIR [split=eval|test|...] [data=FILE] [checkpoint=best|final]`.

Rebuilds the run's model from its config.yaml, loads trainable_<checkpoint>.safetensors (its header must match
the model) and writes metrics.json and predictions.jsonl into this job's folder (hydra.run.dir). Returns the
task's selection metric (NaN for a file without gold labels). See docs/after-training.md.
"""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def evaluate(cfg) -> float:
    from fpt.evaluate_run import evaluate_run
    summary = evaluate_run(cfg.run, HydraConfig.get().runtime.output_dir, split=cfg.split, data=cfg.data,
                           checkpoint=cfg.checkpoint, device=cfg.trainer.device, data_format=cfg.data_format,
                           batch_size=cfg.trainer.eval_batch_size, bf16=cfg.trainer.bf16)
    return summary["metrics"].get(summary["metric"], float("nan"))


if __name__ == "__main__":
    evaluate()
