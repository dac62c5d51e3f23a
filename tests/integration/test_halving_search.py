"""Successive halving (hparams_search=tiny_halving, hydra_plugins/fpt_plugins/halving_sweeper.py) with real
training: a stopped-then-promoted run equals an uninterrupted one bitwise; the sweep's rungs; resuming an interrupted
sweep; fpt.collect's search summary (the rule, the stop step's checks and the paper's search space, in-process:
tests/unit/test_halving.py)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from helpers import ROOT, halving_run as train, run_python, subprocess_env
from safetensors.torch import load_file


def log_lines(folder: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k != "train_seconds"}
            for x in (folder / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- (a) stop, promote, resume = bitwise
def test_stopped_then_promoted_run_equals_an_uninterrupted_run_bitwise(tmp_path):
    whole = tmp_path / "a" / "whole"  # output roots of their own: neither run finds the other
    expected = train(whole)
    trial = tmp_path / "b" / "trial"
    first = train(trial, "trainer.stop_at_step=4")  # rung 0
    assert first["status"] == "stopped" and first["steps"] == 4 and first["total_steps"] == 8
    assert json.loads((trial / "run_state.json").read_text())["status"] == "stopped"
    assert (trial / "checkpoint" / "last.pt").is_file() and not (trial / "trainable_final.safetensors").exists()
    # the metric at the stop step is the uninterrupted run's evaluation at that step
    assert first["final"] == [r for r in log_lines(whole) if r["step"] == 4 and "eval" in r][0]["eval"]
    assert 0 < first["train_flops"] < expected["train_flops"]

    second = train(trial, "trainer.stop_at_step=8")  # promoted: resumes, not refused, no step repeated
    assert second["status"] == "completed"
    assert log_lines(trial) == log_lines(whole)  # one line per step, each step once
    for key in ("final", "best", "best_step", "steps", "train_flops"):
        assert second[key] == expected[key], key
    a, b = load_file(trial / "trainable_final.safetensors"), load_file(whole / "trainable_final.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_stopped_run_is_continued_only_in_its_own_folder(tmp_path):
    """Another folder with the same config (e.g. a grid's job beside a search) starts its own run rather than
    taking over a search trial's folder."""
    trial = tmp_path / "trial"
    assert train(trial, "trainer.stop_at_step=2")["status"] == "stopped"
    other = train(tmp_path / "other")  # the same output_root, the same config
    assert other["status"] == "completed" and other["steps"] == 8
    assert not (tmp_path / "other" / "run_link.json").exists()
    assert json.loads((trial / "results.json").read_text())["steps"] == 2


# --------------------------------------------------------------------------- (b), (c), (d): the sweep
def sweep(out: Path, fault: str | None = None, *extra: str):
    return run_python("train.py", "-m", "hparams_search=tiny_halving", f"output_root={out}", "trainer.log_every=1",
                      *extra, fault=fault)


def study_trials(folder: Path, name: str = "tiny_halving"):
    import optuna
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder}/optuna.db").trials


def check_search(folder: Path):
    """The search's outcome as successive halving says: 4 -> 2 -> 1 trials at steps 2, 4, 8."""
    from optuna.trial import TrialState
    trials = study_trials(folder)
    assert len(trials) == 4 and len({tuple(sorted(t.params.items())) for t in trials}) == 4  # the whole grid
    reached = {t.number: max(t.intermediate_values) for t in trials}
    assert sorted(reached.values()) == [2, 2, 4, 8]
    for t in trials:
        results = json.loads((folder / str(t.number) / "results.json").read_text())
        assert results["steps"] == reached[t.number]  # a pruned trial stopped at its rung's step
        assert results["final"]["accuracy"] == t.intermediate_values[reached[t.number]]
        assert t.state == (TrialState.COMPLETE if reached[t.number] == 8 else TrialState.PRUNED)
        assert results["status"] == ("completed" if reached[t.number] == 8 else "stopped")
        lines = log_lines(folder / str(t.number))
        assert [r["step"] for r in lines if "loss" in r] == list(range(1, reached[t.number] + 1))  # no step twice
    # promotion: the best of each rung goes on (ties: the lower trial number)
    for step, keep in ((2, 2), (4, 1)):
        ranked = sorted((t for t in trials if step in t.intermediate_values),
                        key=lambda t: (-t.intermediate_values[step], t.number))
        assert {t.number for t in ranked[:keep]} == {t.number for t in trials if reached[t.number] > step}
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert reached[best.number] == 8
    return trials


