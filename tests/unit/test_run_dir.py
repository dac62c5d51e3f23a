"""Run folders: another config's run is refused (naming the keys), one process per folder, SIGTERM -> checkpoint ->
resume bitwise, the data is part of a run's identity, a fresh start leaves no stale log lines, a damaged checkpoint
is named. Most runs are in-process (fpt.run.main on a composed config); only kills and signals use subprocesses."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from fpt import CONF_DIR
from fpt.config import register_configs
from fpt.run import main
from fpt.run_folder import RunFolderError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "fpt" / "data" / "sample_sentiment"
TINY = ["model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=6", "trainer.eval_every=3",
        "trainer.batch_size=8", "trainer.eval_batch_size=50", "task.max_eval_samples=50", "trainer.threads=1",
        "trainer.progress=false", "trainer.log_every=1"]


def cfg_of(*overrides, root: Path):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, f"output_root={root}", *overrides])


def run(folder: Path, *overrides, root: Path | None = None) -> dict:
    return main(cfg_of(*overrides, root=root or folder), folder)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def final_state(folder: Path):
    return load_file(folder / "trainable_final.safetensors"), json.loads((folder / "results.json").read_text())


def assert_same_run(a: Path, b: Path):
    (ta, ra), (tb, rb) = final_state(a), final_state(b)
    assert set(ta) == set(tb)
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name
    for key in ("final", "best", "best_step", "train_flops", "steps"):
        assert ra[key] == rb[key], key


def subprocess_env(fault: str | None = None) -> dict:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("FPT_FAULT", None)
    if fault:
        env["FPT_FAULT"] = fault
    return env


# --------------------------------------------------------------------------- another config's run
def test_folder_of_another_config_is_refused_naming_keys_and_nothing_is_written(tmp_path):
    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- seed=1\n")  # what Hydra writes for the first job
    assert run(folder, "seed=1")["status"] == "completed"
    before = snapshot(folder)
    assert json.loads((folder / "run_state.json").read_text())["hydra"]["overrides.yaml"] == "- seed=1\n"

    (folder / ".hydra" / "overrides.yaml").write_text("- seed=2\n- optim.lr=0.5\n")  # Hydra, for the second
    with pytest.raises(RunFolderError) as err:
        run(folder, "seed=2", "optim.lr=0.5")
    message = str(err.value)
    assert "seed: 1 -> 2" in message and "optim.lr: 0.01 -> 0.5" in message, message
    assert "trainer.resume=false" in message and "new folder" in message
    assert snapshot(folder) == before  # results, config, checkpoint and Hydra's record all as they were

    # the way out that keeps the folder: start over
    results = run(folder, "seed=2", "optim.lr=0.5", "trainer.resume=false")
    assert results["status"] == "completed" and results["seed"] == 2 and results["steps"] == 6
    assert json.loads((folder / "results.json").read_text())["lr"] == 0.5


def test_checkpoint_of_another_lr_is_not_resumed(tmp_path, monkeypatch):
    """A stopped run rerun with a changed lr: refused (its optimizer state would silently keep the old lr)."""
    folder = tmp_path / "run"
    interrupt_at(monkeypatch, 2)
    with pytest.raises(SystemExit):
        run(folder)
    monkeypatch.undo()
    state = torch.load(folder / "checkpoint" / "last.pt", weights_only=False)
    assert state["step"] == 2 and state["identity"]["keys"]["optim.lr"] == 0.01
    with pytest.raises(RunFolderError, match=r"a checkpoint of another config; differing keys: optim.lr: 0.01 -> 0.3"):
        run(folder, "optim.lr=0.3")
    # what may change on resume does: evaluation cadence
    results = run(folder, "trainer.eval_every=2")
    assert results["status"] == "completed"
    evals = [json.loads(x)["step"] for x in (folder / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals == [4, 6]  # none before the interruption (eval_every was 3), then every 2


def test_changed_value_list_in_a_reused_sweep_folder_is_refused(tmp_path):
    """A sweep re-run into the same folder with other values: job k's folder holds another lr: refused, not skipped."""
    sweep = tmp_path / "sweep"
    for k, lr in enumerate(["1e-2", "3e-2"]):
        run(sweep / str(k), f"optim.lr={lr}", root=tmp_path)
    for k, lr in enumerate(["5e-3", "1e-2"]):
        with pytest.raises(RunFolderError, match="optim.lr"):
            run(sweep / str(k), f"optim.lr={lr}", root=tmp_path)
    assert [json.loads((sweep / k / "results.json").read_text())["lr"] for k in "01"] == [0.01, 0.03]
    # the same values again: skipped, from the job's own folder
    assert run(sweep / "1", "optim.lr=3e-2", root=tmp_path)["lr"] == 0.03
    # a second sweep folder whose job skipped (a link to sweep/0), re-run there with another value: refused too
    again = tmp_path / "again"
    assert run(again / "0", "optim.lr=1e-2", root=tmp_path)["lr"] == 0.01
    assert json.loads((again / "0" / "run_link.json").read_text())["run_dir"] == str((sweep / "0").resolve())
    with pytest.raises(RunFolderError, match=r"holds a link \(run_link.json\).*optim.lr: 0.01 -> 0.005"):
        run(again / "0", "optim.lr=5e-3", root=tmp_path)


