"""Score a trained prompt: `python eval.py run=RUN_DIR [split=eval|test|...] [data=FILE] [checkpoint=best|final]`.

Rebuilds the run's model from its config.yaml, loads trainable_<checkpoint>.safetensors (its header must match
the model) and writes metrics.json and predictions.jsonl into this job's folder (hydra.run.dir). Returns the
task's selection metric (NaN for a file without gold labels). See docs/after-training.md.
`task.data_dir=OTHER` scores the run on another folder of its task's format (out of domain); without run=,
`model=... task=...` scores the untrained model (zero-shot, fpt/zero_shot.py; docs/retrieval.md).
"""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402

from fpt.config import register_configs  # noqa: E402

register_configs()  # the task files' schema and the output folder's resolver (conf/eval.yaml)


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def evaluate(cfg) -> float:
    hc = HydraConfig.get()
    if cfg.run is None:
        if not (hc.runtime.choices.get("model") and hc.runtime.choices.get("task")):
            raise ValueError("eval.py: give run=RUN_DIR (a training run), or model=... task=... to score the untrained "
                             "model (zero-shot)")
        from hydra import compose

        from fpt.zero_shot import evaluate_untrained, train_overrides
        train_cfg = compose(config_name="config", overrides=train_overrides(list(hc.overrides.task)))
        summary = evaluate_untrained(train_cfg, hc.runtime.output_dir, split=cfg.split, device=cfg.trainer.device,
                                     batch_size=cfg.trainer.eval_batch_size, bf16=cfg.trainer.bf16)
        return summary["metrics"].get(summary["metric"], float("nan"))
    from fpt.evaluate_run import evaluate_run
    overrides = {f"task.{k}": v for k, v in cfg.task.items() if k in ("data_dir", "max_eval_samples") and v is not None}
    summary = evaluate_run(cfg.run, hc.runtime.output_dir, split=cfg.split, data=cfg.data,
                           checkpoint=cfg.checkpoint, device=cfg.trainer.device, data_format=cfg.data_format,
                           batch_size=cfg.trainer.eval_batch_size, bf16=cfg.trainer.bf16, overrides=overrides)
    return summary["metrics"].get(summary["metric"], float("nan"))


if __name__ == "__main__":
    evaluate()
