"""Recipes follow the model (conf/recipe/, docs/recipes.md): a plain `task=... model=t5-xl schedule=fpt` composes to
FPT's prompt-tuning recipe, field by field, for every FPT task, schedule and T5 size; schedule=none gives the same
recipe without stages (FPT's vanilla prompt-tuning baseline); BERT-family models compose to P-tuning v2's deep
recipe exactly as before; the command line and experiment files win over the recipe. The recipes are written out
here from the papers, not read back from the YAML. Last: the activation-score cache follows the task's inputs.
"""
import logging

import pytest
import torch
from helpers import compose, compose_hydra as hydra_cfg
from omegaconf import OmegaConf

from fpt import CONF_DIR
from fpt.growth import reduces_decoder, resolve_stages
from fpt.task_kinds import get_kind
from tools.flops_check import model_dims

# FPT (Huang et al., 2022): shallow prompt of 20 tokens, uniform init, Adafactor lr 0.3 constant, no relative step /
# parameter scaling / warm-up init, weight decay 1e-5, clip 1.0, dropout 0, batch 32, inputs of 492 tokens,
# evaluation every 500 steps.
FPT = {
    "prompt.type": "shallow", "prompt.length": 20, "prompt.init": "uniform", "prompt.init_range": None,
    "optim.name": "adafactor", "optim.lr": 0.3, "optim.schedule": "constant", "optim.warmup_steps": 0,
    "optim.warmup_ratio": 0.0, "optim.relative_step": False, "optim.scale_parameter": False,
    "optim.warmup_init": False, "optim.weight_decay": 1e-5, "optim.max_grad_norm": 1.0,
    "model.dropout": 0.0, "trainer.batch_size": 32, "trainer.grad_accum": 1, "trainer.eval_every": 500,
    "task.max_length": 492,
}
# T5-XL 15k steps (3k/3k/3k/6k), T5-large 30k (6k/6k/6k/12k); FPT ran only these two: small and base take large's.
STEPS = {"t5-xl": 15000, "t5-large": 30000, "t5-base": 30000, "t5-small": 30000}
FPT_STAGES = {15000: [3000, 3000, 3000, 6000], 30000: [6000, 6000, 6000, 12000]}
# FPT's target lengths (training targets and greedy decoding).
TARGET_LENGTH = {"mnli": 10, "qqp": 10, "squad_v2": 200, "record": 200, "xsum": 512}
FPT_SCHEDULES = ["fpt", "fpt_ld", "fpt_fr", "fpt_cr"]
PARTIAL_SCHEDULES = ["partial_ld", "partial_fr", "partial_cr"]

# P-tuning v2 (Liu et al., 2022) deep prompts, as composed before recipes existed: deep prefix of 20 tokens with
# N(0,1) init and no reparameterization, AdamW lr 1e-2 with linear decay, no warm-up, weight decay 0, clip 1.0,
# the backbone's own dropout, 300 steps, evaluation every 100, batch 32, the task's own input length.
PTV2 = {
    "prompt.type": "deep", "prompt.length": 20, "prompt.init": "normal", "prompt.projection": False,
    "prompt.dropout": 0.0, "optim.name": "adamw", "optim.lr": 1e-2, "optim.schedule": "linear",
    "optim.warmup_steps": 0, "optim.warmup_ratio": 0.0, "optim.weight_decay": 0.0, "optim.max_grad_norm": 1.0,
    "optim.betas": [0.9, 0.999], "model.dropout": None, "trainer.max_steps": 300, "trainer.batch_size": 32,
    "trainer.grad_accum": 1, "trainer.eval_every": 100, "trainer.eval_batch_size": 64,
}
T5_MODELS = sorted(STEPS)
MODEL_FILES = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
OTHER_MODELS = [m for m in MODEL_FILES if m not in STEPS]  # BERT family and the tiny test models


def fields(cfg, expected: dict) -> dict:
    return {key: OmegaConf.to_container(v) if OmegaConf.is_config(v := OmegaConf.select(cfg, key)) else v
            for key in expected}


def stages_of(cfg):
    decoder = reduces_decoder(cfg.schedule, get_kind(cfg.task).generates_text)
    return resolve_stages(cfg.schedule, model_dims(cfg.model), cfg.trainer.max_steps, decoder)


def stage_steps(cfg) -> list[int]:
    return [st.end - st.start for st in stages_of(cfg)]


def check_fpt(cfg, model: str, task: str | None = None):
    assert fields(cfg, FPT) == FPT
    assert cfg.model.name == model and cfg.trainer.max_steps == STEPS[model]
    if task is not None:
        assert cfg.task.name == task and cfg.task.max_target_length == TARGET_LENGTH[task]
        assert (cfg.task.generate_max_tokens or cfg.model.max_new_tokens) == TARGET_LENGTH[task]


