"""A run that talks (issue 23, item 5): what `python train.py` says on the console and in train.log, how much a
progress bar writes into a log file, a run that drops its checkpoints, a config error in one line, --help."""
import re

from helpers import GROWTH_STAGES, TINY_FPT, run_python, train_py


def test_a_growth_run_logs_its_folder_config_and_evaluations(tmp_path):
    run = tmp_path / "run"
    overrides = [o for o in TINY_FPT if o != "trainer.progress=false"]
    proc = train_py(run, *overrides, GROWTH_STAGES, "trainer.progress=true", "trainer.keep_checkpoints=false")
    assert proc.returncode == 0, proc.output[-3000:]
    log = (run / "train.log").read_text()
    assert f"run folder: {run}" in log
    assert "model tiny-bert, prompt deep (length 4), schedule none, 3 stages" in log
    assert "12 steps of batch 8, adamw lr 0.01 (linear), dev accuracy every 4 steps, seed 42" in log
    evals = re.findall(r"step (\d+): accuracy=[0-9.]+ \((.*)\)", log)  # in train.log, not only on the console
    assert [(s, note.split(" at ")[0].rsplit(" ", 1)[0]) for s, note in evals] == [
        ("4", "partial stage 1 of"), ("8", "partial stage 2 of"), ("12", "best")], evals
    assert evals[0][1] == "partial stage 1 of 3" and "nan" not in log and "None" not in log
    # trainer.keep_checkpoints=false: the completed run keeps its results and tensors, not checkpoint/*.pt
    assert not (run / "checkpoint").exists()
    assert (run / "trainable_final.safetensors").is_file() and (run / "results.json").is_file()
    # stderr is a pipe, not a terminal: the bar is drawn at its start and end, around the evaluation lines (and
    # every 30 s), not at every step
    drawn = {int(n) for n in re.findall(r"sample_sentiment deep: .*?\| *(\d+)/12 ", proc.stderr)}
    assert drawn and drawn <= {0, 4, 8, 12}, drawn


def test_checkpoints_are_kept_by_default(tmp_path):
    run = tmp_path / "run"
    proc = train_py(run, *TINY_FPT[:1], "prompt.length=2", "trainer.max_steps=2", "trainer.eval_every=2",
                    "trainer.batch_size=8", "task.max_eval_samples=20", "trainer.threads=1", "trainer.progress=false")
    assert proc.returncode == 0, proc.output[-3000:]
    assert (run / "checkpoint" / "last.pt").is_file()


def test_a_config_error_is_one_line_without_a_traceback(tmp_path):
    proc = train_py(tmp_path / "run", "model=tiny-bert", "trainer.batch_size=0")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["ConfigError: trainer.batch_size=0: expected a whole number >= 1"]
    full = train_py(tmp_path / "run", "model=tiny-bert", "trainer.batch_size=0", full_error="1")
    assert "Traceback" in full.stderr and "ConfigError: trainer.batch_size=0" in full.stderr


def test_a_missing_data_file_names_fpt_data_root(tmp_path):
    proc = train_py(tmp_path / "run", "model=tiny-bert", "task=sst2", f"task.data_dir={tmp_path / 'nowhere'}")
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("TaskDataError: task sst2: data file not found") and "FPT_DATA_ROOT" in line, line


def test_help_lists_groups_and_options_not_schemas():
    proc = run_python("train.py", "--help")
    assert proc.returncode == 0, proc.output
    groups = dict(line.strip().split(": ", 1) for line in proc.stdout.splitlines() if line.startswith("  "))
    assert "tiny-bert" in groups["model"].split(", ") and "minilm" in groups["model"].split(", ")
    assert groups["prompt"] == "bitfit, deep, none, shallow" and "slurm" in groups["hydra/launcher"]
    assert "schema" not in proc.stdout and "name_or_path" not in proc.stdout  # no schemas, no config dump
