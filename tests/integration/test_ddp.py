"""DDP on CPU (gloo): 2 processes train the same prompt as 1 process with the same global batch, in one folder;
a DDP run with dropout, killed and resumed, equals the uninterrupted DDP run bitwise.

The comparison with one process has dropout off (model.dropout, model.head_dropout, prompt.dropout = 0): each rank
draws its own masks (its own seed), other ones than the single process draws for the same examples.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=6", "trainer.eval_every=3",
        "trainer.batch_size=8", "trainer.eval_batch_size=50", "task.max_eval_samples=50", "trainer.threads=1",
        "trainer.progress=false", "model.dropout=0", "model.head_dropout=0", "prompt.dropout=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, fault=None):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    env.pop("FPT_FAULT", None)
    if fault:
        env["FPT_FAULT"] = fault
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (proc.returncode != 0) if fault else (proc.returncode == 0), (proc.stdout + proc.stderr)[-4000:]
    return proc


def rel_diff(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_two_ranks_train_the_same_prompt_as_one_process_in_one_folder(tmp_path):
    ddp_root, single = tmp_path / "ddp", tmp_path / "single"
    # a run folder that differs per rank unless the ranks agree on rank 0's (fpt.distributed.SameRunDir)
    per_rank_dir = "hydra.run.dir=${output_root}/run-rank${oc.env:RANK}"
    run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         "train.py", *TINY, f"output_root={ddp_root}", per_rank_dir])
    run([sys.executable, "train.py", *TINY, f"output_root={single}", f"hydra.run.dir={single}/run"])

    assert [p.name for p in ddp_root.iterdir()] == ["run-rank0"]  # exactly one run directory
    ddp = ddp_root / "run-rank0"
    assert (ddp / ".hydra").is_dir() and len(list(ddp.glob("*.log"))) == 1
    a, b = load_file(ddp / "trainable_final.safetensors"), load_file(single / "run" / "trainable_final.safetensors")
    assert set(a) == set(b) == {"deep.prefixes.0", "deep.prefixes.1", "head.classifier.weight", "head.classifier.bias"}
    for name in a:
        assert rel_diff(a[name], b[name]) < 1e-6, name
    # the tolerance is meaningful: 3 optimizer steps move the prompt far more than that
    at_step_3 = load_file(single / "run" / "trainable_best.safetensors")
    assert rel_diff(at_step_3["deep.prefixes.0"], b["deep.prefixes.0"]) > 1e-3

    rd, rs = (json.loads((d / "results.json").read_text()) for d in (ddp, single / "run"))
    assert rd["status"] == "completed" and rd["steps"] == 6 and rd["batch_size"] == 8
    assert rd["final"] == rs["final"]  # evaluation gathered over both ranks scores the whole dev set
    evals = [json.loads(x)["step"] for x in (ddp / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals == [3, 6]  # written once (rank 0), not once per rank


def test_ddp_run_with_dropout_killed_and_resumed_equals_the_uninterrupted_one(tmp_path):
    dropout = [x for x in TINY if "dropout" not in x] + ["model.dropout=0.1", "prompt.dropout=0.1",
                                                          "trainer.save_every=2"]
    full, killed = tmp_path / "full", tmp_path / "killed"

    def torchrun(folder, fault=None):
        return run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
                    "train.py", *dropout, f"output_root={folder}", f"hydra.run.dir={folder}"], fault=fault)

    torchrun(full)
    torchrun(killed, fault="after_step:3")  # every rank dies after step 3; the checkpoint is step 2's
    state = torch.load(killed / "checkpoint" / "last.pt", weights_only=False)
    assert state["step"] == 2 and not (killed / "results.json").exists()
    assert len(state["rng"]) == 2  # each rank's random state, restored to its own rank
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # ranks draw their own masks
    torchrun(killed)
    a, b = load_file(full / "trainable_final.safetensors"), load_file(killed / "trainable_final.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (full, killed))
    assert ra["final"] == rb["final"] and ra["best"] == rb["best"] and ra["train_flops"] == rb["train_flops"]


@pytest.mark.parametrize("env, expected", [
    ({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "1234",
      "SLURM_JOB_NODELIST": "gpu[07-08]"},
     {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu07", "MASTER_PORT": "21234"}),
    ({"SLURM_NTASKS": "4", "SLURM_PROCID": "0"}, {}),  # the batch script of a 4-task job is one process
    ({"WORLD_SIZE": "2", "RANK": "1", "SLURM_STEP_NUM_TASKS": "4"}, {"WORLD_SIZE": "2", "RANK": "1"}),  # torchrun wins
])
def test_ranks_from_slurm_environment(monkeypatch, env, expected):
    from fpt import distributed as dist

    for key in ["WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR",
                "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_JOB_ID",
                "SLURM_JOB_NODELIST"]:
        monkeypatch.setenv(key, "unset")  # recorded, so the variables set by the code are removed afterwards
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert dist.is_distributed() == (int(expected.get("WORLD_SIZE", "1")) > 1)
    for key, value in expected.items():
        assert os.environ[key] == value, key
    if not expected:
        assert "WORLD_SIZE" not in os.environ
    monkeypatch.undo()
    assert "SLURM_STEP_NUM_TASKS" not in os.environ and os.environ.get("WORLD_SIZE") != "4"


def test_first_host_of_a_slurm_node_list():
    from fpt.distributed import first_host

    assert first_host("gpu[07-09,12],cpu1") == "gpu07"
    assert first_host("node12,node13") == "node12"
    assert first_host("a100-[1-2]") == "a100-1"
