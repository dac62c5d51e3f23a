"""Bad input end to end: `python train.py` / `eval.py` shows the message and the exit code (in-process cases:
tests/unit/test_errors.py; docs/errors.md explains each error)."""
import json
import os
from pathlib import Path

import pytest
from helpers import ERRORS_TINY as TINY, ROOT, TSV, leaves_nothing_complete, run_python, sst2_files, train_py


def train(run_dir: Path, *overrides: str):
    return train_py(run_dir, *TINY, *overrides)


def test_impossible_value_end_to_end(tmp_path):
    proc = train(tmp_path / "run", "trainer.batch_size=0")
    assert proc.returncode == 1
    assert "ConfigError: trainer.batch_size=0: expected a whole number >= 1" in proc.stderr, proc.stderr[-2000:]
    leaves_nothing_complete(tmp_path / "run")


def test_malformed_label_names_file_row_and_value(tmp_path):
    data = tmp_path / "data"
    overrides = sst2_files(data, train=TSV + "good movie\t1\nbad movie\t0\nodd movie\tmaybe\n")
    proc = train(tmp_path / "run", *overrides)
    assert proc.returncode != 0
    assert f"{data / 'train.tsv'}:4" in proc.stderr and "'maybe'" in proc.stderr, proc.stderr[-2000:]
    leaves_nothing_complete(tmp_path / "run")


def test_typo_end_to_end(tmp_path):
    proc = train(tmp_path / "run", "promt=deep")
    assert proc.returncode != 0
    assert "promt" in proc.stderr, proc.stderr[-2000:]


def test_bad_choice_end_to_end_names_the_key_and_the_choices(tmp_path):
    proc = train(tmp_path / "run", "optim.name=sgd")  # a fixed choice (an enum in fpt/config.py): Hydra refuses it
    assert proc.returncode == 1
    assert "Invalid value 'sgd', expected one of [adamw, adafactor]" in proc.stderr, proc.stderr[-2000:]
    assert "full_key: optim.name" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()
    proc = train(tmp_path / "run", "prompt.type=deeep")  # a registered name (fpt/prompt_methods.py): start-up check
    assert proc.returncode == 1
    assert "ConfigError: prompt.type='deeep': expected one of ['none', 'shallow', 'deep', 'bitfit']" in proc.stderr, \
        proc.stderr[-2000:]
    leaves_nothing_complete(tmp_path / "run")


@pytest.mark.parametrize("kind", ["a file in the way", "read-only folder", "a folder that takes no files"])
def test_unwritable_run_folder_is_refused_before_hydra_writes(tmp_path, kind):
    if kind == "a folder that takes no files":  # exists, so Hydra's own failure was opening train.log there
        run = Path("/proc/self")  # no file can be created there, also by root (Linux)
        if not run.is_dir():
            pytest.skip("no /proc on this system")
    elif kind == "read-only folder":  # the same failure for a user other than root
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders (/proc/self: the same failure, as root too)")
        run = tmp_path / "locked"
        run.mkdir()
        run.chmod(0o555)
    else:
        (tmp_path / "a-file").write_text("not a folder")
        run = tmp_path / "a-file" / "run"
    try:
        proc = train(run)
    finally:
        if kind == "read-only folder":
            run.chmod(0o755)
    assert proc.returncode == 1
    assert f"ConfigError: run folder {run}: cannot write there" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Unable to configure handler" not in proc.stderr
    assert kind == "a folder that takes no files" or not run.is_dir() or not any(run.iterdir())


def test_eval_without_a_run_or_of_a_folder_that_is_no_run_or_whose_config_is_cut_short_writes_nothing(tmp_path):
    proc = run_python(str(ROOT / "eval.py"))
    assert proc.returncode == 1 and "ValueError: run= is missing" in proc.stderr, proc.stderr[-2000:]
    proc = run_python(str(ROOT / "eval.py"), f"run={tmp_path / 'typo'}")
    assert proc.returncode == 1
    assert f"FileNotFoundError: run={tmp_path / 'typo'}: no config.yaml there" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "typo").exists()  # not even <typo>/eval/...
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "config.yaml").write_text("model:\n  name: tiny-bert\n")  # a copy interrupted early
    proc = run_python(str(ROOT / "eval.py"), f"run={cut}")
    assert proc.returncode == 1
    assert f"{cut / 'config.yaml'}: the run's config lacks task, prompt, schedule, optim, trainer, seed" in proc.stderr
    assert [p.name for p in cut.iterdir()] == ["config.yaml"]


def test_a_batch_larger_than_a_one_class_training_set_trains_with_two_warnings(tmp_path):
    overrides = sst2_files(tmp_path / "data", train=TSV + "good movie\t1\nfine movie\t1\nnice movie\t1\n")
    proc = train(tmp_path / "run", *overrides)  # trainer.batch_size=8 (ERRORS_TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trainer.batch_size=8 is larger than the training set of task sst2 (3 rows)" in proc.output
    assert "the training set of task sst2 (3 rows) holds one class only: label='1' of task.labels ['0', '1']" in (
        proc.output)
# issue 21 item 10: options that do not apply (docs/errors.md "Options that do not apply"), as the review ran them
@pytest.mark.parametrize("overrides, message", [
    (["prompt=shallow", "prompt.projection=true"],
     "ConfigError: prompt.projection=True: has no effect with prompt.type='shallow'"),
    (["prompt=shallow", "schedule=fpt", "schedule.new_layer_prefix=gate"],
     "ConfigError: schedule.new_layer_prefix='gate': has no effect with prompt.type='shallow'"),
    (["prompt=none", "prompt.length=20"], "ConfigError: prompt.length=20: has no effect with prompt.type='none'"),
    (["model=tiny-bert", "model.name_or_path=/nonexistent/model"],
     "ConfigError: model.name_or_path='/nonexistent/model': not read: model.from_config builds model tiny-bert"),
], ids=["projection on shallow", "joining prefix on shallow", "length without a prompt", "path of a random model"])
def test_option_that_does_not_apply_end_to_end(tmp_path, overrides, message):
    run = tmp_path / "run"
    proc = train(run, *overrides)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr[-2000:]
    assert json.loads((run / "results.json").read_text())["status"] == "failed"  # recorded for a sweep's report
    assert not (run / "run_state.json").exists() and not (run / "config.yaml").exists()  # no run was started
    assert not (run / "checkpoint").exists() and not list(run.glob("*.safetensors"))
