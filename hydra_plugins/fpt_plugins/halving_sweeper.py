"""Synchronous successive halving as a Hydra sweeper: `python train.py -m hparams_search=ptv2_asha ...`.

An Optuna sampler proposes `n_trials` configurations (GridSampler over `params` when `sampler: grid`). Rung k
trains the surviving trials to step r_k = min_resource * reduction_factor**k (the last rung is trainer.max_steps)
in ONE batch of jobs handed to the configured Hydra launcher (basic, joblib, submitit). Each job keeps the full
run's LR schedule and gets `trainer.stop_at_step=r_k`: it evaluates, checkpoints and returns there. The best
floor(n_k / reduction_factor) trials of a rung (at least one) by the dev metric at r_k go on to the next rung;
the others are PRUNED. A trial runs in its own job folder `<sweep dir>/<trial number>` at every rung, so a
promoted trial resumes its checkpoint (no step is repeated) and a pruned one costs only the steps it ran.

The study (sqlite in the sweep folder by default) is the record: params, one intermediate value per rung
reached (step = the rung's stop step), state (RUNNING while in the race, PRUNED, COMPLETE, FAIL). Which trials
are in a rung is recomputed from these values, so re-running the same command after an interruption launches
only the jobs whose rung value is missing. A failed job (status FAIL) leaves the race. `search.json` in the
sweep folder summarises the search for `python -m fpt.collect`.

Optuna's SuccessiveHalvingPruner is asynchronous (a trial's verdict depends on which trials reported before
it); here a rung's promotion is decided once all its jobs have returned, so it does not depend on job order.
"""
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SEARCH_FILE = "search.json"
TRIAL_ATTR = "fpt_job_dir"  # user attr: the trial's job folder
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
    """The `keep` best trial numbers of a rung (ties: the lower number); a failed trial (NaN) never goes on."""
    ok = [(n, v) for n, v in values.items() if not math.isnan(v)]
    ranked = sorted(ok, key=lambda nv: ((-nv[1] if maximize else nv[1]), nv[0]))
    return sorted(n for n, _ in ranked[:keep])


