"""fpt/optim.py: every optim.name and optim.schedule the schema admits has its factory, and each builds."""
import pytest
import torch
from helpers import compose

from fpt.config import LRSchedule, Optimizer
from fpt.optim import LR_SCHEDULES, OPTIMIZERS, build_lr_schedule, build_optimizer


def test_every_choice_has_a_factory():
    assert set(OPTIMIZERS) == {o.value for o in Optimizer}
    assert set(LR_SCHEDULES) == {s.value for s in LRSchedule}


@pytest.mark.parametrize("name", [o.value for o in Optimizer])
@pytest.mark.parametrize("schedule", [s.value for s in LRSchedule])
def test_each_optimizer_and_schedule_builds_and_steps(name, schedule):
    cfg = compose(f"optim={name}", f"optim.schedule={schedule}", "optim.warmup_steps=2").optim
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = build_optimizer([param], cfg)
    assert type(optimizer).__name__.lower() == name
    lr_schedule = build_lr_schedule(optimizer, cfg, 10, batch_size=4, num_examples=8)
    assert lr_schedule.get_last_lr()[0] == 0.0  # warm-up starts at 0
    param.sum().backward()
    optimizer.step()
    lr_schedule.step()
    assert lr_schedule.get_last_lr()[0] == pytest.approx(cfg.lr / 2)  # step 1 of a 2-step warm-up
