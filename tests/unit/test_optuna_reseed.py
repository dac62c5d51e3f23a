"""A resumed Optuna study (hydra_plugins/fpt_plugins/optuna_sweeper.py:reseed): a seeded sampler's next
suggestions are a function of (seed, trials so far), so re-running an interrupted search repeats itself."""
import optuna

from hydra_plugins.fpt_plugins.optuna_sweeper import reseed

optuna.logging.set_verbosity(optuna.logging.WARNING)


def suggestions(seed, n_trials, sampler_seed=0, k=5):
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=10)
    reseed(sampler, seed, n_trials)
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(k):
        trial = study.ask()
        out.append((trial.suggest_categorical("lr", [1e-3, 3e-3, 1e-2, 3e-2]), trial.suggest_int("P", 1, 1000)))
        study.tell(trial, 0.0)
    return out


def test_seeded_reseed_is_reproducible_and_depends_on_the_trial_count():
    assert suggestions(7, 2) == suggestions(7, 2, sampler_seed=123)  # the sampler's own state is replaced
    assert suggestions(7, 2) != suggestions(7, 3)
    assert suggestions(7, 2) != suggestions(8, 2)
    assert suggestions(7, 2) != suggestions(None, 2, sampler_seed=0)  # not the first suggestions repeated


def test_unseeded_reseed_draws_fresh_randomness():
    assert suggestions(None, 2) != suggestions(None, 2)
