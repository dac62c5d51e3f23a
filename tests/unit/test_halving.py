"""Successive halving in-process (hparams_search=*_halving, hydra_plugins/fpt_plugins/halving_sweeper.py): the
rungs and the promotion rule, the trainer's stop step (refused outside the run, not part of the run identity), and
the paper's search space (the sweeps with real training: tests/integration/test_halving_search.py)."""
import math

import pytest
from helpers import HALVING_TINY as RUN, compose, compose_hydra, halving_run as train

from fpt.runs.identity import fingerprint, run_identity
from hydra_plugins.fpt_plugins.halving_sweeper import promote, rung_sizes, rung_steps


# --------------------------------------------------------------------------- the trainer's stop step
def test_stop_step_outside_the_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"trainer.stop_at_step=9: expected a step in 1..8"):
        train(tmp_path / "run", "trainer.stop_at_step=9")


def test_stop_step_is_not_part_of_the_run_identity():
    a = compose(*RUN, "trainer.stop_at_step=2")
    b = compose(*RUN, "trainer.stop_at_step=6")
    assert fingerprint(run_identity(a)) == fingerprint(run_identity(b))


# --------------------------------------------------------------------------- the rule
def test_rungs_sizes_and_promotion_rule():
    assert rung_steps(2, 2, 8) == [2, 4, 8]
    assert rung_steps(20, 3, 180) == [20, 60, 180]
    assert rung_steps(20, 3, 200) == [20, 60, 180, 200]
    assert rung_sizes(9, 3, 3) == [9, 3, 1] and rung_sizes(4, 2, 3) == [4, 2, 1] and rung_sizes(2, 3, 3) == [2, 1, 1]
    values = {0: 0.5, 1: 0.9, 2: math.nan, 3: 0.7, 4: 0.7}
    assert promote(values, 2, maximize=True) == [1, 3]        # ties: the lower trial number
    assert promote(values, 2, maximize=False) == [0, 3]
    assert promote({0: math.nan, 1: 0.1}, 1, maximize=True) == [1]  # NaN is the worst value ...
    assert promote({0: math.nan, 1: 0.1}, 2, maximize=True) == [0, 1]  # ... not a failure (failed: not in values)
    with pytest.raises(ValueError, match="min_resource=9"):
        rung_steps(9, 3, 8)


# --------------------------------------------------------------------------- the paper's search space
def test_ptv2_halving_composes_to_the_papers_space_with_its_study_under_the_sweep():
    cfg = compose_hydra("hparams_search=ptv2_halving", "task=rte", "model=roberta-large", "hydra/launcher=slurm")
    s = cfg.hydra.sweeper
    assert s._target_ == "hydra_plugins.fpt_plugins.halving_sweeper.HalvingSweeper"
    assert s.storage == "sqlite:///outputs/multirun/ptv2_halving/rte-roberta-large-deep-none/optuna.db"
    assert s.sampler == "grid" and s.reduction_factor == 3 and s.params["optim.lr"] == "choice(5e-3, 7e-3, 1e-2)"
    assert rung_steps(s.min_resource, s.reduction_factor, cfg.trainer.max_steps) == [1000, 3000, 9000]
    assert cfg.trainer.stop_at_step is None and cfg.hydra.launcher._target_.endswith("SlurmLauncher")
