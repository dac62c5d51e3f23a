"""`python train.py task=X --cfg job` composes for every task with a BERT-family and a T5 model.

Composition goes through Hydra's compose API in-process (what train.py sees); one real `--cfg job`
subprocess checks the command line itself (tests/integration/test_compose_cli.py). Every task also passes
its start-up checks (kind, labels, verbalizers, metric) with each model family that has a form for it, and
names the right model family when it does not.
"""
import hashlib
import itertools
import json

import pytest
from helpers import compose, compose_hydra
from omegaconf import OmegaConf

from fpt import CONF_DIR
from fpt.config import LRSchedule
from fpt.evaluation import check_metric
from fpt.runs.identity import fingerprint, run_identity
from fpt.task_kinds import get_kind

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
PAPER_TASKS = {"mnli", "qqp", "squad_v2", "record", "xsum", "copa", "wsc", "wic", "multirc", "boolq", "cb",
               "superglue-rte", "rte", "conll03", "conll04", "ontonotes", "conll05", "conll12", "squad"}
T5_ONLY = {"xsum"}  # generation has no BERT head
BERT_ONLY = {"beir"}  # retrieval has no text-to-text form; every other task has both forms


def test_every_task_of_both_papers_has_a_yaml():
    assert PAPER_TASKS <= set(TASKS)


@pytest.mark.parametrize("model", ["roberta-large", "t5-base"])
@pytest.mark.parametrize("task", TASKS)
def test_task_composes_and_passes_start_up_checks(task, model):
    cfg = compose(f"task={task}", f"model={model}")
    assert cfg.task.name == task and cfg.model.name == model
    seq2seq = cfg.model.family == "t5"
    check_metric(cfg.task)
    kind = get_kind(cfg.task)
    if not seq2seq and task in T5_ONLY:
        with pytest.raises(ValueError, match="use a T5 model"):
            kind.check_config(cfg.task, seq2seq)
    elif seq2seq and task in BERT_ONLY:
        with pytest.raises(ValueError, match="use a BERT-family model"):
            kind.check_config(cfg.task, seq2seq)
    else:
        kind.check_config(cfg.task, seq2seq)


# The MiniLM + SST-2 FPT study's arms as benchmarks/fpt_sst2.py passed them on the command line (its BASE, then
# `prompt=...`, `trainer.max_steps=750` and the arm's own overrides; the data folder under paths.data_root, as
# its default_data_root() / "GLUE" / "SST-2"), against the arm files conf/experiment/fpt_sst2/<arm>.yaml.
STUDY_BASE = ["model=minilm", "task=sst2", "task.data_dir=${paths.data_root}/GLUE/SST-2", "task.max_train_samples=8000",
              "task.max_length=64", "prompt.length=20", "optim.lr=1e-2", "model.dropout=0", "trainer.batch_size=32",
              "trainer.max_steps=750", "trainer.eval_every=150", "trainer.threads=1", "trainer.progress=false",
              "trainer.log_every=10", "trainer.group_by_length=false"]
SIXTY = "schedule.stages=[{layers:2,ffn_ratio:0.25,fraction:0.3},{layers:4,ffn_ratio:0.5,fraction:0.1},{}]"
STUDY_ARMS = {
    "shallow_vanilla": ("shallow", ["schedule=none"]),
    "shallow_fpt": ("shallow", ["schedule=fpt"]),
    "shallow_fpt60": ("shallow", ["schedule=fpt", SIXTY]),
    "deep_vanilla": ("deep", ["schedule=none"]),
    "deep_fpt_copy": ("deep", ["schedule=fpt", "schedule.new_layer_prefix=copy"]),
    "deep_fpt_init": ("deep", ["schedule=fpt", "schedule.new_layer_prefix=init"]),
    "deep_fpt_gate": ("deep", ["schedule=fpt", "schedule.new_layer_prefix=gate"]),
    "deep_fpt60": ("deep", ["schedule=fpt", SIXTY]),
    "deep_vanilla450": ("deep", ["schedule=none", "trainer.max_steps=450"]),
}