# --------------------------------------------------------------------------- one process per folder
LOCK_HOLDER = """
import sys, time
from fpt.run_folder import FolderLock
FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_second_process_on_a_folder_fails_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(folder)], cwd=ROOT, env=subprocess_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError) as err:
            run(folder)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in str(err.value)
        assert not (folder / "run_state.json").exists() and not (folder / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    assert "pid" in (folder / "run.lock").read_text()  # the killed holder's lock file is still there ...
    assert run(folder)["status"] == "completed"  # ... and taken over
    assert not (folder / "run.lock").exists()  # released at the end


def test_run_that_finds_an_earlier_run_in_progress_is_refused(tmp_path):
    """A re-run in a new folder finds the unfinished run of its config, but that run's process still holds it."""
    from fpt.run_folder import FolderLock
    first = tmp_path / "a"
    first.mkdir()
    from fpt.identity import fingerprint, run_identity
    identity = run_identity(cfg_of(root=tmp_path))
    (first / "run_state.json").write_text(json.dumps({"fingerprint": fingerprint(identity), "status": "running"}))
    lock = FolderLock(first).acquire()
    try:
        with pytest.raises(RunFolderError, match=f"{first} is in use by another run: pid {os.getpid()}"):
            run(tmp_path / "b", root=tmp_path)
        assert not (tmp_path / "b" / "config.yaml").exists()
        assert (tmp_path / "b" / "run.lock").exists() is False  # its own lock was released again
    finally:
        lock.release()