def search_space(params: dict, arguments: list[str]):
    """({name: Optuna distribution}, [fixed overrides]) from the sweeper's params and the command line."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
    from optuna.distributions import BaseDistribution

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(lines):
        value = create_optuna_distribution_from_override(override)
        if isinstance(value, BaseDistribution):
            space[override.get_key_element()] = value
        else:
            fixed.append(override.input_line)
    return space, fixed


def grid_of(space: dict) -> dict:
    from optuna.distributions import CategoricalDistribution
    grid = {}
    for name, dist in space.items():
        if not isinstance(dist, CategoricalDistribution):
            raise ValueError(f"hydra.sweeper.sampler=grid: {name} is {dist}; a grid needs choice(...) values")
        grid[name] = list(dist.choices)
    return grid


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

    # ---------------------------------------------------------------- study
    def _sampler(self, space: dict):
        import optuna
        from hydra.utils import instantiate
        if self.sampler_conf == "grid":
            return _GridSampler(grid_of(space))
        if isinstance(self.sampler_conf, optuna.samplers.BaseSampler):  # Hydra instantiated the config
            return self.sampler_conf
        if isinstance(self.sampler_conf, (dict, DictConfig)):
            return instantiate(self.sampler_conf)
        raise ValueError(f"hydra.sweeper.sampler={self.sampler_conf!r}: expected grid or an Optuna sampler config "
                         f"({{_target_: optuna.samplers.TPESampler, seed: 1}})")

    def _study(self, space: dict):
        import optuna
        if isinstance(self.storage, str) and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(study_name=self.study_name, storage=self.storage, direction=self.direction,
                                   sampler=self._sampler(space), load_if_exists=True)

    def _size(self, space: dict) -> int:
        """Configurations in the first rung: n_trials, or the grid's size."""
        n = self.n_trials
        if n is None:
            if self.sampler_conf != "grid":
                raise ValueError("hydra.sweeper.n_trials is null: give the number of configurations (only "
                                 "sampler=grid knows its own)")
            n = math.prod(len(v) for v in grid_of(space).values())
        if n < 1:
            raise ValueError(f"hydra.sweeper.n_trials={n}: expected at least 1")
        if self.sampler_conf == "grid" and n > math.prod(len(v) for v in grid_of(space).values()):
            raise ValueError(f"hydra.sweeper.n_trials={n} is more than the grid's "
                             f"{math.prod(len(v) for v in grid_of(space).values())} configurations")
        return n

    def _first_rung(self, study, space: dict, n: int) -> list[int]:
        """The study's first n trials, asking the sampler for those not yet created."""
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if set(t.distributions) != set(space):
                raise ValueError(f"{self.storage}: trial {t.number} of study {study.study_name} searched "
                                 f"{sorted(t.distributions)}, this command searches {sorted(space)}; use another "
                                 f"hydra.sweep.dir (or hydra.sweeper.study_name) for another search")
        while len(trials) < n:
            trial = study.ask(fixed_distributions=space)
            trial.set_user_attr(TRIAL_ATTR, str(self.sweep_dir / str(trial.number)))
            trials = study.get_trials(deepcopy=False)
        return [t.number for t in trials[:n]]

    # ---------------------------------------------------------------- the search
    def sweep(self, arguments: List[str]) -> None:
        from optuna.trial import TrialState

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
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        study = self._study(space)
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
            values = {n: trials[n].intermediate_values.get(stop, math.nan) for n in members}
            if all(math.isnan(v) for v in values.values()):
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
        if best:
            top = max(best, key=lambda t: t.value if maximize else -t.value)
            log.info("best trial %d: %s = %.4f (%s)", top.number, self.direction, top.value, top.params)

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
        for n, ret in zip(todo, returns):
            folder = self.sweep_dir / str(n)
            if ret.status != JobStatus.COMPLETED:
                log.warning("trial %d failed at rung step %d: %s", n, stop, ret._return_value)
                study.tell(n, state=TrialState.FAIL)
                continue
            results = _results(folder)
            metric = results["metric"]
            value = results["final"].get(metric, math.nan)
            if results.get("steps") != stop:
                raise RuntimeError(f"{folder}/results.json: the job stopped at step {results.get('steps')}, the "
                                   f"search asked for step {stop}")
            study._storage.set_trial_intermediate_value(trials[n]._trial_id, stop, value)
            study._storage.set_trial_user_attr(trials[n]._trial_id, "train_flops", results.get("train_flops"))
            if last:
                study.tell(n, float(ret.return_value))  # the run's best dev value: what train.py returns

    def _write_summary(self, study, steps: list[int], sizes: list[int]) -> None:
        from fpt.checkpoint import write_json
        trials = {}
        for t in study.get_trials(deepcopy=False):
            trials[str(t.number)] = {"params": t.params, "state": t.state.name, "value": t.value,
                                     "rung_values": {str(s): v for s, v in sorted(t.intermediate_values.items())},
                                     "job_dir": t.user_attrs.get(TRIAL_ATTR)}
        write_json(self.sweep_dir / SEARCH_FILE, {
            "kind": "successive_halving", "study": study.study_name, "storage": self.storage,
            "direction": self.direction, "reduction_factor": self.reduction_factor, "rung_steps": steps,
            "rung_sizes": sizes, "trials": trials})


def _grid_sampler_class():
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        """Optuna's GridSampler, less its study.stop() once the grid is exhausted (that only works inside
        study.optimize, which this sweeper does not use: it tells trials their results itself)."""

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return Grid


def _GridSampler(grid: dict):
    return _grid_sampler_class()(grid)


def _results(folder: Path) -> dict:
    """A job's results.json (following run_link.json to the run it continued)."""
    link = folder / "run_link.json"
    run_dir = Path(json.loads(link.read_text())["run_dir"]) if link.is_file() else folder
    return json.loads((run_dir / "results.json").read_text())
