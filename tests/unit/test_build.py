"""fpt.build.build, the one place a run is assembled: the Trainer trains what it builds, load_run/eval rebuild the
same model, and the modules around it import on their own (no hidden import cycles)."""
import subprocess
import sys

import pytest
import torch
from helpers import GROWTH_STAGES, ROOT, TINY_FPT, compose

from fpt.batching import collate
from fpt.build import build
from fpt.trainer import Trainer


def _tensors(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_trainer_trains_the_parts_build_assembles(tmp_path):
    cfg = compose("model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=6", "trainer.threads=1")
    parts = build(cfg, "cpu")
    trainer = Trainer(cfg, tmp_path)
    assert _tensors(parts.model).keys() == _tensors(trainer.model).keys()
    assert all(torch.equal(a, b) for a, b in zip(_tensors(parts.model).values(), _tensors(trainer.model).values()))
    assert parts.total_steps == trainer.total_steps == 6 and parts.micro_batch == trainer.micro_batch
    assert [p.shape for p in parts.trainable] == [p.shape for p in trainer.trainable]
    assert parts.stream.indices(3) == trainer.stream.indices(3)  # the same examples at every step
    assert len(parts.train_set) == len(trainer.train_set) and parts.optimizer is not trainer.optimizer


def test_optimizer_step_takes_exactly_grad_accum_micro_batches(tmp_path):
    """A benchmark's step is the run's step: fewer or more micro-batches than trainer.grad_accum is refused (its
    loss would be scaled wrong and DDP would not sync), before the optimizer moves."""
    cfg = compose("model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=6", "trainer.threads=1",
                  "trainer.grad_accum=2", "trainer.batch_size=4")
    trainer = Trainer(cfg, tmp_path)
    batches = [{k: v for k, v in collate([trainer.train_set[i] for i in (2 * j, 2 * j + 1)],
                                          trainer.pad_id).items()} for j in range(3)]
    before = _tensors(trainer.model)
    for given in (batches[:1], batches):
        with pytest.raises(ValueError, match="grad_accum=2"):
            trainer.optimizer_step(iter(given))
    trainer.optimizer.zero_grad(set_to_none=True)
    assert all(torch.equal(before[k], v) for k, v in _tensors(trainer.model).items())
    assert trainer.optimizer_step(iter(batches[:2])) > 0
    assert any(not torch.equal(before[k], v) for k, v in _tensors(trainer.model).items())


def test_without_training_build_gives_the_model_only(tmp_path):
    cfg = compose("model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=6")
    trained, model_only = build(cfg, "cpu"), build(cfg, "cpu", training=False)
    assert model_only.optimizer is None and model_only.lr_schedule is None and model_only.stream is None
    assert model_only.train_set is None and model_only.eval_set is None  # (no growth schedule to score for)
    assert all(torch.equal(a, b) for a, b in zip(_tensors(trained.model).values(),
                                                 _tensors(model_only.model).values()))  # seeded alike


def test_without_training_a_growth_schedule_ends_on_its_final_stage(tmp_path):
    cfg = compose(*TINY_FPT, "schedule=fpt", GROWTH_STAGES, f"output_root={tmp_path}")
    parts = build(cfg, "cpu", training=False, steps=12)
    assert len(parts.growth.stages) == 3 and parts.growth.stage_index == 2
    assert parts.eval_set is not None  # the FFN reduction's activation scores are computed on it
    assert len(parts.model.family.layer_stacks(parts.model.backbone)["encoder"]) == 4  # the full model


def test_build_model_of_an_encoder_needs_the_kind():
    from fpt.models import build_model, load_tokenizer
    cfg = compose("model=tiny-bert")
    with pytest.raises(ValueError, match="kind=fpt.task_kinds.get_kind"):
        build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), 2)


@pytest.mark.parametrize("module", ["fpt.tasks", "fpt.task_kinds", "fpt.task_kinds.encode", "fpt.models",
                                    "fpt.build", "fpt.trainer", "fpt.optim", "fpt.device", "fpt.evaluate_run"])
def test_module_imports_on_its_own(module):
    """Each module imports first in a fresh interpreter: no import cycle hides behind an import order."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
