"""Bad input end to end: `python train.py` shows the message and the exit code (in-process cases:
tests/unit/test_errors.py; docs/errors.md explains each error)."""
from pathlib import Path

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
