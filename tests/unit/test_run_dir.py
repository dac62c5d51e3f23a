"""Run folders: another config's run is refused (naming the keys), one process per folder, SIGTERM -> checkpoint ->
resume bitwise, the data is part of a run's identity, a fresh start leaves no stale log lines, a damaged checkpoint
is named, an unwritable folder (and eval's run= that is no run) is refused before Hydra writes. Runs are
in-process (fpt.runs.launch.main on a composed config); the kills, signals and second processes are in
tests/integration/test_run_dir_processes.py."""
import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers import ROOT, RUN_DIR_TINY as TINY, assert_same_run, compose_hydra, run_dir_cfg as cfg_of
from helpers import run_in_process as run
from omegaconf import OmegaConf

from fpt.cli import RunFolderCheck
from fpt.runs.folder import RunFolderError

DATA = ROOT / "fpt" / "data" / "sample_sentiment"


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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
def test_run_that_finds_an_earlier_run_in_progress_is_refused(tmp_path):
    """A re-run in a new folder finds the unfinished run of its config, but that run's process still holds it."""
    from fpt.runs.folder import FolderLock
    first = tmp_path / "a"
    first.mkdir()
    from fpt.runs.identity import fingerprint, run_identity
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


@pytest.mark.parametrize("key, old, new", [("trainer.group_by_length", "false", True),
                                           ("schedule.keep_layers", "spread", "bottom")])
def test_a_key_added_later_at_its_old_value_keeps_older_runs_identity(tmp_path, key, old, new):
    """The old value is what runs made before the key existed did: their identity (without the key) equals a new
    run's with the old value; the new value is another run."""
    from fpt.runs.identity import fingerprint, run_identity
    before = run_identity(cfg_of(f"{key}={old}", root=tmp_path))
    after = run_identity(cfg_of(f"{key}={new}", root=tmp_path))
    assert key not in before and after[key] == new
    assert {k: v for k, v in after.items() if k != key} == before
    assert fingerprint(before) != fingerprint(after)


# --------------------------------------------------------------------------- before Hydra writes (fpt/cli.py)
def test_unwritable_job_folder_is_refused_before_hydra_creates_it(tmp_path):
    """A file in the way (unwritable for root too; a read-only folder and /proc/self: test_errors_e2e.py)."""
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    check = RunFolderCheck()
    with pytest.raises(SystemExit, match=re.escape(f"ConfigError: run folder {blocked / 'run'}: cannot write there")):
        check.on_run_start(compose_hydra(*TINY, f"hydra.run.dir={blocked / 'run'}"))
    with pytest.raises(SystemExit, match=re.escape(f"ConfigError: run folder {blocked / 'sweep'}: cannot write")):
        check.on_multirun_start(compose_hydra(*TINY, f"hydra.sweep.dir={blocked / 'sweep'}"))
    check.on_run_start(compose_hydra(*TINY, f"hydra.run.dir={tmp_path / 'fine'}"))  # a writable one passes
    assert (tmp_path / "fine").is_dir()


def test_eval_of_a_folder_that_is_no_run_writes_nothing(tmp_path):
    check = RunFolderCheck(scores_a_run=True)
    with pytest.raises(SystemExit, match=re.escape("ValueError: run= is missing: give the training run's folder")):
        check.on_run_start(compose_hydra(config_name="eval"))
    with pytest.raises(SystemExit, match=re.escape(f"FileNotFoundError: run={tmp_path / 'typo'}: no config.yaml")):
        check.on_run_start(compose_hydra(f"run={tmp_path / 'typo'}", config_name="eval"))
    cut = tmp_path / "cut"  # config.yaml cut short (a copy interrupted): named, with what it lacks
    cut.mkdir()
    whole = OmegaConf.to_yaml(cfg_of(root=tmp_path)).splitlines(keepends=True)
    (cut / "config.yaml").write_text("".join(whole[:whole.index("trainer:\n") + 3]))  # cut within trainer
    with pytest.raises(SystemExit, match=re.escape(f"ValueError: {cut / 'config.yaml'}: the run's config lacks "
                                                   f"seed (cut short or edited?)")):
        check.on_run_start(compose_hydra(f"run={cut}", config_name="eval"))
    assert not (tmp_path / "typo").exists() and [p.name for p in cut.iterdir()] == ["config.yaml"]
