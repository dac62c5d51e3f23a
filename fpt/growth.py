"""Growth schedules: which part of the model a run trains at each step.

A schedule is a list of stages (conf/schedule/*.yaml). With no stages the full model trains for the
whole run (vanilla prompt tuning); that is all this module does until FPT's partial models land.
"""
from __future__ import annotations


class Growth:
    def __init__(self, stages):
        self.stages = stages
        self.stage_index = 0

    @classmethod
    def from_config(cls, cfg, model, total_steps, train_set, eval_set, run_dir):
        if cfg.schedule.stages:
            raise NotImplementedError(f"schedule={cfg.schedule.name}: growth stages are not implemented yet")
        return cls([])

    def enter(self, step: int) -> bool:
        """Switch to the stage that `step` belongs to; True if the model changed."""
        return False

    def current_shape(self, dims: dict) -> dict:
        """Layers and FFN width run now, for FLOP counting."""
        return {}
