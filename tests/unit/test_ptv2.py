"""P-tuning v2 as released: one experiment per released run script, checked field by field against the table in
../shared/seeds/ptv2-run-scripts.md (parsed here, at test time); the protocol it needs (evaluation once per epoch,
the LR x0.95 per epoch of the NER/SRL/QA trainers); and `fpt.collect`'s "ours vs released" table."""
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import SHARED_DATA, skip_or_fail
from helpers import compose
from omegaconf import OmegaConf

from fpt import CONF_DIR
from fpt.evaluation import check_metric, metric_keys
from fpt.task_kinds import get_kind

torch.set_num_threads(1)
SCRIPTS = SHARED_DATA.parent / "seeds" / "ptv2-run-scripts.md"
# the table's task column -> our task config (conf/task/)
TASKS = {"SuperGLUE BoolQ": "boolq", "SuperGLUE COPA": "copa", "SuperGLUE RTE": "superglue-rte",
         "SuperGLUE WiC": "wic", "SuperGLUE WSC": "wsc", "NER CoNLL-2003": "conll03", "NER CoNLL-2004": "conll04",
         "NER OntoNotes 5.0": "ontonotes", "SRL CoNLL-2005 (WSJ, Brown)": "conll05", "SRL CoNLL-2012": "conll12",
         "QA SQuAD 1.1": "squad", "QA SQuAD 2.0": "squad_v2"}
COLUMNS = ["script", "task", "model", "batch", "lr", "P", "dropout", "epochs", "max_seq_length", "seed", "flags",
           "released"]


