"""fpt's two sweepers in-process, with a launcher that writes what a job would (hydra_plugins/fpt_plugins/):
the search space, the grid's order, NaN as the worst value, failures (a job refused by a lock), the study lock,
and fpt.collect's view of a search. No DeprecationWarning / FutureWarning from Optuna or SQLAlchemy is allowed.
(The sweeps with real training: tests/integration/test_halving_search.py, tests/integration/test_sweeps.py.)"""
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from fpt.collect import collect
from fpt.runs.folder import RunFolderError
from hydra_plugins.fpt_plugins.halving_sweeper import HalvingSweeper, promote, renamed_notice
from hydra_plugins.fpt_plugins.optuna_sweeper import OptunaSweeper
from hydra_plugins.fpt_plugins.study import StudyLockError, grid_points, objective, search_space

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning", "error::FutureWarning")
optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = {"optim.lr": "choice(1e-2, 3e-2)", "prompt.length": "choice(2, 4)"}


class Launcher:
    """Runs no training: job n (its folder <sweep>/n) writes config.yaml and results.json as train.py would, with
    the metric value(n, params, stop) at its stop step, or raises what value() returns as an exception."""

    def __init__(self, sweep_dir: Path, value):
        self.sweep_dir, self.value, self.launched = sweep_dir, value, []

    def launch(self, batch, initial_job_idx):
        returns = []
        for i, overrides in enumerate(batch):
            o = dict(line.split("=", 1) for line in overrides)
            n = int(o.get("hydra.sweep.subdir", initial_job_idx + i))
            stop = int(o.get("trainer.stop_at_step", 8))
            params = {"optim.lr": float(o["optim.lr"]), "prompt.length": int(o["prompt.length"])}
            self.launched.append((n, stop))
            value = self.value(n, params, stop)
            folder = self.sweep_dir / str(n)
            (folder / ".hydra").mkdir(parents=True, exist_ok=True)  # as Hydra makes it before the job runs
            (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
            (folder / "config.yaml").write_text(yaml.safe_dump(
                {"task": {"name": "rte", "metric": "accuracy"}, "model": {"name": "tiny-bert"},
                 "prompt": {"type": "deep", "length": params["prompt.length"]}, "schedule": {"name": "none"},
                 "optim": {"lr": params["optim.lr"]}, "seed": 1}))
            if isinstance(value, Exception):
                returns.append(JobReturn(status=JobStatus.FAILED, _return_value=value))
                continue
            results = {"status": "completed" if stop == 8 else "stopped", "metric": "accuracy", "steps": stop,
                       "total_steps": 8, "final": {"accuracy": value}, "best": {"accuracy": value},
                       "train_flops": 10.0 * stop}
            (folder / "results.json").write_text(json.dumps(results))
            returns.append(JobReturn(status=JobStatus.COMPLETED, _return_value=value))
        return returns


def halving(folder: Path, value, **kwargs) -> tuple[HalvingSweeper, Launcher]:
    sweeper = HalvingSweeper(study_name="s", storage=f"sqlite:///{folder}/optuna.db", reduction_factor=2,
                             min_resource=2, params=PARAMS, **kwargs)
    sweeper.config = OmegaConf.create({"trainer": {"max_steps": 8}})
    sweeper.sweep_dir, sweeper.launcher = folder, Launcher(folder, value)
    return sweeper, sweeper.launcher


def optuna_sweeper(folder: Path, value, n_trials=4, **kwargs) -> tuple[OptunaSweeper, Launcher]:
    sweeper = OptunaSweeper(sampler=optuna.samplers.RandomSampler(seed=1), study_name="s", n_trials=n_trials,
                            storage=f"sqlite:///{folder}/optuna.db", params=PARAMS, **kwargs)
    sweeper.config = OmegaConf.create({"hydra": {"sweeper": {"sampler": {"seed": 1}}}})
    sweeper.sweep_dir, sweeper.launcher = folder, Launcher(folder, value)
    return sweeper, sweeper.launcher


def trials_of(folder: Path):
    return optuna.load_study(study_name="s", storage=f"sqlite:///{folder}/optuna.db").trials


# --------------------------------------------------------------------------- the search space
def test_search_space_from_hydra_sweep_syntax():
    space, fixed = search_space({"a": "choice(1, 2)", "b": "interval(0.1, 1.0)", "c": "tag(log, int(interval(1, 64)))",
                                 "d": "range(1, 7, 2)", "e": "x,y", "f": "5"}, ["g=1", "a=3", "h=choice(true, false)"])
    assert space["b"] == FloatDistribution(0.1, 1.0) and space["c"] == IntDistribution(1, 64, log=True)
    assert space["d"] == CategoricalDistribution([1, 3, 5])  # Hydra's range: the stop is excluded
    assert space["e"] == CategoricalDistribution(["x", "y"]) and space["h"] == CategoricalDistribution([True, False])
    assert "a" not in space and fixed == ["f=5", "g=1", "a=3"]  # a command-line value replaces the file's search


def test_grid_points_follow_the_grid_order_last_key_fastest():
    space, _ = search_space(PARAMS, [])
    assert grid_points(space) == [{"optim.lr": 0.01, "prompt.length": 2}, {"optim.lr": 0.01, "prompt.length": 4},
                                  {"optim.lr": 0.03, "prompt.length": 2}, {"optim.lr": 0.03, "prompt.length": 4}]
    with pytest.raises(ValueError, match="a grid needs choice"):
        grid_points(search_space({"x": "interval(0, 1)"}, [])[0])


def test_nan_is_the_worst_value():
    assert objective(float("nan"), maximize=True) == (-math.inf, True)
    assert objective(float("nan"), maximize=False) == (math.inf, True)
    assert objective(0.5, maximize=True) == (0.5, False)
    with pytest.raises(ValueError, match="the job returned None; expected a number"):
        objective(None, maximize=True)
    nan = math.nan
    assert promote({0: nan, 1: 0.6, 2: nan, 3: 0.1}, 3, maximize=True) == [0, 1, 3]  # NaN after every number
    assert promote({0: nan, 1: 0.6, 2: nan, 3: 0.1}, 3, maximize=False) == [0, 1, 3]
    assert promote({2: nan, 1: nan, 0: nan}, 1, maximize=True) == [0]  # ties: the lower trial number


# --------------------------------------------------------------------------- successive halving
def test_grid_trials_are_the_grids_order_on_every_run(tmp_path):
    """Trial k is the grid's k-th point (Optuna's GridSampler picks a random unvisited point), so equal values
    (ties go to the lower trial number) give the same best trial on identical runs."""
    expected = grid_points(search_space(PARAMS, [])[0])
    for run in ("a", "b", "c"):
        sweeper, _ = halving(tmp_path / run, lambda n, p, stop: 0.5)
        sweeper.sweep([])
        trials = trials_of(tmp_path / run)
        assert [t.params for t in trials] == expected
        assert [t.number for t in trials if t.state == TrialState.COMPLETE] == [0]  # all tied: trial 0 wins


def test_halving_nan_is_the_worst_value_not_a_failure(tmp_path):
    values = {0: math.nan, 1: 0.6, 2: math.nan, 3: math.nan}
    sweeper, launcher = halving(tmp_path, lambda n, p, stop: values[n])
    sweeper.sweep([])
    assert launcher.launched == [(0, 2), (1, 2), (2, 2), (3, 2), (0, 4), (1, 4), (1, 8)]  # trial 0 went on
    states = {t.number: t.state for t in trials_of(tmp_path)}
    assert states == {0: TrialState.PRUNED, 1: TrialState.COMPLETE, 2: TrialState.PRUNED, 3: TrialState.PRUNED}
    assert math.isnan(trials_of(tmp_path)[0].intermediate_values[4])
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["trials"]["0"]["rung_values"] == {"2": None, "4": None} and search["trials"]["1"]["value"] == 0.6
    assert "| 0 | 0.01 | 2 | PRUNED | 1/2 | 4 | accuracy | nan |" in collect([tmp_path])


def test_halving_all_nan_completes_with_the_worst_value(tmp_path):
    sweeper, _ = halving(tmp_path, lambda n, p, stop: math.nan)
    sweeper.sweep([])  # (was: "every job of rung 0 failed")
    trials = trials_of(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE] + [TrialState.PRUNED] * 3
    assert trials[0].value == -math.inf and trials[0].user_attrs["fpt_value_nan"]
    search = json.loads((tmp_path / "search.json").read_text())["trials"]["0"]
    assert search["value"] is None and search["value_nan"] and search["state"] == "COMPLETE"


def test_a_job_refused_by_a_lock_is_a_failure_in_the_study_and_in_collect(tmp_path):
    def value(n, params, stop):
        if n == 2:  # its folder holds another process's run (its results.json is written, as that run's)
            (tmp_path / "2").mkdir(exist_ok=True)
            (tmp_path / "2" / "results.json").write_text(json.dumps(
                {"status": "stopped", "metric": "accuracy", "steps": 2, "final": {"accuracy": 0.9}}))
            return RunFolderError(f"{tmp_path / '2'} is in use by another run: pid 1 on host h")
        return 0.5 + n / 100

    sweeper, _ = halving(tmp_path, value)
    sweeper.sweep([])
    trial = trials_of(tmp_path)[2]
    assert trial.state == TrialState.FAIL and "is in use by another run: pid 1" in trial.user_attrs["fpt_error"]
    text = collect([tmp_path])
    assert "4 jobs: 1 completed, 2 stopped at a search rung, 1 failed or unfinished" in text
    problems = text.split("## Failed or unfinished jobs")[1]
    assert "| 2 | failed |" in problems and "is in use by another run: pid 1 on host h" in problems
    assert "| 2 | 0.03 | 2 | FAIL |" in text


def hold_lock(folder: Path):
    """Another process holding the study folder's lock (as a running sweep does)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom fpt.runs.folder import FolderLock\n"
                             f"FolderLock({str(folder)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("make", [halving, optuna_sweeper])
def test_a_second_sweep_on_a_study_is_refused_at_once_naming_the_holder(tmp_path, make):
    holder = hold_lock(tmp_path)
    try:
        sweeper, launcher = make(tmp_path, lambda n, p, stop: 0.5)
        # Hydra's plugin scan may import hydra_plugins.fpt_plugins.study a second time (another class object of
        # the same name), so the error is matched by its class name and message
        with pytest.raises(Exception, match=f"{tmp_path} is in use by another sweep: pid {holder.pid} on host "
                                            f"{socket.gethostname()}") as refused:
            sweeper.sweep([])
        assert type(refused.value).__name__ == StudyLockError.__name__
        assert launcher.launched == [] and not (tmp_path / "optuna.db").exists()
    finally:
        holder.kill()
        holder.wait()
    sweeper.sweep([])  # once the other sweep is gone, the same command runs
    assert len(launcher.launched) > 0


# --------------------------------------------------------------------------- the Optuna sweeper
def test_optuna_sweeper_nan_is_the_worst_value_and_a_failure_is_recorded(tmp_path):
    def value(n, params, stop):
        return {0: math.nan, 1: RuntimeError("CUDA out of memory\nmore"), 2: 0.4}.get(n, 0.3)

    sweeper, launcher = optuna_sweeper(tmp_path, value, n_trials=4, max_failure_rate=0.5)
    sweeper.sweep([])
    assert [n for n, _ in launcher.launched] == [0, 1, 2, 3]  # job folder = trial number
    trials = trials_of(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert trials[0].value == -math.inf and trials[0].user_attrs["fpt_value_nan"]
    assert trials[1].user_attrs["fpt_error"] == "CUDA out of memory"
    assert optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db").best_trial.number == 2
    search = json.loads((tmp_path / "search.json").read_text())
    assert search["kind"] == "optuna" and search["trials"]["0"]["value"] is None
    assert "| 1 | failed |" in collect([tmp_path]).split("## Failed or unfinished jobs")[1]
    assert yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())["best_trial"] == 2


def test_optuna_sweeper_stops_above_the_failure_rate(tmp_path):
    sweeper, launcher = optuna_sweeper(tmp_path, lambda n, p, stop: ValueError("bad"), n_trials=4,
                                       max_failure_rate=0.0)
    with pytest.raises(RuntimeError, match="1 of hydra.sweeper.n_trials=4 trials failed, .* the first: bad"):
        sweeper.sweep([])
    assert len(launcher.launched) == 1


# --------------------------------------------------------------------------- the old names
def test_old_config_names_print_a_notice():
    assert "hparams_search=tiny_asha is renamed hparams_search=tiny_halving" in renamed_notice(
        OmegaConf.create({"hydra": {"runtime": {"choices": {"hparams_search": "tiny_asha"}}}}))
    assert renamed_notice(OmegaConf.create({"hydra": {"runtime": {"choices": {"hparams_search": "tiny_halving"}}}})) \
        is None
