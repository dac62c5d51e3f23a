"""An Optuna sweeper on Optuna's public API (ask/tell), resumable: `python train.py -m hparams_search=optuna ...`.

Each batch of `n_jobs` trials is asked from the study (`study.ask(fixed_distributions=space)`), handed to the
configured Hydra launcher as one batch of jobs (job folder = trial number), and told its result: the job's return
value (train.py: the run's best dev value), the worst value for NaN (`fpt_value_nan`), or FAIL for a job that raised
(`fpt_error`). More than `max_failure_rate` x n_trials failures stop the sweep with the first failure.

`hydra.sweeper.n_trials` is the size the study should reach: a re-run of the same command against the same storage
counts the study's finished trials and runs only the rest; a trial a killed sweep left RUNNING is marked FAIL (user
attr `fpt_interrupted`, not counted) and its parameters are enqueued, so the next trial re-runs that configuration,
and train.py resumes its checkpoint (same config, same fingerprint). The sweep folder is locked while the sweep
runs: a second sweep on the same study is refused at once. `search.json` in the sweep folder summarises the study
for `python -m fpt.collect`; `optimization_results.yaml` holds the best parameters.
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING, DictConfig, OmegaConf

from .study import (ERROR_ATTR, NAN_ATTR, SEARCH_FILE, check_same_space, first_line, lock_study, make_sampler,
                    objective, open_storage, reported_value, search_space, trial_id)

log = logging.getLogger(__name__)

INTERRUPTED_ATTR = "fpt_interrupted"


# --------------------------------------------------------------------------- configs (hydra/sweeper=fpt_optuna)
@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10            # (other TPESampler arguments: +hydra.sweeper.sampler.<name>=...)


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.fpt_plugins.optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING                # hydra/sweeper/sampler=tpe|random, or {_target_: optuna.samplers..., ...}
    direction: str = "maximize"           # of what the job returns (train.py: the task's selection metric)
    study_name: Optional[str] = None
    storage: Optional[str] = None         # sqlite:///<sweep dir>/optuna.db keeps the search resumable
    n_trials: int = 20                    # finished trials the study should reach
    n_jobs: int = 1                       # trials asked and launched at once (one batch for the launcher)
    max_failure_rate: float = 0.0         # failed trials / n_trials above this stop the sweep
    params: Dict[str, str] = field(default_factory=dict)  # key: choice(...) | interval(...) | tag(log, interval(...))


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="fpt_optuna", node=OptunaSweeperConf, provider="fpt")
store.store(group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConf, provider="fpt")
store.store(group="hydra/sweeper/sampler", name="random", node=RandomSamplerConf, provider="fpt")


# --------------------------------------------------------------------------- resuming with a seeded sampler
def resumed_sampler(conf, sampler, n_trials: int):
    """The sampler for a resumed study, so that it does not repeat its first suggestions: a seeded sampler config
    ({_target_: ..., seed: s}) is built again with a seed drawn from (s, trials so far), so re-running the same
    command suggests the same next trials; an unseeded sampler draws fresh randomness (`reseed_rng()`)."""
    import numpy as np
    from hydra.utils import instantiate

    seed = conf.get("seed") if isinstance(conf, (dict, DictConfig)) else None
    if seed is None:
        sampler.reseed_rng()
        return sampler
    return instantiate(conf, seed=int(np.random.SeedSequence([int(seed), n_trials]).generate_state(1)[0]))


# --------------------------------------------------------------------------- the sweeper
class OptunaSweeper(Sweeper):
    def __init__(self, sampler, direction="maximize", study_name=None, storage=None, n_trials=20, n_jobs=1,
                 max_failure_rate=0.0, params=None):
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"hydra.sweeper.direction={direction!r}: expected maximize or minimize")
        if int(n_trials) < 1 or int(n_jobs) < 1:
            raise ValueError(f"hydra.sweeper.n_trials={n_trials}, n_jobs={n_jobs}: expected whole numbers >= 1")
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise ValueError(f"hydra.sweeper.max_failure_rate={max_failure_rate}: expected a share in [0, 1]")
        self.sampler, self.direction, self.study_name, self.storage = sampler, direction, study_name, storage
        self.n_trials, self.n_jobs, self.max_failure_rate = int(n_trials), int(n_jobs), float(max_failure_rate)
        self.params = dict(params or {})
        self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: List[str]) -> None:
        space, fixed = search_space(self.params, arguments)
        if not space:
            raise ValueError("hydra.sweeper.params and the command line give no searched value (choice(...), "
                             "interval(...), a,b,c)")
        locks = lock_study(self.sweep_dir, self.storage)
        try:
            self._sweep(space, fixed)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _sweep(self, space: dict, fixed: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        storage = open_storage(self.storage)
        sampler = make_sampler(self.sampler, "an Optuna sampler config: hydra/sweeper/sampler=tpe|random, or")
        study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=sampler,
                                    direction=self.direction, load_if_exists=True)
        check_same_space(study, space, str(self.storage))
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if t.state == TrialState.RUNNING:
                log.warning("trial %d was left running by an interrupted sweep: marked FAIL, its parameters %s "
                            "are tried again", t.number, t.params)
                storage.set_trial_user_attr(trial_id(storage, study, t.number), INTERRUPTED_ATTR, True)
                study.tell(t.number, state=TrialState.FAIL)
                study.enqueue_trial(t.params)
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state.is_finished() and not t.user_attrs.get(INTERRUPTED_ATTR) for t in trials)
        log.info("study %s (%s) has %d finished trials of hydra.sweeper.n_trials=%d", study.study_name,
                 self.storage, done, self.n_trials)
        if done:  # a seeded sampler would otherwise repeat its first suggestions
            conf = OmegaConf.select(self.config, "hydra.sweeper.sampler", default=None)
            sampler = resumed_sampler(OmegaConf.to_container(conf, resolve=True) if isinstance(conf, DictConfig)
                                      else conf, sampler, len(trials))
            study.sampler = sampler
        maximize, failures = self.direction == "maximize", []
        remaining = self.n_trials - done
        while remaining > 0:
            batch = [study.ask(fixed_distributions=space) for _ in range(min(self.n_jobs, remaining))]
            overrides = [[*(f"{k}={v}" for k, v in t.params.items()), *fixed] for t in batch]
            returns = self.launcher.launch(overrides, initial_job_idx=batch[0].number)  # job folder = trial number
            for trial, ret in zip(batch, returns):
                error = ret._return_value if ret.status != JobStatus.COMPLETED else None
                if error is None:
                    try:
                        value, was_nan = objective(ret.return_value, maximize)
                    except ValueError as err:
                        error = err
                if error is not None:
                    log.warning("trial %d failed: %s", trial.number, first_line(error))
                    trial.set_user_attr(ERROR_ATTR, first_line(error))
                    study.tell(trial, state=TrialState.FAIL)
                    failures.append(error)
                    continue
                if was_nan:
                    log.warning("trial %d returned NaN: recorded as the worst value (%s)", trial.number, value)
                    trial.set_user_attr(NAN_ATTR, True)
                study.tell(trial, value)
            remaining -= len(batch)
            self._write_summary(study)  # after every batch: an interrupted sweep leaves its summary
            if len(failures) / self.n_trials > self.max_failure_rate:
                raise RuntimeError(f"{len(failures)} of hydra.sweeper.n_trials={self.n_trials} trials failed, more "
                                   f"than hydra.sweeper.max_failure_rate={self.max_failure_rate}; the first: "
                                   f"{first_line(failures[0])}") from failures[0]
        best = self._write_summary(study)
        if best is not None:
            log.info("best trial %d: %s = %s (%s)", best.number, self.direction, reported_value(best), best.params)

    def _write_summary(self, study):
        """search.json and optimization_results.yaml; returns the best trial (None before one completed)."""
        from optuna.trial import TrialState

        from fpt.runs.checkpoint import write_json, write_text

        trials = {str(t.number): {"params": t.params, "state": t.state.name, "value": reported_value(t),
                                  "value_nan": bool(t.user_attrs.get(NAN_ATTR)),
                                  "interrupted": bool(t.user_attrs.get(INTERRUPTED_ATTR)),
                                  "error": t.user_attrs.get(ERROR_ATTR)}
                  for t in study.get_trials(deepcopy=False)}
        write_json(self.sweep_dir / SEARCH_FILE, {"kind": "optuna", "study": study.study_name, "storage": self.storage,
                                                  "direction": self.direction, "trials": trials})
        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if complete:
            best = study.best_trial
            write_text(self.sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(
                {"name": "optuna", "best_trial": best.number, "best_params": best.params,
                 "best_value": reported_value(best)}))
            return best
        return None