@pytest.fixture(scope="module")
def ptv2_scripts():
    """The released scripts' table, one dict per row, or skip (fail when FPT_REQUIRE_SHARED_DATA=1, as in CI)."""
    if not SCRIPTS.is_file():
        skip_or_fail(f"P-tuning v2's run-script table not found at {SCRIPTS}")
    text = SCRIPTS.read_text()
    rows = []
    for line in text.splitlines():
        if line.startswith("| run_"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == len(COLUMNS), line
            rows.append(dict(zip(COLUMNS, cells)))
    decay = re.search(r"exponentially, ([\d.]+) per epoch", text)
    assert rows and decay, f"{SCRIPTS}: no run-script rows or no exponential decay factor found"
    return rows, float(decay.group(1))


def experiment_name(script: str) -> str:
    """run_rte_roberta -> ptv2/rte_roberta_large, run_wic_bert -> ptv2/wic_bert_large (the README's tables)."""
    return "ptv2/" + script.removeprefix("run_") + "_large"


def released_metrics(cell: str, task) -> tuple[dict, int]:
    """'89.4 WSJ / 83.9 Brown (13)' -> ({test_wsj_f1: 89.4, test_brown_f1: 83.9}, 13), in our metric keys."""
    epoch = re.search(r"\((?:best epoch )?(\d+)\)\s*$", cell)
    assert epoch, cell
    keys = metric_keys(task)
    exact = "exact_match" if "exact_match" in keys else "exact"
    default = f"test_{task.metric}" if task.test_splits else task.metric
    labels = {None: default, "WSJ": f"test_wsj_{task.metric}", "Brown": f"test_brown_{task.metric}",
              "EM": exact, "F1": "f1"}
    values = {}
    for part in cell[:epoch.start()].split(":")[-1].split("/"):  # "BERT-large row: 85.3" -> "85.3"
        number, *label = part.split()
        values[labels[label[0] if label else None]] = float(number)
    return values, int(epoch.group(1))


def test_every_released_script_has_its_experiment(ptv2_scripts):
    rows, _ = ptv2_scripts
    ours = {f"ptv2/{p.stem}" for p in (CONF_DIR / "experiment" / "ptv2").glob("*_large.yaml")}
    assert ours == {experiment_name(r["script"]) for r in rows} and len(rows) == 20


def test_each_experiment_reproduces_its_script(ptv2_scripts):
    rows, decay = ptv2_scripts
    for row in rows:
        name = experiment_name(row["script"])
        cfg = compose(f"experiment={name}")
        where = f"experiment={name} vs {row['script']}"
        task = cfg.task
        assert task.name == TASKS[row["task"]], where
        assert cfg.model.name_or_path == row["model"].split()[0], where  # "roberta-large (sic: ...)"
        assert cfg.trainer.batch_size == int(row["batch"]) and cfg.trainer.grad_accum == 1, where
        assert cfg.optim.lr == float(row["lr"]), where
        assert cfg.prompt.type == "deep" and cfg.prompt.length == int(row["P"]), where
        # dropout = --hidden_dropout_prob: the backbone's hidden dropout and the prefix's
        assert cfg.model.dropout == float(row["dropout"]) == cfg.prompt.dropout, where
        assert cfg.model.attention_dropout == 0.1, where  # untouched by their flag: the checkpoints' value
        assert cfg.trainer.epochs == int(row["epochs"]) and cfg.trainer.max_steps is None, where
        lengths = [int(x) for x in re.findall(r"\d+", row["max_seq_length"])]
        assert task.max_length == lengths[0], where
        if len(lengths) == 2:  # "(384 / stride 128)": their QA default
            assert task.doc_stride == lengths[1], where
        assert cfg.seed == int(row["seed"]), where
        flags = row["flags"].strip("`")
        assert cfg.prompt.projection == ("--prefix_projection" in flags), where
        assert cfg.prompt.projection_hidden == 512 and cfg.prompt.init == "normal", where
        template = re.search(r"--template_id (\d+)", flags)
        if task.text_variants:
            assert task.text_variant == (template.group(1) if template else "0"), where  # their default: 0
        else:
            assert template is None, where
        # the protocol: AdamW without weight decay, clip 1, every epoch evaluated
        assert cfg.optim.name == "adamw" and cfg.optim.weight_decay == 0 and cfg.optim.max_grad_norm == 1, where
        assert cfg.optim.warmup_steps == 0 and cfg.optim.warmup_ratio == 0, where
        assert cfg.trainer.eval_strategy == "epoch", where
        kind = task.type
        if kind in ("token_classification", "span_qa"):  # NER, SRL, QA: the exponential trainer
            assert cfg.optim.schedule == "exponential" and cfg.optim.decay_per_epoch == decay, where
        else:
            assert cfg.optim.schedule == "linear", where
        if task.name in ("conll03", "conll04", "ontonotes", "conll05", "conll12"):  # --do_predict: test at best dev
            assert task.test_splits, where
        # the released number, in keys our evaluation computes
        values, best_epoch = released_metrics(row["released"], task)
        assert dict(cfg.released.metrics) == values, where
        assert cfg.released.best_epoch == best_epoch and cfg.released.total_epochs == int(row["epochs"]), where
        assert row["script"] in cfg.released.source, where
        computed = metric_keys(task) | {f"{s}_{k}" for s in task.test_splits for k in metric_keys(task)}
        assert set(values) <= computed, where
        check_metric(task)
        get_kind(task).check_config(task, False)


def test_old_experiment_name_still_composes_the_same():
    old, new = compose("experiment=ptv2_rte_roberta_large"), compose("experiment=ptv2/rte_roberta_large")
    assert old == new and old.prompt.length == 128


def test_protocol_alone_applies_to_any_task_and_model():
    cfg = compose("experiment=ptv2/protocol", "task=rte", "model=tiny-bert")
    assert cfg.prompt.type == "deep" and cfg.trainer.eval_strategy == "epoch" and cfg.trainer.max_steps is None
    assert cfg.released is None


def test_released_dropout_reaches_the_backbone_hidden_layers_only():
    """--hidden_dropout_prob 0.2 (SQuAD): hidden dropout 0.2 in the built model, attention dropout left at 0.1."""
    from fpt.models import load_backbone
    cfg = compose("experiment=ptv2/squad_roberta_large", "model=tiny-bert")
    config = load_backbone(cfg.model, deep_prompt=True).config
    assert config.hidden_dropout_prob == 0.2 and config.attention_probs_dropout_prob == 0.1


def test_minilm_cpu_recipe_is_the_conll03_recipe_scaled():
    recipe, cpu = compose("experiment=ptv2/conll03_roberta_large"), compose("experiment=ptv2/conll03_minilm_cpu")
    for key in ["seed", "prompt", "optim", "task.name", "task.max_length", "task.test_splits", "trainer.batch_size",
                "trainer.eval_strategy", "model.dropout", "model.attention_dropout"]:
        assert OmegaConf.select(cpu, key) == OmegaConf.select(recipe, key), key
    assert cpu.model.name == "minilm" and cpu.task.max_train_samples == 1000 and cpu.trainer.epochs == 5
    assert cpu.optim.schedule == "exponential" and cpu.released.metrics == recipe.released.metrics


# --------------------------------------------------------------------------- the protocol in the trainer
def _trainer(tmp_path, *extra):
    from fpt.trainer import Trainer
    cfg = compose("model=tiny-bert", "task=sample_sentiment", "prompt=deep", "prompt.length=2",
                  "task.max_train_samples=50", "task.max_eval_samples=20", "trainer.batch_size=8",
                  "trainer.eval_batch_size=20", "trainer.progress=false", "trainer.log_every=1", "optim.lr=1e-2",
                  *extra)
    return Trainer(cfg, tmp_path)


def test_epoch_evaluation_and_per_epoch_exponential_decay(tmp_path):
    """50 examples, batch 8, 3 epochs: 19 steps; epochs end at steps 7 (56 >= 50), 13 (104 >= 100) and 19."""
    trainer = _trainer(tmp_path, "trainer.max_steps=null", "trainer.epochs=3", "trainer.eval_strategy=epoch",
                       "trainer.eval_every=5", "optim.schedule=exponential", "optim.decay_per_epoch=0.5")
    assert len(trainer.train_set) == 50 and trainer.total_steps == 19
    results = trainer.run()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in evals] == [7, 13, 19]  # eval_every=5 is not used
    assert [r["epoch"] for r in evals] == [7 * 8 / 50, 13 * 8 / 50, 19 * 8 / 50]
    assert results["best_epoch"] == {7: 1, 13: 2, 19: 3}[results["best_step"]]
    # the LR logged after step s is the one step s+1 (0-based index s) trains with: 1e-2 x 0.5^(epoch of its
    # first example), the epoch counted over the example stream
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    for step in range(1, 19):
        assert lrs[step] == pytest.approx(1e-2 * 0.5 ** (step * 8 // 50)), step
    assert lrs[6] == pytest.approx(1e-2) and lrs[7] == pytest.approx(5e-3) and lrs[13] == pytest.approx(2.5e-3)


def test_steps_strategy_is_unchanged_and_bad_values_fail(tmp_path):
    trainer = _trainer(tmp_path, "trainer.max_steps=12", "trainer.eval_every=5")
    assert [s for s in range(1, 13) if trainer.is_eval_step(s)] == [5, 10, 12]
    with pytest.raises(Exception, match="trainer.eval_strategy=epochs") as caught:  # an enum (fpt/config.py)
        compose("trainer.eval_strategy=epochs")
    assert "expected one of [steps, epoch]" in str(caught.value.__cause__)
    with pytest.raises(ValueError, match="optim.decay_per_epoch=1.5"):
        _trainer(tmp_path, "trainer.max_steps=4", "optim.schedule=exponential", "optim.decay_per_epoch=1.5")


def test_exponential_schedule_resumes_at_the_same_lr(tmp_path):
    from fpt.optim import build_lr_schedule
    cfg = compose("optim.schedule=exponential", "optim.decay_per_epoch=0.9").optim
    params = [torch.nn.Parameter(torch.zeros(1))]
    first = build_lr_schedule(torch.optim.AdamW(params, lr=1.0), cfg, 100, batch_size=4, num_examples=10)
    for _ in range(7):
        first.optimizer.step()
        first.step()
    second = build_lr_schedule(torch.optim.AdamW(params, lr=1.0), cfg, 100, batch_size=4, num_examples=10)
    second.load_state_dict(first.state_dict())
    assert second.get_last_lr() == first.get_last_lr() == [pytest.approx(0.9 ** (7 * 4 // 10))]
    with pytest.raises(ValueError, match="decays once per epoch"):
        build_lr_schedule(torch.optim.AdamW(params, lr=1.0), cfg, 100)


# --------------------------------------------------------------------------- ours vs released
def _job(folder: Path, seed: int, accuracy: float, best_step: int, best_epoch: int, released: dict | None):
    folder.mkdir(parents=True)
    cfg = {"model": {"name": "roberta-large"}, "task": {"name": "superglue-rte", "metric": "accuracy"},
           "prompt": {"type": "deep", "length": 128}, "schedule": {"name": "none"}, "seed": seed,
           "released": released}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "results.json").write_text(json.dumps({
        "task": "superglue-rte", "model": "roberta-large", "prompt": "deep", "schedule": "none", "seed": seed,
        "metric": "accuracy", "best": {"accuracy": accuracy}, "final": {"accuracy": accuracy}, "status": "completed",
        "best_step": best_step, "best_epoch": best_epoch, "train_flops": 1.0, "train_seconds": 1.0}))


def test_collect_prints_ours_vs_released(tmp_path):
    from fpt.collect import collect
    released = {"source": "P-tuning v2 README, run_script/run_rte_roberta.sh", "metrics": {"accuracy": 86.6},
                "best_epoch": 65, "total_epochs": 100}
    _job(tmp_path / "sweep" / "0", 11, 0.850, 100, 60, released)
    _job(tmp_path / "sweep" / "1", 12, 0.860, 110, 70, released)
    text = collect([tmp_path / "sweep"])
    section = text.split("## Ours vs released (x100)")[1].split("##")[0]
    line = [x for x in section.splitlines() if x.startswith("| superglue-rte")]
    assert len(line) == 1
    cells = [c.strip() for c in line[0].strip("|").split("|")]
    assert cells[3:9] == ["accuracy", "2", f"85.5 ± {100 * math.sqrt(0.00005):.1f}", "86.6", "-1.1", "65 / 65"]
    assert "released." not in text.split("## Ours vs released")[0]  # not a configuration column

    _job(tmp_path / "plain" / "0", 1, 0.7, 5, 1, None)  # no released number: no section
    assert "Ours vs released" not in collect([tmp_path / "plain"])
