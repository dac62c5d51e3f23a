"""Synchronous successive halving as a Hydra sweeper: `python train.py -m hparams_search=ptv2_halving ...`.

`sampler: grid` gives trial k the k-th configuration of the grid over `params` (itertools.product order, the last
key varying fastest; the first n_trials of it), the same on every run; any Optuna sampler proposes `n_trials`
configurations instead. Rung k trains the surviving trials to step r_k = min_resource * reduction_factor**k (the
last rung is trainer.max_steps) in ONE batch of jobs handed to the configured Hydra launcher (basic, joblib,
submitit). Each job keeps the full run's LR schedule and gets `trainer.stop_at_step=r_k`: it evaluates,
checkpoints and returns there. The best
floor(n_k / reduction_factor) trials of a rung (at least one) by the dev metric at r_k go on to the next rung
(ties: the lower trial number; a NaN metric is the worst value, not a failure); the others are PRUNED. A trial
runs in its own job folder `<sweep dir>/<trial number>` at every rung, so a promoted trial resumes its checkpoint
(no step is repeated) and a pruned one costs only the steps it ran.

The study (sqlite in the sweep folder by default) is the record: params, one intermediate value per rung
reached (step = the rung's stop step), state (RUNNING while in the race, PRUNED, COMPLETE, FAIL). Which trials
are in a rung is recomputed from these values, so re-running the same command after an interruption launches
only the jobs whose rung value is missing. A failed job (status FAIL, user attr `fpt_error`) leaves the race.
The sweep folder is locked while the sweep runs: a second sweep on the same study is refused at once, naming the
process holding it. `search.json` in the sweep folder summarises the search for `python -m fpt.collect`.

Optuna's SuccessiveHalvingPruner is asynchronous (a trial's verdict depends on which trials reported before
it); here a rung's promotion is decided once all its jobs have returned, so it does not depend on job order.
The configs were named `*_asha` until this release; `hparams_search=tiny_asha` / `ptv2_asha` still work (with a
notice) and keep their old sweep folders, so a search started under the old name continues.
"""
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from .study import (ERROR_ATTR, NAN_ATTR, SEARCH_FILE, check_same_space, first_line, grid_points, lock_study,
                    make_sampler, objective, open_storage, reported_value, search_space, trial_id)

log = logging.getLogger(__name__)

TRIAL_ATTR = "fpt_job_dir"  # user attr: the trial's job folder
# old config names (hparams_search=...), kept for one release: {old: new}
RENAMED = {"tiny_asha": "tiny_halving", "ptv2_asha": "ptv2_halving"}
SET_BY_SEARCH = ("trainer.stop_at_step", "trainer.resume", "trainer.skip_completed", "hydra.sweep.subdir")


@dataclass
class HalvingSweeperConf:
    _target_: str = "hydra_plugins.fpt_plugins.halving_sweeper.HalvingSweeper"
    direction: str = "maximize"           # of the task's selection metric (what train.py returns)
    study_name: Optional[str] = None
    storage: Optional[str] = None         # sqlite:///<sweep dir>/optuna.db keeps the search resumable
    sampler: Any = "grid"                 # "grid" (every combination of the choices in params) or an Optuna
                                          # sampler config: {_target_: optuna.samplers.TPESampler, seed: 1}
    n_trials: Optional[int] = None        # configurations in the first rung (null: the grid's size)
    reduction_factor: int = 3             # eta: 1/eta of a rung goes on to the next
    min_resource: int = 1                 # stop step of the first rung (steps)
    params: Dict[str, str] = field(default_factory=dict)  # key: choice(...) | interval(...) | tag(log, interval(...))


ConfigStore.instance().store(group="hydra/sweeper", name="fpt_halving", node=HalvingSweeperConf,
                             provider="fpt")


