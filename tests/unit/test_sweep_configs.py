"""Sweep configs that need GPUs or Slurm compose as documented (docs/sweeps.md); a job claims a free GPU. The
sweeps themselves (`train.py -m`, Optuna, failing jobs): tests/integration/test_sweeps.py."""
import pytest
from helpers import compose_hydra as hydra_compose


def test_ptv2_grid_is_the_papers_search_space():
    cfg = hydra_compose("hparams_search=ptv2_grid", "task=rte", "model=roberta-large")
    params = cfg.hydra.sweeper.params
    assert params["optim.lr"] == "5e-3,7e-3,1e-2" and params["prompt.length"] == "4,8,16,32,64,128"
    assert params["trainer.epochs"] == "20,40,60,80,100,120" and str(params["seed"]) == "11"
    assert cfg.trainer.batch_size == 16 and cfg.trainer.max_steps is None and cfg.trainer.eval_strategy == "epoch"
    assert cfg.prompt.dropout == 0.1 and cfg.model.dropout == 0.1


def test_optuna_search_persists_its_study_under_the_sweep():
    cfg = hydra_compose("hparams_search=optuna", "task=rte", "model=roberta-large")
    s = cfg.hydra.sweeper
    assert s._target_ == "hydra_plugins.fpt_plugins.optuna_sweeper.OptunaSweeper"  # fpt's, on Optuna's public API
    assert s.sampler._target_ == "optuna.samplers.TPESampler" and s.sampler.seed == cfg.seed
    assert s.direction == "maximize" and s.study_name == "rte-roberta-large-deep-none"
    assert s.storage == "sqlite:///outputs/multirun/optuna/rte-roberta-large-deep-none/optuna.db"
    assert set(s.params) == {"optim.lr", "prompt.length", "trainer.epochs"}


def test_launcher_configs_compose():
    local = hydra_compose("hydra/launcher=local_gpus").hydra.launcher
    assert local._target_.endswith("JoblibLauncher") and local.n_jobs == 8
    slurm = hydra_compose("hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                          "hydra.launcher.tasks_per_node=4").hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.partition == "gpu"
    assert slurm.gpus_per_node == 4 and slurm.max_num_timeout > 0 and slurm.additional_parameters.requeue


def test_claim_gpu_skips_gpus_other_processes_hold(tmp_path, monkeypatch):
    import fcntl
    from fpt import distributed as dist

    monkeypatch.setattr(dist, "_claimed", {})
    held = open(tmp_path / "gpu0.lock", "a")  # another job holds GPU 0
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert dist.claim_gpu(n_gpus=3, lock_dir=str(tmp_path)) == 1
    assert dist.claim_gpu(n_gpus=3, lock_dir=str(tmp_path)) == 1  # a worker keeps its GPU for its next jobs
    monkeypatch.setattr(dist, "_claimed", {})
    assert dist.claim_gpu(n_gpus=3, lock_dir=str(tmp_path)) == 2  # GPU 1 is still held by the first claim
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        monkeypatch.setattr(dist, "_claimed", {})
        dist.claim_gpu(n_gpus=0, lock_dir=str(tmp_path))


@pytest.mark.parametrize("old, new, extra", [("tiny_asha", "tiny_halving", []),
                                             ("ptv2_asha", "ptv2_halving", ["task=rte", "model=roberta-large"])])
def test_old_halving_names_are_aliases_keeping_their_sweep_folder(old, new, extra):
    """hparams_search=*_asha (renamed *_halving) composes to the same search, in its old sweep folder and study, so
    a search started under the old name continues; the sweeper prints a notice (tests/unit/test_sweepers.py)."""
    from omegaconf import OmegaConf

    a, b = hydra_compose(f"hparams_search={old}", *extra), hydra_compose(f"hparams_search={new}", *extra)
    assert a.hydra.sweep.dir == b.hydra.sweep.dir.replace(new, old) != b.hydra.sweep.dir
    assert a.hydra.runtime.choices.hparams_search == old
    job_a, job_b = ({k: v for k, v in OmegaConf.to_container(c).items() if k != "hydra"} for c in (a, b))
    assert job_a == job_b
    sa, sb = (OmegaConf.to_container(c.hydra.sweeper, resolve=True) for c in (a, b))
    assert {**sa, "study_name": None, "storage": None} == {**sb, "study_name": None, "storage": None}