# --------------------------------------------------------------------------- SIGTERM / SIGINT
def interrupt_at(monkeypatch, step: int, signum=signal.SIGTERM):
    """Send this process `signum` during training step `step` (1-based), as Slurm or Ctrl-C would."""
    from fpt.trainer import Trainer
    original = Trainer.train_step

    def train_step(self, s):
        if s + 1 == step:
            os.kill(os.getpid(), signum)
        return original(self, s)
    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_sigterm_writes_a_checkpoint_exits_interrupted_and_the_rerun_is_bitwise_equal(tmp_path):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    args = [*TINY, "trainer.max_steps=60", "trainer.eval_every=20"]
    proc = subprocess.Popen([sys.executable, "train.py", *args, f"hydra.run.dir={stopped}", f"output_root={stopped}"],
                            cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = stopped / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted by SIGTERM" in out + err and "run the same command again" in out + err
    assert json.loads((stopped / "run_state.json").read_text())["status"] == "interrupted"
    assert not (stopped / "results.json").exists()
    step = torch.load(stopped / "checkpoint" / "last.pt", weights_only=False)["step"]
    assert 0 < step < 60 and step % 20 != 0  # written at the step boundary after the signal, not a scheduled one

    rerun = main(cfg_of("trainer.max_steps=60", "trainer.eval_every=20", root=stopped), stopped)
    assert rerun["status"] == "completed"
    main(cfg_of("trainer.max_steps=60", "trainer.eval_every=20", root=full), full)
    assert_same_run(full, stopped)
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == list(range(1, 61))  # each step logged once

    # TensorBoard: one events file, every scalar once per step, equal to the uninterrupted run's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    files = list((stopped / "tensorboard").glob("events.*"))
    assert len(files) == 1
    acc = {d: EventAccumulator(str(d / "tensorboard")).Reload() for d in (full, stopped)}
    assert acc[full].Tags()["scalars"] == acc[stopped].Tags()["scalars"]
    for tag in acc[full].Tags()["scalars"]:
        a = [(e.step, e.value) for e in acc[full].Scalars(tag)]
        b = [(e.step, e.value) for e in acc[stopped].Scalars(tag)]
        assert [s for s, _ in a] == [s for s, _ in b], tag  # no step twice
        if tag != "train/train_seconds":  # wall time differs, the rest is bitwise
            assert a == b, tag


def test_sigint_in_process_then_rerun_equal(tmp_path, monkeypatch):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    interrupt_at(monkeypatch, 4, signal.SIGINT)
    with pytest.raises(SystemExit) as exit_:
        run(stopped)
    monkeypatch.undo()
    assert exit_.value.code == 128 + signal.SIGINT
    assert torch.load(stopped / "checkpoint" / "last.pt", weights_only=False)["step"] == 4
    run(stopped)
    run(full)
    assert_same_run(full, stopped)


# --------------------------------------------------------------------------- the data is part of a run
def test_edited_data_file_is_another_run(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    first = tmp_path / "a"
    run(first, "task=sst2", f"task.data_dir={data}", root=tmp_path)
    # unchanged data, new folder: skipped
    assert run(tmp_path / "b", "task=sst2", f"task.data_dir={data}", root=tmp_path)["status"] == "completed"
    assert json.loads((tmp_path / "b" / "run_link.json").read_text())["run_dir"] == str(first.resolve())

    with open(data / "train.tsv", "a") as f:
        f.write("an added sentence\t1\n")
    with pytest.raises(RunFolderError, match=r"data.train: sha256:"):
        run(first, "task=sst2", f"task.data_dir={data}", root=tmp_path)  # its own folder: refused
    third = tmp_path / "c"
    run(third, "task=sst2", f"task.data_dir={data}", root=tmp_path)  # a new folder: trained, not skipped
    assert not (third / "run_link.json").exists() and (third / "results.json").exists()


def test_same_relative_data_dir_from_another_working_directory_is_another_run(tmp_path, monkeypatch):
    for name, extra in (("here", ""), ("there", "one more line\t0\n")):
        (tmp_path / name).mkdir()
        shutil.copytree(DATA, tmp_path / name / "data")
        with open(tmp_path / name / "data" / "train.tsv", "a") as f:
            f.write(extra)
    monkeypatch.chdir(tmp_path / "here")
    run(tmp_path / "a", "task=sst2", "task.data_dir=data", root=tmp_path)
    monkeypatch.chdir(tmp_path / "there")
    run(tmp_path / "b", "task=sst2", "task.data_dir=data", root=tmp_path)
    assert not (tmp_path / "b" / "run_link.json").exists() and (tmp_path / "b" / "results.json").exists()


# --------------------------------------------------------------------------- stale logs, damaged checkpoints
def test_run_killed_before_its_first_checkpoint_starts_over_with_a_clean_log(tmp_path):
    folder = tmp_path / "run"
    cmd = [sys.executable, "train.py", *TINY, f"hydra.run.dir={folder}", f"output_root={folder}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env("after_step:2"), capture_output=True, text=True)
    assert proc.returncode == -9 and not (folder / "checkpoint").exists()
    assert (folder / "metrics.jsonl").read_text().count('"step": 2') == 1
    run(folder)
    steps = [json.loads(x)["step"] for x in (folder / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert len(list((folder / "tensorboard").glob("events.*"))) == 1


def test_damaged_checkpoint_is_named_with_the_ways_to_recover(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    interrupt_at(monkeypatch, 5)
    with pytest.raises(SystemExit):
        run(folder, "trainer.save_every=2")
    monkeypatch.undo()
    last, previous = folder / "checkpoint" / "last.pt", folder / "checkpoint" / "previous.pt"
    assert torch.load(last, weights_only=False)["step"] == 5
    assert torch.load(previous, weights_only=False)["step"] == 4
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as by a broken copy
    before = snapshot(folder)
    with pytest.raises(RunFolderError) as err:
        run(folder, "trainer.save_every=2")
    message = str(err.value)
    assert str(last) in message and f"mv {previous} {last}" in message and "trainer.resume=false" in message
    assert snapshot(folder) == before
    os.replace(previous, last)  # the way back the message gives
    assert run(folder, "trainer.save_every=2")["status"] == "completed"
    full = tmp_path / "full"
    run(full, "trainer.save_every=2")
    assert_same_run(full, folder)