# --------------------------------------------------------------------------- pure pieces
def rung_steps(min_resource: int, reduction_factor: int, max_steps: int) -> list[int]:
    """[min, min*eta, min*eta^2, ...] below max_steps, then max_steps."""
    if reduction_factor < 2:
        raise ValueError(f"hydra.sweeper.reduction_factor={reduction_factor}: expected an integer >= 2")
    if not 1 <= min_resource <= max_steps:
        raise ValueError(f"hydra.sweeper.min_resource={min_resource}: expected a step in 1..trainer.max_steps "
                         f"({max_steps})")
    steps, r = [], min_resource
    while r < max_steps:
        steps.append(r)
        r *= reduction_factor
    return steps + [max_steps]


def rung_sizes(n_trials: int, reduction_factor: int, n_rungs: int) -> list[int]:
    """Trials per rung: n, n // eta, ... (at least one)."""
    sizes = [n_trials]
    for _ in range(n_rungs - 1):
        sizes.append(max(1, sizes[-1] // reduction_factor))
    return sizes


def promote(values: dict[int, float], keep: int, maximize: bool) -> list[int]:
    """The `keep` best trial numbers of a rung's values (its failed trials are not in `values`): a NaN value is
    the worst (after every number), ties go to the lower trial number."""
    def rank(nv):
        n, v = nv
        return (math.isnan(v), 0.0 if math.isnan(v) else (-v if maximize else v), n)
    return sorted(n for n, _ in sorted(values.items(), key=rank)[:keep])


def renamed_notice(config) -> str | None:
    """The notice for an old config name (hparams_search=tiny_asha), None otherwise."""
    choice = OmegaConf.select(config, "hydra.runtime.choices.hparams_search", default=None)
    if choice not in RENAMED:
        return None
    return (f"hparams_search={choice} is renamed hparams_search={RENAMED[choice]} (it is synchronous successive "
            f"halving, not ASHA); the old name still works, with its old sweep folder, until the next release")


# --------------------------------------------------------------------------- the sweeper
class HalvingSweeper(Sweeper):
    def __init__(self, direction="maximize", study_name=None, storage=None, sampler="grid", n_trials=None,
                 reduction_factor=3, min_resource=1, params=None):
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"hydra.sweeper.direction={direction!r}: expected maximize or minimize")
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.sampler_conf, self.n_trials = sampler, n_trials
        self.reduction_factor, self.min_resource = int(reduction_factor), int(min_resource)
        self.params = dict(params or {})
        self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        notice = renamed_notice(config)
        if notice:
            log.warning(notice)

    # ---------------------------------------------------------------- study
    def _study(self):
        import optuna
        self.optuna_storage = open_storage(self.storage)
        # grid: the trials are enqueued in the grid's order, the sampler draws nothing
        sampler = optuna.samplers.RandomSampler(seed=0) if self.sampler_conf == "grid" else \
            make_sampler(self.sampler_conf, "grid or an Optuna sampler config")
        return optuna.create_study(study_name=self.study_name, storage=self.optuna_storage, direction=self.direction,
                                   sampler=sampler, load_if_exists=True)

    def _size(self, space: dict) -> int:
        """Configurations in the first rung: n_trials, or the grid's size."""
        n = self.n_trials
        if n is None:
            if self.sampler_conf != "grid":
                raise ValueError("hydra.sweeper.n_trials is null: give the number of configurations (only "
                                 "sampler=grid knows its own)")
            n = len(grid_points(space))
        if n < 1:
            raise ValueError(f"hydra.sweeper.n_trials={n}: expected at least 1")
        if self.sampler_conf == "grid" and n > len(grid_points(space)):
            raise ValueError(f"hydra.sweeper.n_trials={n} is more than the grid's {len(grid_points(space))} "
                             f"configurations")
        return n

    def _first_rung(self, study, space: dict, n: int) -> list[int]:
        """The study's first n trials, creating those not yet created (grid: trial k = the grid's k-th point)."""
        check_same_space(study, space, str(self.storage))
        trials = study.get_trials(deepcopy=False)
        grid = grid_points(space) if self.sampler_conf == "grid" else None
        while len(trials) < n:
            if grid is not None:
                study.enqueue_trial(grid[len(trials)])
            trial = study.ask(fixed_distributions=space)
            trial.set_user_attr(TRIAL_ATTR, str(self.sweep_dir / str(trial.number)))
            trials = study.get_trials(deepcopy=False)
        return [t.number for t in trials[:n]]

    # ---------------------------------------------------------------- the search
    def sweep(self, arguments: List[str]) -> None:
        cfg = self.config
        max_steps = cfg.trainer.max_steps
        if not max_steps:
            raise ValueError("hparams_search with successive halving stops runs at steps: set trainer.max_steps "
                             "(trainer.epochs is not supported)")
        space, fixed = search_space(self.params, arguments)
        for name in space:
            if name in ("trainer.max_steps", "trainer.epochs", "trainer.stop_at_step"):
                raise ValueError(f"{name} cannot be searched: successive halving gives every trial the same "
                                 f"length (trainer.max_steps) and sets each rung's stop step")
        for line in fixed:
            if line.split("=")[0].lstrip("+~") in SET_BY_SEARCH:
                raise ValueError(f"{line}: the search sets {', '.join(SET_BY_SEARCH)} for each job")
        steps = rung_steps(self.min_resource, self.reduction_factor, int(max_steps))
        locks = lock_study(self.sweep_dir, self.storage)
        try:
            self._search(space, fixed, steps)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _search(self, space: dict, fixed: list[str], steps: list[int]) -> None:
        from optuna.trial import TrialState

        study = self._study()
        n_trials = self._size(space)
        plan = {"n_trials": n_trials, "rung_steps": steps}
        if study.user_attrs.get("fpt_plan", plan) != plan:
            raise ValueError(f"{self.storage}: study {study.study_name} was started with "
                             f"{study.user_attrs['fpt_plan']}, this command asks for {plan} (hydra.sweeper.n_trials "
                             f"/ min_resource / reduction_factor, trainer.max_steps); give another search its own "
                             f"hydra.sweep.dir")
        study.set_user_attr("fpt_plan", plan)
        members = self._first_rung(study, space, n_trials)
        sizes = rung_sizes(len(members), self.reduction_factor, len(steps))
        log.info("successive halving: %d configurations, rungs at steps %s with %s trials (eta=%d), study %s in %s",
                 len(members), steps, sizes, self.reduction_factor, study.study_name, self.storage)
        maximize = self.direction == "maximize"
        failed_all = None
        for k, stop in enumerate(steps):
            last = k == len(steps) - 1
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            todo = [n for n in members if stop not in trials[n].intermediate_values
                    and trials[n].state not in (TrialState.FAIL, TrialState.COMPLETE)]
            done = len(members) - len(todo)
            log.info("rung %d (stop step %d): %d trials, %d to run%s", k, stop, len(members), len(todo),
                     f", {done} recorded by an earlier run" if done else "")
            if todo:
                self._launch(study, trials, todo, stop, fixed, first=k == 0, last=last)
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            values = {n: trials[n].intermediate_values[stop] for n in members  # failed trials have none
                      if stop in trials[n].intermediate_values and trials[n].state != TrialState.FAIL}
            if not values:
                failed_all = k
                break
            if last:
                break
            kept = promote(values, sizes[k + 1], maximize)
            for number in members:
                if number not in kept and trials[number].state == TrialState.RUNNING:
                    study.tell(number, state=TrialState.PRUNED)
            log.info("rung %d: trials %s go on to step %d, %s pruned", k, kept, steps[k + 1],
                     [n for n in members if n not in kept])
            members = kept
        self._write_summary(study, steps, sizes)
        if failed_all is not None:
            raise RuntimeError(f"every job of rung {failed_all} failed: see the job folders' results.json under "
                               f"{self.sweep_dir}")
        best = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if best:  # max() keeps the first of equal values: ties go to the lower trial number
            top = max(best, key=lambda t: t.value if maximize else -t.value)
            log.info("best trial %d: %s = %s (%s)", top.number, self.direction, reported_value(top), top.params)

    def _launch(self, study, trials: dict, todo: list[int], stop: int, fixed: list[str], first: bool,
                last: bool) -> None:
        """One batch of jobs: trial n to step `stop` in <sweep dir>/n; record each result in the study."""
        from optuna.trial import TrialState

        batch = []
        for n in todo:
            folder = self.sweep_dir / str(n)
            # a new trial starts in its own fresh folder: it never continues or skips to another run of the same
            # config found elsewhere under output_root (e.g. a grid's); once its folder is used it resumes there
            own = (not first) or (folder / "run_state.json").exists()
            batch.append([*fixed, *(f"{k}={v}" for k, v in trials[n].params.items()), f"trainer.stop_at_step={stop}",
                          f"trainer.resume={str(own).lower()}", f"trainer.skip_completed={str(own).lower()}",
                          f"hydra.sweep.subdir={n}"])
        returns = self.launcher.launch(batch, initial_job_idx=min(todo))
        storage, maximize = self.optuna_storage, self.direction == "maximize"
        for n, ret in zip(todo, returns):
            folder, tid = self.sweep_dir / str(n), trial_id(self.optuna_storage, study, n)
            error = ret._return_value if ret.status != JobStatus.COMPLETED else None
            if error is None:
                results = _results(folder)
                if results.get("steps") != stop:
                    raise RuntimeError(f"{folder}/results.json: the job stopped at step {results.get('steps')}, "
                                       f"the search asked for step {stop}")
                try:
                    best, was_nan = objective(ret.return_value, maximize) if last else (None, False)
                except ValueError as err:
                    error = err
            if error is not None:  # (a job refused by a lock too: a failure, never a pruned trial)
                log.warning("trial %d failed at rung step %d: %s", n, stop, first_line(error))
                storage.set_trial_user_attr(tid, ERROR_ATTR, f"rung step {stop}: {first_line(error)}")
                study.tell(n, state=TrialState.FAIL)
                continue
            metric = results["metric"]
            value = results["final"].get(metric)  # NaN stays NaN: the rung's worst value
            storage.set_trial_intermediate_value(tid, stop, math.nan if value is None else float(value))
            storage.set_trial_user_attr(tid, "train_flops", results.get("train_flops"))
            if last:
                if was_nan:
                    log.warning("trial %d returned NaN: recorded as the worst value (%s)", n, best)
                    storage.set_trial_user_attr(tid, NAN_ATTR, True)
                study.tell(n, best)  # the run's best dev value: what train.py returns

    def _write_summary(self, study, steps: list[int], sizes: list[int]) -> None:
        from fpt.runs.checkpoint import write_json
        trials = {}
        for t in study.get_trials(deepcopy=False):
            trials[str(t.number)] = {"params": t.params, "state": t.state.name, "value": reported_value(t),
                                     "value_nan": bool(t.user_attrs.get(NAN_ATTR)),
                                     "rung_values": {str(s): None if math.isnan(v) else v
                                                     for s, v in sorted(t.intermediate_values.items())},
                                     "job_dir": t.user_attrs.get(TRIAL_ATTR), "error": t.user_attrs.get(ERROR_ATTR)}
        write_json(self.sweep_dir / SEARCH_FILE, {
            "kind": "successive_halving", "study": study.study_name, "storage": self.storage,
            "direction": self.direction, "reduction_factor": self.reduction_factor, "rung_steps": steps,
            "rung_sizes": sizes, "trials": trials})


def _results(folder: Path) -> dict:
    """A job's results.json (following run_link.json to the run it continued)."""
    link = folder / "run_link.json"
    run_dir = Path(json.loads(link.read_text())["run_dir"]) if link.is_file() else folder
    return json.loads((run_dir / "results.json").read_text())
