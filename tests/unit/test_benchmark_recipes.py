"""The benchmarks' recipes are experiment files (conf/experiment/{search,tasks_real,group_by_length,fpt_transfer}/):
each composes to the config its script built from Hydra overrides before (the lists below, as the scripts passed
them), field by field, the `hydra.sweeper` node included. The scripts' own command builders compose too."""
import importlib.util
import os

import pytest
from helpers import ROOT, compose_hydra
from omegaconf import OmegaConf


def _flat(cfg) -> dict:
    from fpt.config import flatten
    cfg = OmegaConf.to_container(cfg, resolve=False)
    sweeper = cfg.pop("hydra")["sweeper"]
    return {**flatten(cfg), **{f"hydra.sweeper.{k}": v for k, v in flatten(sweeper).items()}}


def _same(old: list[str], new: list[str]) -> None:
    old, new = _flat(compose_hydra(*old)), _flat(compose_hydra(*new))
    assert set(new) == set(old)
    assert {k: (old[k], new[k]) for k in new if new[k] != old[k]} == {}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    environ = dict(os.environ)
    try:
        spec.loader.exec_module(module)
    finally:  # a script may set its environment when imported (group_by_length.py: offline hub)
        os.environ.clear()
        os.environ.update(environ)
    return module


# benchmarks/search.py's BASE, given to both sweeps (the search after hparams_search=ptv2_halving)
SEARCH_BASE = ["model=minilm", "task=sst2", "task.data_dir=${paths.data_root}/GLUE/SST-2",
               "task.max_train_samples=2000", "task.max_length=64", "prompt=deep", "trainer.batch_size=16",
               "trainer.max_steps=90", "trainer.eval_every=30", "trainer.threads=1", "trainer.progress=false",
               "prompt.dropout=0.1", "model.dropout=0.1", "model.attention_dropout=0.1", "optim.weight_decay=0.0",
               "optim.max_grad_norm=1.0", "optim.warmup_steps=0"]


def test_search_grid_and_halving_files_compose_to_the_old_sweeps():
    one = ["optim.lr=1e-2", "prompt.length=16"]  # one job of the sweep (compose takes no sweep axes)
    _same([*SEARCH_BASE, *one], ["experiment=search/grid", *one])
    _same(["hparams_search=ptv2_halving", *SEARCH_BASE, *one, "hydra.sweeper.min_resource=10"],
          ["experiment=search/halving", *one])
    cfg = compose_hydra("experiment=search/halving")
    assert cfg.hydra.sweeper.min_resource == 10 and cfg.trainer.max_steps == 90  # the experiment wins over the search


def test_search_commands_use_the_experiment_files(tmp_path):
    commands = _script("search").commands(tmp_path)
    assert "experiment=search/grid" in commands["grid"] and "experiment=search/halving" in commands["search"]


TASKS_REAL = {
    "conll03": ["task=conll03", "task.data_dir=/data/conll2003", "task.max_train_samples=3000", "prompt.length=20",
                "optim.lr=2e-2", "trainer.batch_size=32", "trainer.max_steps=150", "trainer.eval_every=75"],
    "squad": ["task=squad", "task.data_dir=/out/squad", "task.files.train=train.json", "task.files.eval=eval.json",
              "task.max_train_samples=2400", "task.max_eval_samples=1000", "task.max_length=128",
              "task.doc_stride=48", "prompt.length=20", "optim.lr=1e-2", "trainer.batch_size=16",
              "trainer.max_steps=300", "trainer.eval_every=150"],
    "copa": ["task=copa", "task.data_dir=/out/copa", "prompt.length=20", "optim.lr=1e-2", "trainer.batch_size=10",
             "trainer.max_steps=100", "trainer.eval_every=20"],
    "boolq": ["task=boolq", "task.data_dir=/out/boolq", "task.max_length=128", "prompt.length=20", "optim.lr=1e-2",
              "trainer.batch_size=16", "trainer.max_steps=200", "trainer.eval_every=50"],
}
TASKS_REAL_COMMON = ["model=minilm", "prompt=deep", "trainer.threads=1", "trainer.progress=false",
                     "trainer.resume=false", "trainer.skip_completed=false"]


@pytest.mark.parametrize("task", sorted(TASKS_REAL))
def test_tasks_real_files_compose_to_the_old_overrides(task):
    data_dir = [o for o in TASKS_REAL[task] if o.startswith("task.data_dir=")]
    _same([*TASKS_REAL[task], *TASKS_REAL_COMMON], [f"experiment=tasks_real/{task}", *data_dir])
    assert sorted(_script("tasks_real").DATA) == sorted(TASKS_REAL)


def _group_by_length_base(rows, steps, eval_every):
    return ["model=minilm", "task=sst2", "task.data_dir=${paths.data_root}/GLUE/SST-2",
            f"task.max_train_samples={rows}", "task.max_length=64", "prompt=deep", "prompt.length=20", "optim.lr=1e-2",
            "model.dropout=0", "schedule=none", "trainer.batch_size=32", f"trainer.max_steps={steps}",
            f"trainer.eval_every={eval_every}", "trainer.threads=1", "trainer.progress=false", "trainer.log_every=25",
            "trainer.resume=false", "trainer.skip_completed=false", "seed=42"]


@pytest.mark.parametrize("sizes", [(8000, 750, 125, None), (400, 20, 10, 100)])
@pytest.mark.parametrize("arm", [[], ["trainer.group_by_length=false"], ["trainer.group_by_length=true"]])
def test_group_by_length_file_composes_to_the_old_overrides(sizes, arm):
    rows, steps, eval_every, dev_rows = sizes
    dev = [f"task.max_eval_samples={dev_rows}"] if dev_rows else []
    _same([*_group_by_length_base(rows, steps, eval_every), *dev, *arm],
          [*_script("group_by_length").base(rows, steps, eval_every, dev_rows), *arm])


@pytest.mark.parametrize("prompt", ["deep", "shallow"])
@pytest.mark.parametrize("steps, prefix", [(300, "init"), (60, "copy")])
def test_fpt_transfer_partial_file_composes_to_the_old_overrides(prompt, steps, prefix):
    stages = f"schedule.stages=[{{layers:4,ffn_ratio:0.5,steps:{steps}}},{{}}]"
    run = [f"trainer.max_steps={steps + 1}", f"trainer.eval_every={steps}"]
    _same([f"experiment=fpt_sst2/{prompt}_vanilla", "schedule=fpt", stages, f"schedule.new_layer_prefix={prefix}", *run],
          ["experiment=fpt_transfer/partial", f"prompt={prompt}", stages, f"schedule.new_layer_prefix={prefix}", *run])
