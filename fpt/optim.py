"""The optimizer (optim.name) and the learning-rate schedule (optim.schedule) of a run."""
from __future__ import annotations

import torch
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup
from transformers.optimization import Adafactor


def _adamw(params, cfg):
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas), eps=cfg.eps)


def _adafactor(params, cfg):
    return Adafactor(params, lr=cfg.lr, weight_decay=cfg.weight_decay, scale_parameter=cfg.scale_parameter,
                     relative_step=cfg.relative_step, warmup_init=cfg.warmup_init)


OPTIMIZERS = {"adamw": _adamw, "adafactor": _adafactor}  # optim.name (its choices: Optimizer, fpt/config.py)


def build_optimizer(params, cfg):
    """The optimizer of `cfg` (the optim config) over `params`."""
    return OPTIMIZERS[cfg.name](params, cfg)


class EpochDecay:
    """LR factor of step k (0-based): linear warm-up, then x gamma once per finished epoch.

    Step k belongs to the epoch of its first example, k * batch_size // num_examples (the batch stream is
    endless, see fpt.batching.BatchStream), so the whole of epoch e trains at lr * gamma**e, as P-tuning v2's
    ExponentialTrainer (ExponentialLR(0.95) stepped at the end of every epoch).
    """

    def __init__(self, gamma: float, batch_size: int, num_examples: int, warmup: int = 0):
        if not 0 < gamma <= 1:
            raise ValueError(f"optim.decay_per_epoch={gamma}: expected a factor in (0, 1]")
        self.gamma, self.batch_size, self.num_examples, self.warmup = gamma, batch_size, num_examples, warmup

    def __call__(self, step: int) -> float:
        warm = step / self.warmup if step < self.warmup else 1.0  # as transformers' linear warm-up
        return warm * self.gamma ** (step * self.batch_size // self.num_examples)


def _linear(optimizer, cfg, warmup, total_steps, batch_size, num_examples):
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def _constant(optimizer, cfg, warmup, total_steps, batch_size, num_examples):
    return get_constant_schedule_with_warmup(optimizer, warmup)


def _exponential(optimizer, cfg, warmup, total_steps, batch_size, num_examples):
    if not (batch_size and num_examples):
        raise ValueError("optim.schedule=exponential decays once per epoch: give batch_size and num_examples")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, EpochDecay(cfg.decay_per_epoch, batch_size, num_examples,
                                                                   warmup))


LR_SCHEDULES = {"linear": _linear, "constant": _constant, "exponential": _exponential}  # optim.schedule (LRSchedule)


def build_lr_schedule(optimizer, cfg, total_steps: int, batch_size: int | None = None,
                      num_examples: int | None = None):
    """The LR schedule of optim.schedule; `exponential` needs the epoch (batch_size, num_examples)."""
    warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total_steps)
    return LR_SCHEDULES[cfg.schedule](optimizer, cfg, warmup, total_steps, batch_size, num_examples)
