"""Ranks from a Slurm environment (the two-process DDP runs: tests/integration/test_ddp.py)."""
import os

import pytest


@pytest.mark.parametrize("env, expected", [
    ({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "1234",
      "SLURM_JOB_NODELIST": "gpu[07-08]"},
     {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu07", "MASTER_PORT": "21234"}),
    ({"SLURM_NTASKS": "4", "SLURM_PROCID": "0"}, {}),  # the batch script of a 4-task job is one process
    ({"WORLD_SIZE": "2", "RANK": "1", "SLURM_STEP_NUM_TASKS": "4"}, {"WORLD_SIZE": "2", "RANK": "1"}),  # torchrun wins
])
def test_ranks_from_slurm_environment(monkeypatch, env, expected):
    from fpt import distributed as dist

    for key in ["WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR",
                "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_JOB_ID",
                "SLURM_JOB_NODELIST"]:
        monkeypatch.setenv(key, "unset")  # recorded, so the variables set by the code are removed afterwards
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert dist.is_distributed() == (int(expected.get("WORLD_SIZE", "1")) > 1)
    for key, value in expected.items():
        assert os.environ[key] == value, key
    if not expected:
        assert "WORLD_SIZE" not in os.environ
    monkeypatch.undo()
    assert "SLURM_STEP_NUM_TASKS" not in os.environ and os.environ.get("WORLD_SIZE") != "4"


def test_first_host_of_a_slurm_node_list():
    from fpt.distributed import first_host

    assert first_host("gpu[07-09,12],cpu1") == "gpu07"
    assert first_host("node12,node13") == "node12"
    assert first_host("a100-[1-2]") == "a100-1"
