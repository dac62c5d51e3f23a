"""Bad input end to end: `python train.py` shows the message and the exit code (in-process cases:
tests/unit/test_errors.py; docs/errors.md explains each error)."""
import json
from pathlib import Path

import pytest
from helpers import ERRORS_TINY as TINY, TSV, leaves_nothing_complete, sst2_files, train_py


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
