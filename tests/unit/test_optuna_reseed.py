"""A resumed Optuna study (hydra_plugins/fpt_plugins/optuna_sweeper.py:resumed_sampler): a seeded sampler's next
suggestions are a function of (seed, trials so far), so re-running an interrupted search repeats itself, and they
are not the sampler's first suggestions again."""
import optuna
import pytest

from hydra_plugins.fpt_plugins.optuna_sweeper import resumed_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning", "error::FutureWarning")


def conf(seed):
    return {"_target_": "optuna.samplers.TPESampler", "seed": seed, "n_startup_trials": 10}


def suggestions(sampler, k=5):
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(k):
        trial = study.ask()
        out.append((trial.suggest_categorical("lr", [1e-3, 3e-3, 1e-2, 3e-2]), trial.suggest_int("P", 1, 1000)))
        study.tell(trial, 0.0)
    return out


def resumed(seed, n_trials):
    return suggestions(resumed_sampler(conf(seed), optuna.samplers.TPESampler(seed=seed), n_trials))


def test_seeded_resume_is_reproducible_and_depends_on_the_trial_count():
    assert resumed(7, 2) == resumed(7, 2)
    assert resumed(7, 2) != resumed(7, 3)
    assert resumed(7, 2) != resumed(8, 2)
    assert resumed(7, 2) != suggestions(optuna.samplers.TPESampler(seed=7))  # not the first suggestions repeated


def test_unseeded_resume_draws_fresh_randomness():
    assert resumed(None, 2) != resumed(None, 2)
