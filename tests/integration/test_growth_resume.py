"""train.py with growth, killed and resumed across a stage boundary (in-process growth tests:
tests/unit/test_growth.py)."""
import json
from pathlib import Path

import torch
from helpers import GROWTH_STAGES as STAGES, TINY_FPT, train_py
from safetensors.torch import load_file


def _train(run_dir: Path, *overrides: str, fault: str | None = None):
    proc = train_py(run_dir, *overrides, fault=fault)
    assert proc.returncode == (-9 if fault else 0), proc.stderr[-3000:]
    return proc


def test_train_with_growth_resumes_bitwise_across_a_stage_boundary(tmp_path):
    """Killed after the checkpoint that ends stage 0 (step 4): the resumed run grows the model and copies
    the joining layers' prefixes from the trained ones exactly as the uninterrupted run did."""
    full, killed, vanilla = tmp_path / "full", tmp_path / "killed", tmp_path / "vanilla"
    _train(full, *TINY_FPT, "schedule=fpt", STAGES)
    _train(killed, *TINY_FPT, "schedule=fpt", STAGES, fault="after_step:6")
    _train(killed, *TINY_FPT, "schedule=fpt", STAGES)
    a, b = load_file(full / "trainable_final.safetensors"), load_file(killed / "trainable_final.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (full, killed))
    assert ra["final"] == rb["final"] and ra["train_flops"] == rb["train_flops"]
    steps = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in steps if "stage" in x] == [0] * 4 + [1] * 4 + [2] * 4
    assert [s["layers"]["encoder"] for s in ra["growth"]["stages"]] == [2, 3, 4]
    assert ra["best_step"] == 12  # partial models are evaluated but cannot be the best
    _train(vanilla, *TINY_FPT)
    rv = json.loads((vanilla / "results.json").read_text())
    assert ra["train_flops"] < rv["train_flops"]

    def per_step(run):
        flops = [json.loads(x).get("train_flops") for x in (run / "metrics.jsonl").read_text().splitlines()
                 if '"stage"' in x]
        return [b - a for a, b in zip([0] + flops, flops)]
    # a step's cost against the full model's on the same batch (length-grouped batches differ in width)
    share = [f / v for f, v in zip(per_step(full), per_step(vanilla))]
    assert share[0] < share[4] < share[8] and share[8] == 1  # cheaper stages first