def test_search_runs_rungs_resumes_after_interruption_and_collects(tmp_path):
    # interrupted in rung 1 (steps 3-4): SIGKILLed at step 3 of the first promoted trial
    proc = sweep(tmp_path, "after_step:3")
    assert proc.returncode == -9, proc.output[-3000:]
    folder = tmp_path / "multirun" / "tiny_halving"
    assert sorted(max(t.intermediate_values) for t in study_trials(folder)) == [2, 2, 2, 2]  # rung 0 recorded
    proc = sweep(tmp_path)  # the same command again
    assert proc.returncode == 0, proc.output[-3000:]
    assert "rung 0 (stop step 2): 4 trials, 0 to run, 4 recorded by an earlier run" in proc.output
    assert "trainer.stop_at_step=2" not in proc.output  # finished rung 0 not launched again
    assert proc.output.count("trainer.stop_at_step=4") == 2 and proc.output.count("trainer.stop_at_step=8") == 1
    trials = check_search(folder)

    # (d) collect: every trial with the rung it reached, its metric, its FLOPs; the search's total
    from fpt.collect import collect
    text = collect([folder])
    flops = {t.number: json.loads((folder / str(t.number) / "results.json").read_text())["train_flops"]
             for t in trials}
    assert f"total training FLOPs of the search: {sum(flops.values()):.4g}" in text
    for t in trials:
        step = max(t.intermediate_values)
        row = [line for line in text.splitlines() if line.startswith(f"| {t.number} |")]
        assert len(row) == 1, text
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        assert f"{step}" in cells and f"{flops[t.number]:.4g}" in cells
        assert f"{t.intermediate_values[step]:.4f}" in cells
    assert "failed or unfinished" in text and "## Failed or unfinished jobs\n\nnone" in text  # pruned is not failed

    # another plan against the same study is refused, naming what differs
    proc = sweep(tmp_path, None, "hydra.sweeper.min_resource=4")
    assert proc.returncode != 0 and "was started with {'n_trials': 4, 'rung_steps': [2, 4, 8]}" in proc.output


def test_a_second_sweep_into_the_same_folder_is_refused_and_the_first_is_intact(tmp_path):
    """Two `-m hparams_search=tiny_halving` into one sweep folder a few seconds apart: the second is refused at
    once naming the first's pid and host (the old name tiny_asha prints its notice), the first search is whole."""
    folder = tmp_path / "multirun" / "tiny_halving"
    first = subprocess.Popen([sys.executable, "train.py", "-m", "hparams_search=tiny_halving", f"output_root={tmp_path}",
                              "trainer.log_every=1"], cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(1200):  # until the first sweep holds its folder's lock
            lock = folder / "run.lock"
            if lock.is_file() and f'"pid": {first.pid}' in lock.read_text():
                break
            time.sleep(0.1)
        second = run_python("train.py", "-m", "hparams_search=tiny_asha", f"output_root={tmp_path}",
                            f"hydra.sweep.dir={folder}", "hydra.sweeper.study_name=tiny_halving")
        output = first.communicate(timeout=600)[0]
    finally:
        first.kill()
    assert "hparams_search=tiny_asha is renamed hparams_search=tiny_halving" in second.output
    assert second.returncode != 0 and f"is in use by another sweep: pid {first.pid} on host" in second.output
    assert "Launching" not in second.output  # refused before any job
    assert first.returncode == 0, output[-3000:]
    check_search(folder)
    from fpt.collect import collect
    assert "## Failed or unfinished jobs\n\nnone" in collect([folder])