# --------------------------------------------------------------------------- T5: FPT's recipe
@pytest.mark.parametrize("schedule", ["fpt", "none"])
@pytest.mark.parametrize("task", sorted(TARGET_LENGTH))
@pytest.mark.parametrize("model", ["t5-xl", "t5-large"])
def test_fpt_tasks_compose_to_fpts_recipe(model, task, schedule):
    cfg = compose(f"task={task}", f"model={model}", f"schedule={schedule}")
    check_fpt(cfg, model, task)
    if schedule == "none":  # vanilla prompt tuning: the same recipe, the full model throughout
        assert list(cfg.schedule.stages) == []
    else:
        assert stage_steps(cfg) == FPT_STAGES[STEPS[model]]


@pytest.mark.parametrize("schedule", ["none", "fpt"])
@pytest.mark.parametrize("model", T5_MODELS)
def test_every_t5_size_composes_to_fpts_recipe(model, schedule):
    cfg = compose(f"model={model}", f"schedule={schedule}")
    check_fpt(cfg, model)
    assert (stage_steps(cfg) if cfg.schedule.stages else []) == ([] if schedule == "none" else
                                                                 FPT_STAGES[STEPS[model]])


def test_every_schedule_composes_to_fpts_recipe():
    for schedule in [*FPT_SCHEDULES, *PARTIAL_SCHEDULES]:
        cfg = compose("model=t5-large", f"schedule={schedule}")
        check_fpt(cfg, "t5-large")
        assert cfg.schedule.name == schedule
        assert stage_steps(cfg) == ([30000] if schedule in PARTIAL_SCHEDULES else FPT_STAGES[30000])


def test_t5_large_stages_are_fpts_layers_and_widths():
    """t5-large with schedule=fpt: 6/12/18/24 encoder layers with 704/1408/2112/2816 FFN neurons."""
    cfg = compose("task=mnli", "model=t5-large", "schedule=fpt")
    stages = stages_of(cfg)
    assert [len(st.layers["encoder"]) for st in stages] == [6, 12, 18, 24]
    assert [st.ffn["encoder"] for st in stages] == [704, 1408, 2112, 2816]
    assert all(len(st.layers["decoder"]) == 24 for st in stages)  # MNLI's label words: the decoder stays whole


# --------------------------------------------------------------------------- BERT family: P-tuning v2's recipe
@pytest.mark.parametrize("model", OTHER_MODELS)
def test_other_models_compose_to_ptv2_deep_recipe(model):
    """Every model file without an FPT recipe (BERT family, the tiny test models, files added later) gets
    P-tuning v2's deep recipe, with and without an FPT schedule, with the task's own input length."""
    for schedule in ["none", "fpt"]:
        cfg = compose(f"model={model}", f"schedule={schedule}", "task=rte")
        assert cfg.model.name == model and fields(cfg, PTV2) == PTV2
        assert cfg.task.max_length == 128  # conf/task/rte.yaml's
    if cfg.model.family == "t5":
        assert model.startswith("tiny"), f"conf/model/{model}.yaml: a T5 model without FPT's recipe"


def test_default_run_is_unchanged():
    """`python train.py` (MiniLM on the bundled sentiment task) composes as before recipes existed, but for the
    demo task's own length (conf/trainer/demo.yaml: 150 steps, evaluated every 50)."""
    cfg = compose()
    demo = {**PTV2, "trainer.max_steps": 150, "trainer.eval_every": 50}
    assert fields(cfg, demo) == demo and cfg.model.name == "minilm" and cfg.task.max_length == 64
    assert cfg.schedule.name == "none"


# --------------------------------------------------------------------------- the command line wins
def test_command_line_group_choices_win_over_the_recipe():
    fpt_but_prompt = {k: v for k, v in FPT.items() if not k.startswith("prompt.")}
    ptv2_optim = {k: v for k, v in PTV2.items() if k.startswith("optim.")}
    deep = compose("model=t5-xl", "schedule=fpt", "prompt=deep")
    assert deep.prompt.type == "deep" and deep.prompt.init == "normal"  # deep's own init, not the recipe's uniform
    assert fields(deep, fpt_but_prompt) == fpt_but_prompt
    adamw = compose("model=t5-xl", "optim=adamw")
    assert fields(adamw, ptv2_optim) == ptv2_optim
    assert adamw.prompt.type == "shallow" and adamw.model.dropout == 0.0 and adamw.trainer.max_steps == 15000


def test_command_line_values_win_over_the_recipe():
    cfg = compose("model=t5-xl", "schedule=fpt", "optim.lr=0.1", "trainer.max_steps=1000", "model.dropout=0.1",
                  "task.max_length=256", "trainer.eval_every=50", "prompt.length=5")
    assert (cfg.optim.lr, cfg.trainer.max_steps, cfg.model.dropout) == (0.1, 1000, 0.1)
    assert (cfg.task.max_length, cfg.trainer.eval_every, cfg.prompt.length) == (256, 50, 5)
    assert cfg.optim.name == "adafactor" and cfg.optim.schedule == "constant"
    assert stage_steps(cfg) == [200, 200, 200, 400]