def _flat(cfg) -> dict:
    from omegaconf import OmegaConf

    from fpt.config import flatten
    return flatten(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize("arm", sorted(STUDY_ARMS))
def test_study_arm_file_composes_to_the_benchmark_scripts_overrides(arm):
    prompt, extra = STUDY_ARMS[arm]
    old = _flat(compose(*STUDY_BASE, f"prompt={prompt}", "trainer.max_steps=750", *extra, "seed=2"))
    new = _flat(compose(f"experiment=fpt_sst2/{arm}", "seed=2"))
    assert set(new) == set(old)
    assert {k: new[k] for k in new if new[k] != old[k]} == {}
    assert new["prompt.type"] == prompt and new["schedule.name"] == extra[0].split("=")[1]


def test_study_arms_are_every_file_and_run_one_job_each():
    """Every arm file is tested above; an arm does not sweep fpt_minilm_sst2's prompt x schedule under -m."""
    assert sorted(p.stem for p in (CONF_DIR / "experiment" / "fpt_sst2").glob("*.yaml")) == sorted(STUDY_ARMS)
    cfg = compose_hydra("experiment=fpt_sst2/deep_fpt_init")
    sweep = compose_hydra("experiment=fpt_minilm_sst2")
    assert not cfg.hydra.sweeper.params and set(sweep.hydra.sweeper.params) == {"schedule", "prompt"}


# The MiniLM learning table (benchmarks/README.md, "Learning on SST-2 and RTE") as the deleted benchmarks/learning.py
# passed it on the command line: "model=minilm", its SETUPS[task], PROMPTS[prompt], then batch 32, the seed and no
# progress bar (its hydra.run.dir / output_root only placed the run), plus the random batches the rows were made with;
# against the arm files conf/experiment/learning/<task>_<prompt>.yaml.
LEARNING_SETUPS = {
    "sst2": ["task=sst2", "task.data_dir=${paths.data_root}/GLUE/SST-2", "task.max_train_samples=8000",
             "task.max_length=64", "trainer.max_steps=750", "trainer.eval_every=125"],
    "rte": ["task=rte", "task.data_dir=${paths.data_root}/GLUE/RTE", "task.max_length=128", "trainer.max_steps=390",
            "trainer.eval_every=78"],
}
LEARNING_PROMPTS = {"none": ["prompt=none", "optim.lr=5e-5"],
                    "shallow": ["prompt=shallow", "prompt.length=20", "optim.lr=1e-2"],
                    "deep": ["prompt=deep", "prompt.length=20", "optim.lr=1e-2"]}
LEARNING_ARMS = sorted(f"{task}_{prompt}" for task in LEARNING_SETUPS for prompt in LEARNING_PROMPTS)


@pytest.mark.parametrize("arm", LEARNING_ARMS)
def test_learning_arm_file_composes_to_the_old_scripts_overrides(arm):
    task, prompt = arm.split("_")
    old = _flat(compose("model=minilm", *LEARNING_SETUPS[task], *LEARNING_PROMPTS[prompt], "trainer.batch_size=32",
                        "seed=42", "trainer.progress=false", "trainer.group_by_length=false"))
    new = _flat(compose(f"experiment=learning/{arm}", "seed=42"))
    assert set(new) == set(old)
    assert {k: new[k] for k in new if new[k] != old[k]} == {}
    assert (new["task.name"], new["prompt.type"], new["model.dropout"]) == (task, prompt, None)


def test_learning_arms_are_every_file_and_run_one_job_each():
    assert sorted(p.stem for p in (CONF_DIR / "experiment" / "learning").glob("*.yaml")) == LEARNING_ARMS
    for arm in LEARNING_ARMS:
        assert not compose_hydra(f"experiment=learning/{arm}").hydra.sweeper.params, arm


# ------------------------------------------------------------------ every shipped config passes the start-up check of
# options that do not apply (fpt.validate.check_applicable; docs/errors.md "Options that do not apply")
def _configs(group: str, recursive: bool = False) -> list[str]:
    folder = CONF_DIR / group
    return sorted(str(p.relative_to(folder))[:-5] for p in (folder.rglob if recursive else folder.glob)("*.yaml"))


def _sweep_jobs(params) -> list[list[str]]:
    """A sweeper's jobs as override lists: the config-group axes (prompt, schedule: what the applicability rules
    combine) crossed, and each value of a value axis (optim.lr, prompt.length: non-default or not, whichever value)
    in one job; comma lists and choice(...) are read, other axes (ranges, interpolations such as seed: ${seed}) stay
    at the composed value."""
    groups, values = [], []
    for key, value in (params or {}).items():
        text = str(value).strip()
        if text.startswith("choice(") and text.endswith(")"):
            listed = text[len("choice("):-1].split(",")
        elif "," in text and "(" not in text and "$" not in text:
            listed = text.split(",")
        else:
            continue
        (values if "." in key else groups).append([f"{key}={v.strip()}" for v in listed])
    jobs = [list(job) for job in itertools.product(*groups)]
    return jobs + [[*jobs[0], choice] for axis in values for choice in axis[1:]] if values else jobs


def test_sweep_jobs_cross_the_group_axes_and_cover_every_value():
    jobs = _sweep_jobs({"schedule": "none,fpt", "prompt": "shallow,deep", "prompt.length": "choice(2, 4, 8)",
                        "optim.lr": "1e-2,3e-2", "seed": "${seed}"})
    assert jobs == [["schedule=none", "prompt=shallow"], ["schedule=none", "prompt=deep"],
                    ["schedule=fpt", "prompt=shallow"], ["schedule=fpt", "prompt=deep"],
                    ["schedule=none", "prompt=shallow", "prompt.length=4"],
                    ["schedule=none", "prompt=shallow", "prompt.length=8"],
                    ["schedule=none", "prompt=shallow", "optim.lr=3e-2"]]


@pytest.mark.parametrize("group, name", [("experiment", e) for e in _configs("experiment", recursive=True)]
                         + [("hparams_search", h) for h in _configs("hparams_search")])
def test_every_experiment_and_search_job_passes_the_applicability_check(group, name):
    from fpt.validate import check_applicable
    jobs = _sweep_jobs(compose_hydra(f"{group}={name}").hydra.sweeper.get("params"))
    for job in jobs:
        check_applicable(compose(f"{group}={name}", *job))  # raises ConfigError naming the key
    assert jobs  # the cross product of no axes is one job: the file itself


def test_every_shipped_model_task_prompt_schedule_passes_the_applicability_check():
    """Every model x task x prompt x schedule file of conf/, assembled from the group nodes as composed (the model's
    with the recipe it picks: optim, trainer). The rules couple a task with the model only, and a schedule with the
    prompt and the model family, so every model x task x prompt (schedule=none) and every model x prompt x
    schedule (the default task) is checked; a growth schedule under prompt=none is the one combination refused."""
    from types import SimpleNamespace

    from fpt.validate import ConfigError, check_applicable
    nodes = {group: {name: compose(f"{group}={name}")[group] for name in _configs(group)}
             for group in ("task", "prompt", "schedule")}
    default = compose()
    checked = refused = 0
    for model in _configs("model"):
        base = compose(f"model={model}")
        combos = [(task, prompt, "none") for task in nodes["task"] for prompt in nodes["prompt"]]
        combos += [(None, prompt, schedule) for prompt in nodes["prompt"] for schedule in nodes["schedule"]]
        for task, prompt, schedule in combos:
            cfg = SimpleNamespace(model=base.model, optim=base.optim, trainer=base.trainer,
                                  task=nodes["task"][task] if task else default.task, prompt=nodes["prompt"][prompt],
                                  schedule=nodes["schedule"][schedule])
            if prompt in ("none", "bitfit") and cfg.schedule.stages:  # the backbone trains: nothing to grow
                with pytest.raises(ConfigError, match=f"schedule={schedule}: grows a frozen model"):
                    check_applicable(cfg)
                refused += 1
            else:
                check_applicable(cfg)
                checked += 1
    models, tasks, prompts, schedules = (len(_configs(g)) for g in ("model", "task", "prompt", "schedule"))
    assert checked + refused == models * prompts * (tasks + schedules) and refused == models * 2 * (schedules - 1)


def test_every_documented_train_command_passes_the_applicability_check():
    """Each `python train.py ...` of README.md and docs/*.md (test_docs_commands reads them) as composed with the
    first value of every swept override, and once with each further value of it: none is refused (but the
    refusals docs/errors.md shows)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from test_docs_commands import documented_commands, first_values

    from fpt.validate import check_applicable
    parser, checked = OverridesParser.create(), 0
    for cmd in [c for c in documented_commands() if c.kind == "train" and not c.where.startswith("docs/errors.md")]:
        base = first_values(cmd.args)
        jobs = [base]
        for i, text in enumerate(cmd.args):
            override = parser.parse_override(text)
            if override.is_sweep_override() and not override.is_interval_sweep():
                key = override.get_key_element()
                jobs += [[*base[:i], f"{key}={v}", *base[i + 1:]] for v in list(override.sweep_string_iterator())[1:]]
        for job in jobs:
            check_applicable(compose(*job))
            checked += 1
    assert checked > 50


# the composed config.yaml text and the run identity (data files left out) of a few configs, computed on main before
# the fixed choices became enums (fpt/config.py Choice): the enums write and hash exactly as the plain strings did
PINNED = {
    (): ("909f404ff97954ca", "9d045769f8e5f791"),
    ("model=tiny-bert", "prompt=deep", "schedule=fpt", "task=rte"): ("cf170279761ff1ab", "0de00549a5b7f6b0"),
    ("model=t5-base", "prompt=shallow", "optim=adafactor", "optim.schedule=exponential", "trainer.eval_strategy=epoch",
     "task=conll03"): ("ee95900f2e803e82", "df2c04ae2722af2b"),
    ("task=beir", "model=minilm", "prompt=deep", "task.retriever.arch=colbert", "task.retriever.search=torch"):
        ("3434d40ec87c704a", "6c3b77286bce6d8e"),
    ("model=tiny-bert", "prompt=deep", "schedule=fpt", "schedule.new_layer_prefix=gate", "schedule.keep_layers=bottom",
     "model.attn_implementation=eager"): ("09299000a3880f2f", "9860a3f99492c27b"),
    ("experiment=fpt_minilm_rte",): ("1033192413b2ae8b", "367409aa4ff0b35a"),
}


@pytest.mark.parametrize("overrides", list(PINNED), ids=lambda o: " ".join(o) or "defaults")
def test_config_yaml_and_run_identity_are_unchanged(overrides):
    cfg = compose(*overrides, "paths.data_root=/pinned")
    text = OmegaConf.to_yaml(cfg, resolve=True)
    identity = {k: v for k, v in run_identity(cfg).items() if not k.startswith("data.")}
    assert (hashlib.sha256(text.encode()).hexdigest()[:16], fingerprint(identity)) == PINNED[overrides]


def test_a_choice_reads_as_its_string():
    cfg = compose("model=tiny-bert", "prompt=deep", "optim.schedule=exponential")
    schedule = cfg.optim.schedule
    assert isinstance(schedule, LRSchedule) and schedule == "exponential" and "exponential" == schedule
    assert (str(schedule), f"{schedule}", f"{schedule!r}", f"{schedule:>12}") == \
        ("exponential", "exponential", "'exponential'", " exponential")
    assert {"exponential": 1}[schedule] == 1 and json.dumps(schedule) == '"exponential"'
    assert OmegaConf.to_container(cfg.optim)["schedule"] == "exponential"
