"""Sweeps end to end with the tiny CPU model: a grid and its table, a failing job, an interrupted Optuna
search, a search without -m (the launcher / search configs, composed only: tests/unit/test_sweep_configs.py)."""
import csv
import json
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, run_python

TINY = ["model=tiny-bert", "trainer.max_steps=8", "trainer.eval_every=4", "trainer.batch_size=8",
        "trainer.eval_batch_size=50", "task.max_eval_samples=50", "trainer.threads=1", "trainer.progress=false"]


def run(*args, fault=None):
    """python <args> in the repo; fault="point:step" SIGKILLs the training there (fpt/trainer.py:_fault)."""
    return run_python(*args, fault=fault)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def job_folders(sweep: Path):
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def overrides(folder: Path) -> dict:
    return dict(x.split("=", 1) for x in yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()))


# --------------------------------------------------------------------------- 1. a 2 x 2 grid with a seeds axis
def test_grid_multirun_collects_into_grouped_table(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run("train.py", "-m", "hparams_search=tiny_grid", f"output_root={tmp_path}", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.output[-3000:]
    jobs = job_folders(sweep)
    assert len(jobs) == 8  # lr {1e-2, 3e-2} x prompt.length {2, 4} x seed {1, 2}

    proc = run("-m", "fpt.collect", str(sweep), "--plot")
    assert proc.returncode == 0, proc.output[-3000:]
    rows = read_csv(sweep / "results.csv")
    assert len(rows) == 4 and {"optim.lr", "prompt.length"} <= set(rows[0]) and "seed" not in rows[0]

    # the expected groups, built independently from each job's overrides and results.json
    groups = {}
    for folder in jobs:
        o, results = overrides(folder), json.loads((folder / "results.json").read_text())
        groups.setdefault((float(o["optim.lr"]), int(o["prompt.length"])), []).append((int(o["seed"]), results))
    for row in rows:
        members = groups[float(row["optim.lr"]), int(row["prompt.length"])]
        assert sorted(s for s, _ in members) == [1, 2] and row["n"] == "2" and row["seeds"] in ("1 2", "2 1")
        best = [r["best"]["accuracy"] for _, r in members]
        flops = [r["train_flops"] for _, r in members]
        assert float(row["best_mean"]) == pytest.approx(statistics.fmean(best))
        assert float(row["best_std"]) == pytest.approx(statistics.stdev(best), abs=1e-12)
        assert float(row["train_flops_mean"]) == pytest.approx(statistics.fmean(flops))
    assert len({row["train_flops_mean"] for row in rows}) > 1  # grouping is visible in the numbers
    table = proc.stdout.split("## Best")[0]
    assert table.count("| sample_sentiment | tiny-bert | deep | none |") == 4
    assert (sweep / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- 3. a failing job; a re-run
def test_failing_job_is_recorded_the_sweep_goes_on_and_a_rerun_skips_done_jobs(tmp_path):
    data = ROOT / "fpt" / "data" / "sample_sentiment"
    good_a, broken, good_b = tmp_path / "a", tmp_path / "broken", tmp_path / "b"
    shutil.copytree(data, good_a)
    shutil.copytree(data, good_b)
    broken.mkdir()
    shutil.copy(data / "train.tsv", broken / "train.tsv")  # no dev.tsv: this job raises at start
    sweep_args = ["train.py", "-m", *TINY, f"task.data_dir={good_a},{broken},{good_b}", f"output_root={tmp_path}"]

    first = tmp_path / "sweep1"
    proc = run(*sweep_args, f"hydra.sweep.dir={first}")
    assert proc.returncode != 0  # Hydra reports the failed job at the end ...
    assert "dev.tsv" in proc.stderr
    results = [json.loads((f / "results.json").read_text()) for f in job_folders(first)]
    assert [r["status"] for r in results] == ["completed", "failed", "completed"]  # ... after the others ran
    assert str(broken / "dev.tsv") in results[1]["error"] and "Traceback" in results[1]["traceback"]

    text = run("-m", "fpt.collect", str(first)).stdout
    problems = text.split("## Failed or unfinished jobs")[1]
    assert "| 1 | failed |" in problems and str(broken / "dev.tsv") in problems

    second = tmp_path / "sweep2"  # the same command later: Hydra picks a new ${now:} folder
    proc = run(*sweep_args, f"hydra.sweep.dir={second}")
    assert proc.returncode != 0 and proc.output.count("already completed") == 2
    jobs = job_folders(second)
    for k in (0, 2):
        assert not (jobs[k] / "results.json").exists()  # skipped, not trained again
        link = json.loads((jobs[k] / "run_link.json").read_text())
        assert Path(link["run_dir"]) == job_folders(first)[k].resolve()
    assert json.loads((jobs[1] / "results.json").read_text())["status"] == "failed"  # failed jobs are retried

    text = run("-m", "fpt.collect", str(second)).stdout
    assert "3 jobs: 2 completed, 1 failed or unfinished" in text


# --------------------------------------------------------------------------- 4. Optuna: interrupted, re-run
def test_interrupted_optuna_search_continues_to_n_trials_in_one_study(tmp_path):
    import optuna

    # 8 steps as epochs (0.08 x 800 rows / batch 8): the search trains by trainer.epochs (its trainer.max_steps is
    # null), and fixing the epochs axis next to a step count would be refused (docs/errors.md)
    tiny = [o for o in TINY if not o.startswith("trainer.max_steps=")]
    args = ["train.py", "-m", "hparams_search=optuna", *tiny, "trainer.epochs=0.08", f"output_root={tmp_path}"]
    proc = run(*args, "hydra.sweeper.n_trials=2")
    assert proc.returncode == 0, proc.output[-3000:]
    # interrupted: the next sweep is SIGKILLed in its first trial, after that trial's checkpoint of step 4
    proc = run(*args, "hydra.sweeper.n_trials=4", fault="after_step:6")
    assert proc.returncode == -9
    proc = run(*args, "hydra.sweeper.n_trials=4")  # the same command again
    assert proc.returncode == 0, proc.output[-3000:]
    assert "trial 2 was left running" in proc.output and "resuming the unfinished run" in proc.output

    sweep = tmp_path / "multirun" / "optuna" / "sample_sentiment-tiny-bert-deep-none"
    studies = optuna.get_all_study_summaries(f"sqlite:///{sweep}/optuna.db")
    assert [s.study_name for s in studies] == ["sample_sentiment-tiny-bert-deep-none"]
    trials = optuna.load_study(study_name=studies[0].study_name, storage=f"sqlite:///{sweep}/optuna.db").trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    assert [t.number for t in trials if t.state != optuna.trial.TrialState.COMPLETE] == [2]
    assert trials[2].user_attrs["fpt_interrupted"] and trials[3].params == trials[2].params  # tried again
    assert [f.name for f in job_folders(sweep)] == ["0", "1", "2", "3", "4"]  # job folder = trial number
    assert json.loads((sweep / "2" / "results.json").read_text())["steps"] == 8  # resumed there, finished


def test_a_search_without_multirun_fails_naming_it(tmp_path):
    proc = run("train.py", "hparams_search=tiny_grid", f"output_root={tmp_path}", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0 and "hparams_search=tiny_grid is a sweep: add -m" in proc.stderr


