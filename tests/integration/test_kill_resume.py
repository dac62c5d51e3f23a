"""kill -9 at five random moments of a growing (schedule=fpt) tiny-bert run, each resumed to the end: the final
prompt, the best prompt, results.json and every line of metrics.jsonl (less wall time) equal an uninterrupted
run's bitwise.

The moments are drawn at random (FPT_KILL_SEED=<n> replays a draw; the seed is in every failure message) from:
during a checkpoint write (after the new file is written, before the rename), right after a stage change
(the model just grew), and after any training step. Killed runs are subprocesses (FPT_FAULT, fpt/trainer.py);
the uninterrupted run and the resumes run in this process.

A checkpoint damaged after the kill (64 bytes overwritten, same size) is refused by the same command, naming it and
`mv previous.pt last.pt`, which then resumes to the same end; a checkpoint write stopped by a file-size limit
names the file and the OS error and leaves the checkpoint before it.
"""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import torch
from helpers import GROWTH_STAGES, ROOT, TINY_FPT, compose, subprocess_env, train_py
from safetensors.torch import load_file

from fpt.runs.launch import main

STEPS = 12  # TINY_FPT's trainer.max_steps: three stages of 4 steps
ARGS = [*TINY_FPT, "trainer.save_every=2", "schedule=fpt", GROWTH_STAGES]
STAGE_CHANGES = (4, 8)


def moments(rng: random.Random) -> list[str]:
    after = rng.sample([s for s in range(1, STEPS) if s not in STAGE_CHANGES], 3)
    return [f"checkpoint_write:{rng.choice(range(2, STEPS + 1, 2))}",
            f"after_stage_change:{rng.choice(STAGE_CHANGES)}"] + [f"after_step:{s}" for s in after]


def train_in_process(folder: Path, scores: Path) -> dict:
    cfg = compose(*ARGS, f"schedule.scores_path={scores}", f"output_root={folder}")
    return main(cfg, folder)


def outcome(folder: Path):
    results = json.loads((folder / "results.json").read_text())
    log = [{k: v for k, v in json.loads(x).items() if k != "train_seconds"}
           for x in (folder / "metrics.jsonl").read_text().splitlines()]
    summary = {k: results[k] for k in ("final", "best", "best_step", "steps", "train_flops")}
    summary["stages"] = results["growth"]["stages"]
    return (load_file(folder / "trainable_final.safetensors"), load_file(folder / "trainable_best.safetensors"),
            {"results": summary, "metrics.jsonl": log})


def test_kill_at_five_random_moments_then_resume_is_bitwise_equal(tmp_path):
    seed = int(os.environ.get("FPT_KILL_SEED", random.randrange(10**6)))
    chosen = moments(random.Random(seed))
    scores = tmp_path / "scores.safetensors"  # activation scores, computed once, shared by all runs
    full = tmp_path / "full"
    train_in_process(full, scores)
    final, best, metrics = outcome(full)
    stages = [json.loads(x)["stage"] for x in (full / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert stages == [0] * 4 + [1] * 4 + [2] * 4  # the model grows at steps 4 and 8

    folders = [tmp_path / f"killed{k}" for k in range(len(chosen))]
    procs = [subprocess.Popen([sys.executable, "train.py", *ARGS, f"schedule.scores_path={scores}",
                               f"hydra.run.dir={folder}", f"output_root={folder}"], cwd=ROOT,
                              env=subprocess_env(fault), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for folder, fault in zip(folders, chosen)]  # side by side: 2 cores
    errors = [proc.communicate(timeout=600)[1] for proc in procs]
    for folder, fault, proc, stderr in zip(folders, chosen, procs, errors):
        where = f"FPT_KILL_SEED={seed}, kill at {fault}"
        assert proc.returncode == -9, f"{where}: {stderr[-2000:]}"
        assert not (folder / "results.json").exists(), where
        if fault.startswith("checkpoint_write"):  # the checkpoint being written never replaced the one before
            previous = int(fault.split(":")[1]) - 2
            ckpt = folder / "checkpoint" / "last.pt"
            assert (torch.load(ckpt, weights_only=False)["step"] if ckpt.exists() else 0) == previous, where
        assert train_in_process(folder, scores)["status"] == "completed", where
        f2, b2, m2 = outcome(folder)
        assert set(f2) == set(final), where
        for name in final:
            assert torch.equal(final[name], f2[name]), f"{where}: final {name}"
            assert torch.equal(best[name], b2[name]), f"{where}: best {name}"
        assert m2["results"] == metrics["results"], where
        # every logged loss, learning rate, FLOP count and evaluation, each step once across the kill
        assert m2["metrics.jsonl"] == metrics["metrics.jsonl"], where


def test_bit_rot_after_a_kill_is_refused_and_previous_pt_resumes_equal(tmp_path):
    """The issue's case: killed after step 7 (checkpoints at 4 and 6), 64 bytes of last.pt overwritten in place;
    the same command fails naming last.pt and the way back, and resumes to the uninterrupted run's end after it."""
    scores = tmp_path / "scores.safetensors"
    full, folder = tmp_path / "full", tmp_path / "killed"
    train_in_process(full, scores)
    args = [*ARGS, f"schedule.scores_path={scores}"]
    assert train_py(folder, *args, fault="after_step:7").returncode == -9
    last, previous = folder / "checkpoint" / "last.pt", folder / "checkpoint" / "previous.pt"
    state = torch.load(last, weights_only=False)
    assert state["step"] == 6 and torch.load(previous, weights_only=False)["step"] == 4
    data = bytearray(last.read_bytes())
    at = bytes(data).find(next(iter(state["trainable"].values())).numpy().tobytes()[:64])  # a prompt tensor's bytes
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])
    last.write_bytes(bytes(data))
    refused = train_py(folder, *args)
    assert refused.returncode != 0 and not (folder / "results.json").exists()
    assert f"the checkpoint {last} is damaged" in refused.output and f"mv {previous} {last}" in refused.output, \
        refused.output[-3000:]
    os.replace(previous, last)
    assert train_in_process(folder, scores)["status"] == "completed"
    assert outcome(folder)[2]["results"] == outcome(full)[2]["results"]
    assert all(torch.equal(a, b) for a, b in zip(outcome(folder)[0].values(), outcome(full)[0].values()))


def test_file_size_limit_during_a_checkpoint_write_names_the_file(tmp_path):
    """A real limit (RLIMIT_FSIZE in a child process): torch's `RuntimeError: [enforce fail at inline_container.cc]`
    becomes `OSError: ... could not write <file>: File too large`; the checkpoint there stays, no temporary file."""
    from fpt.runs.checkpoint import load_checkpoint, save_checkpoint
    last = tmp_path / "last.pt"
    save_checkpoint(last, {"step": 1})
    code = ("import resource, signal, torch\n"
            "from fpt.runs.checkpoint import save_checkpoint\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
            "try:\n"
            f"    save_checkpoint({str(last)!r}, {{'step': 2, 'x': torch.zeros(100_000)}})\n"
            "except OSError as err:\n"
            "    print(type(err).__name__, err)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == f"OSError [Errno 27] could not write {last}: File too large", out.stderr[-2000:]
    assert load_checkpoint(last) == {"step": 1} and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
