"""The start-up checks write nothing (fpt/validate.py); fpt.runs.results.check_start records their failure in the run
folder as a failed results.json, which is what a sweep's report (fpt.collect) lists."""
import json

import pytest
from helpers import ERRORS_TINY as TINY, compose

from fpt.runs.results import check_start
from fpt.validate import ConfigError, check_config


def test_check_config_writes_nothing_in_the_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ConfigError, match="trainer.batch_size=0"):
        check_config(compose(*TINY, "trainer.batch_size=0"), run)
    assert list(run.iterdir()) == []


def test_check_start_records_the_failure_and_raises_it(tmp_path):
    run = tmp_path / "run"
    cfg = compose(*TINY, "trainer.batch_size=0", "seed=7")
    with pytest.raises(ConfigError, match="trainer.batch_size=0") as caught:
        check_start(cfg, run)
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "failed" and results["seed"] == 7 and results["steps"] == 0
    assert results["error"] == f"ConfigError: {caught.value}"
    assert "ConfigError" in results["traceback"]


def test_check_start_of_a_good_config_writes_nothing(tmp_path):
    run = tmp_path / "run"
    check_start(compose(*TINY), run)
    assert list(run.iterdir()) == []  # made (it must take files), left empty
