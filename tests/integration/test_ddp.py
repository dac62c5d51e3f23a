"""DDP on CPU (gloo): 2 processes train the same prompt as 1 process with the same global batch, in one folder;
a DDP run with dropout, killed and resumed, equals the uninterrupted DDP run bitwise.

The comparison with one process has dropout off (model.dropout, model.head_dropout, prompt.dropout = 0): each rank
draws its own masks (its own seed), other ones than the single process draws for the same examples.
Ranks from a Slurm environment: tests/unit/test_slurm_env.py.
"""
import json
import socket
import sys

import torch
from helpers import run_python, tiny_run
from safetensors.torch import load_file

TINY = tiny_run(6, 3, 50, "model.dropout=0", "model.head_dropout=0", "prompt.dropout=0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, fault=None):
    assert cmd[0] == sys.executable
    proc = run_python(*cmd[1:], fault=fault, full_error="1")
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
