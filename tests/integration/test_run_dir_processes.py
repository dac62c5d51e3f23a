"""Run folders across processes: one process per folder (a live holder is named, a dead one's lock taken over),
SIGTERM to `python train.py` -> checkpoint -> resume bitwise, a run killed before its first checkpoint starts over
with a clean log. The in-process cases: tests/unit/test_run_dir.py."""
import json
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, RUN_DIR_TINY as TINY, assert_same_run, run_dir_cfg as cfg_of, run_in_process as run
from helpers import subprocess_env

from fpt.runs.launch import main
from fpt.runs.folder import RunFolderError


LOCK_HOLDER = """
import sys, time
from fpt.runs.folder import FolderLock
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
