"""The Optuna sweeper, resumable: `hydra.sweeper.n_trials` is the size the study should reach.

Hydra's sweeper runs n_trials *new* trials per invocation. Here a re-run of the same command against the
same storage counts the study's finished trials and runs only the rest; a trial a killed sweep left
RUNNING is marked FAIL (user attr `fpt_interrupted`, not counted) and its parameters are enqueued, so the
next trial re-runs that configuration, and train.py resumes its checkpoint (same config, same fingerprint).
Assumes one sweep process drives a study at a time.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List

log = logging.getLogger(__name__)

try:  # the sweeps extra (pip install -e ".[sweeps]")
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # without it the class below is no Hydra plugin, and Hydra ignores it
    OptunaSweeper = object


def sqlite_folder(storage) -> Path | None:
    """The folder of a `sqlite:///path` storage (SQLite does not create it)."""
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        return Path(storage[len("sqlite:///"):]).parent
    return None


def _sampler_seed(config):
    from omegaconf import OmegaConf

    return OmegaConf.select(config, "hydra.sweeper.sampler.seed", default=None)


def reseed(sampler, seed, n_trials: int) -> None:
    """Give a resumed study's sampler fresh randomness: drawn from (seed, trials so far) when the sampler is
    seeded, so re-running the same command suggests the same next trials; from the OS otherwise."""
    import numpy as np
    from optuna.samplers import BaseSampler

    if seed is None:
        sampler.reseed_rng()
        return
    state = np.random.SeedSequence([int(seed), n_trials]).generate_state(1)[0]
    seen = set()

    def walk(obj):  # the sampler and the samplers it holds (TPE's random sampler for start-up trials, ...)
        if id(obj) in seen:
            return
        seen.add(id(obj))
        for value in vars(obj).values():
            if isinstance(value, np.random.RandomState):
                value.seed(state)
            elif isinstance(value, BaseSampler):
                walk(value)

    walk(sampler)


class ResumableOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: List[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        impl = self.sweeper
        folder = sqlite_folder(impl.storage)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        if impl.storage is None or impl.study_name is None:
            return impl.sweep(arguments)  # an in-memory study: nothing to resume
        names = [s.study_name for s in optuna.get_all_study_summaries(impl.storage)]
        if impl.study_name not in names:
            return impl.sweep(arguments)
        study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state.is_finished() and not t.user_attrs.get("fpt_interrupted") for t in trials)
        for t in trials:
            if t.state == TrialState.RUNNING:
                log.warning("trial %d was left running by an interrupted sweep: marked FAIL, its parameters %s "
                            "are tried again", t.number, t.params)
                study._storage.set_trial_user_attr(t._trial_id, "fpt_interrupted", True)
                study._storage.set_trial_state(t._trial_id, TrialState.FAIL)
                study.enqueue_trial(t.params)
        remaining = impl.n_trials - done
        log.info("study %s has %d finished trials of hydra.sweeper.n_trials=%d", impl.study_name, done, impl.n_trials)
        if remaining <= 0:
            return None
        trials = study.get_trials(deepcopy=False)
        waiting = [t.number for t in trials if t.state == TrialState.WAITING]
        impl.n_trials = remaining
        impl.job_idx = min(waiting) if waiting else len(trials)  # job folders are numbered as the trials
        if done:  # a seeded sampler would otherwise repeat its first suggestions
            reseed(impl.sampler, _sampler_seed(impl.config), len(trials))
        return impl.sweep(arguments)

