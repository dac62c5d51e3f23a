"""Real learning on ../shared/data with the bundled pretrained MiniLM (minutes on CPU).

SST-2 with deep prompts runs in CI. Full fine-tuning (SST-2, RTE) takes longer; it runs with
FPT_LONG_TESTS=1; the table of every task x prompt is made by the arm files conf/experiment/learning/
(benchmarks/README.md, "Learning on SST-2 and RTE").
"""
import json
import os

import pytest
from helpers import compose

from fpt.runs.launch import main as run_main

LONG = pytest.mark.skipif(os.environ.get("FPT_LONG_TESTS") != "1",
                          reason="long real-data run: set FPT_LONG_TESTS=1 (numbers: conf/experiment/learning/)")


def _train(tmp_path, *overrides):
    cfg = compose("model=minilm", "trainer.batch_size=32", "trainer.progress=false",
                  f"output_root={tmp_path}", *overrides)
    return run_main(cfg, tmp_path / "run")


def _sst2(shared_data):
    return ["task=sst2", f"task.data_dir={shared_data / 'GLUE' / 'SST-2'}", "task.max_train_samples=8000",
            "task.max_length=64", "trainer.max_steps=750", "trainer.eval_every=125"]


def test_sst2_deep_prompt_learns(tmp_path, shared_data):
    # backbone dropout off, as FPT trains (with MiniLM's own 0.1 this run ends at 0.814: README, Measured results)
    results = _train(tmp_path, *_sst2(shared_data), "prompt=deep", "prompt.length=20", "optim.lr=1e-2",
                     "model.dropout=0")
    assert results["status"] == "completed"
    assert results["best"]["accuracy"] >= 0.82, results
    assert results["trainable_params"] < 100_000  # prompt + head only
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["best"] == results["best"]


@LONG
def test_sst2_full_finetuning_learns(tmp_path, shared_data):
    results = _train(tmp_path, *_sst2(shared_data), "prompt=none", "optim.lr=5e-5")
    assert results["best"]["accuracy"] >= 0.84, results


@LONG
def test_rte_full_finetuning_learns_above_majority(tmp_path, shared_data):
    # deep and shallow prompts stay near chance on RTE at this budget (0.52 / 0.52): their numbers are reported by
    # the arm files conf/experiment/learning/rte_{deep,shallow}.yaml, not asserted
    results = _train(tmp_path, "task=rte", f"task.data_dir={shared_data / 'GLUE' / 'RTE'}", "task.max_length=128",
                     "trainer.max_steps=390", "trainer.eval_every=78", "prompt=none", "optim.lr=5e-5")
    assert results["best"]["accuracy"] > 0.55, results  # dev majority class: 146/277 = 0.527