def test_recipe_can_be_picked_on_the_command_line():
    cfg = compose("model=t5-xl", "task=rte", "recipe=ptv2_deep")
    assert fields(cfg, PTV2) == PTV2 and cfg.task.max_length == 128


@pytest.mark.parametrize("model", OTHER_MODELS)
def test_fpt_recipe_on_any_model(model):
    """recipe=fpt_t5_large on any model file gives the whole recipe (dropout 0 included: a model file that
    listed model_schema in its defaults would reset it)."""
    cfg = compose(f"model={model}", "recipe=fpt_t5_large")
    assert fields(cfg, FPT) == FPT and cfg.trainer.max_steps == 30000


# --------------------------------------------------------------------------- experiment files
@pytest.mark.parametrize("model", ["t5-xl", "t5-large"])
def test_fpt_experiments_sweep_their_rows_on_the_recipe(model):
    experiment = f"fpt_{model.replace('-', '_')}"
    cfg = hydra_cfg(f"experiment={experiment}")
    assert dict(cfg.hydra.sweeper.params) == {"schedule": "none,fpt_ld,fpt_fr,fpt_cr"}  # four rows with -m
    for schedule in cfg.hydra.sweeper.params.schedule.split(","):
        row = compose(f"experiment={experiment}", f"schedule={schedule}")
        check_fpt(row, model, "mnli")
        assert row.schedule.name == schedule
        assert (stage_steps(row) if row.schedule.stages else []) == \
            ([] if schedule == "none" else FPT_STAGES[STEPS[model]])
        assert fields(row, FPT) == fields(compose("task=mnli", f"model={model}", f"schedule={schedule}"), FPT)
    partial = hydra_cfg(f"experiment=fpt_partial_{model.replace('-', '_')}")
    assert dict(partial.hydra.sweeper.params) == {"schedule": "partial_ld,partial_fr,partial_cr",
                                                  "schedule.size": "0.25,0.5,0.75"}
    check_fpt(compose(f"experiment=fpt_partial_{model.replace('-', '_')}", "schedule.size=0.25"), model, "mnli")


def test_experiment_values_win_over_the_recipe():
    """An experiment comes after the recipe: its group choices and values win (here over FPT's recipe)."""
    cfg = compose("experiment=minilm_sst2", "recipe=fpt_t5_large")
    assert cfg.prompt.type == "deep" and cfg.optim.lr == 1e-2 and cfg.optim.schedule == "linear"
    assert cfg.trainer.max_steps == 750 and cfg.trainer.eval_every == 125 and cfg.task.max_length == 64
    assert cfg.optim.name == "adafactor" and cfg.trainer.batch_size == 32  # the rest is the recipe's


# --------------------------------------------------------------------------- the activation-score cache
def _scores_setup(model_name, tmp_path, *extra):
    from fpt.build import build, features
    cfg = compose(f"model={model_name}", "prompt=shallow", "prompt.length=3", "task.max_eval_samples=16",
                  "schedule.num_score_examples=16", f"output_root={tmp_path}", "seed=0", *extra)
    parts = build(cfg, "cpu", training=False)  # the model a run of seed 0 starts from
    return cfg, parts.model, features(cfg, parts.kind, parts.tokenizer, parts.seq2seq, "eval")


@pytest.mark.parametrize("model_name, change, key, value", [
    ("tiny-t5", "task.template='review: {sentence}'", "template", "review: {sentence}"),
    ("tiny-t5", "model.target_prefix=label", "target_prefix", "label"),
    ("tiny-bert", "task.text_fields=[sentence,sentence]", "text_fields", ["sentence", "sentence"]),
])
def test_score_cache_is_not_reused_for_other_inputs(tmp_path, caplog, model_name, change, key, value):
    from fpt.scores import load_or_compute, load_scores
    cfg, model, features = _scores_setup(model_name, tmp_path)
    first, info = load_or_compute(cfg, model, features)
    assert info["computed"]
    other_cfg, _, other_features = _scores_setup(model_name, tmp_path, change)
    with caplog.at_level(logging.WARNING, logger="fpt"):
        second, info = load_or_compute(other_cfg, model, other_features)
    assert info["computed"], f"a cache made before {change} was reused"
    assert key in caplog.text and "inputs" in caplog.text  # the warning names what changed
    assert any(not torch.equal(first[s], second[s]) for s in first)  # other inputs, other scores
    assert load_scores(tmp_path / "scores" / f"sample_sentiment-{model_name}.safetensors")[1][key] == value
    again, info = load_or_compute(other_cfg, model, other_features)  # the same inputs: reused
    assert not info["computed"] and torch.equal(again["encoder"], second["encoder"])
