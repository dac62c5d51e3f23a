"""train.py end to end in subprocesses: outputs, SIGKILL and resume, crash mid-checkpoint (bad input: test_errors*.py)."""
import json
from pathlib import Path

import torch
from helpers import tiny_run, train_py
from safetensors.torch import load_file

TINY = tiny_run(12, 4, 100)


def train(run_dir: Path, *overrides: str, fault: str | None = None, root: Path | None = None):
    """Run train.py into run_dir; runs look for earlier runs of the same config under `root` (default: run_dir)."""
    return train_py(run_dir, *overrides, fault=fault, root=root)


def test_run_writes_every_output(tmp_path):
    run = tmp_path / "run"
    proc = train(run, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    for key in ["task", "model", "prompt", "schedule", "seed", "steps", "best_step", "metric", "best", "final",
                "trainable_params", "train_seconds", "eval_seconds", "train_flops", "status"]:
        assert key in results, key
    assert results["eval_seconds"] > 0  # the evaluations' wall time (benchmarks/group_by_length.py reads it)
    assert results["status"] == "completed" and results["steps"] == 12
    assert results["task"] == "sample_sentiment" and results["model"] == "tiny-bert"
    assert 0.0 <= results["final"]["accuracy"] <= 1.0 and results["train_flops"] > 0
    tensors = load_file(run / "trainable_final.safetensors")
    # one prefix per attention site (tiny-bert: 2 layers)
    assert set(tensors) == {"deep.prefixes.0", "deep.prefixes.1", "head.classifier.weight", "head.classifier.bias"}
    assert results["trainable_params"] == sum(t.numel() for t in tensors.values())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "eval" in x] == [4, 8, 12]
    assert any((run / "tensorboard").iterdir())
    assert "prompt:" in (run / "config.yaml").read_text()


def _final(run: Path):
    return load_file(run / "trainable_final.safetensors"), json.loads((run / "results.json").read_text())


def test_sigkilled_run_resumes_bitwise(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert train(full, *TINY).returncode == 0
    proc = train(killed, *TINY, fault="after_step:6")  # dies after the checkpoint of step 4
    assert proc.returncode == -9
    assert not (killed / "results.json").exists()
    assert torch.load(killed / "checkpoint" / "last.pt", weights_only=False)["step"] == 4
    proc = train(killed, *TINY)  # the same command again
    assert proc.returncode == 0, proc.stderr[-3000:]
    (a, ra), (b, rb) = _final(full), _final(killed)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert ra["final"] == rb["final"] and ra["best"] == rb["best"] and ra["best_step"] == rb["best_step"]
    assert ra["train_flops"] == rb["train_flops"]
    evals = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals == [4, 8, 12]  # the log was cut back to the checkpoint, no duplicated steps


def test_kill_while_writing_checkpoint_keeps_previous_one(tmp_path):
    run = tmp_path / "run"
    proc = train(run, *TINY, fault="checkpoint_write:8")  # killed after writing the new file, before the rename
    assert proc.returncode == -9
    state = torch.load(run / "checkpoint" / "last.pt", weights_only=False)
    assert state["step"] == 4  # the complete previous checkpoint, not a torn one
    proc = train(run, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = tmp_path / "full"
    train(full, *TINY)
    assert all(torch.equal(_final(run)[0][k], _final(full)[0][k]) for k in ("deep.prefixes.0", "deep.prefixes.1"))


def test_same_command_in_new_folder_resumes_or_skips(tmp_path):
    """Without hydra.run.dir a rerun gets a new time-stamped folder: the earlier run of the same config is found."""
    first = tmp_path / "a"
    assert train(first, *TINY, fault="after_step:6", root=tmp_path).returncode == -9
    second = tmp_path / "b"
    proc = train(second, *TINY, root=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming the unfinished run" in proc.output and (first / "results.json").exists()
    third = tmp_path / "c"
    proc = train(third, *TINY, root=tmp_path)
    assert proc.returncode == 0 and "already completed" in proc.output
    assert not (third / "results.json").exists()


# bad input (typos, data errors, NaN loss): tests/unit/test_errors.py, tests/integration/test_errors_e2e.py;
# a checkpoint of an old format: tests/unit/test_run_outputs.py
