"""Bad input fails at once, naming the key, file or value and what was expected, and leaves nothing complete.

Most cases run in-process through fpt.runs.launch.main (what train.py calls, after fpt.validate.check_config);
a few run `python train.py` to show the end-to-end message and exit code (tests/integration/test_errors_e2e.py).
docs/errors.md explains each error.
"""
import errno
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import ERRORS_TINY as TINY, TSV, compose, leaves_nothing_complete, sst2_files

from fpt.runs.launch import main
from fpt.tasks import TaskDataError
from fpt.trainer import TrainingError
from fpt.validate import ConfigError, check_config


def cb_files(folder: Path, train: str):
    folder.mkdir(exist_ok=True)
    (folder / "train.jsonl").write_text(train)
    (folder / "val.jsonl").write_text('{"premise": "p", "hypothesis": "h", "label": "neutral"}\n')
    return ["task=cb", f"task.data_dir={folder}"]


ROW = '{"premise": "a", "hypothesis": "b", "label": "entailment"}\n'

# (id, overrides or a function of the data folder giving them, error type, what the message must name)
CASES = [
    ("prompt length 0", ["prompt.length=0"], ConfigError, ["prompt.length=0", ">= 1"]),
    ("prompt length -1", ["prompt=shallow", "prompt.length=-1"], ConfigError, ["prompt.length=-1", ">= 1"]),
    ("shallow prompt longer than max_length", ["prompt=shallow", "prompt.length=100", "task.max_length=64"],
     ConfigError, ["prompt.length=100", "task.max_length=64"]),
    ("batch size 0", ["trainer.batch_size=0"], ConfigError, ["trainer.batch_size=0", ">= 1"]),
    ("max_steps -1", ["trainer.max_steps=-1"], ConfigError, ["trainer.max_steps=-1", ">= 1"]),
    ("eval_every 0", ["trainer.eval_every=0"], ConfigError, ["trainer.eval_every=0"]),
    ("grad_accum 0", ["trainer.grad_accum=0"], ConfigError, ["trainer.grad_accum=0"]),
    ("batch not divisible by accumulation", ["trainer.grad_accum=3"], ConfigError,
     ["trainer.batch_size=8", "trainer.grad_accum 3"]),
    ("negative lr", ["optim.lr=-0.01"], ConfigError, ["optim.lr=-0.01", "(0, inf)"]),
    ("nan lr", ["optim.lr=nan"], ConfigError, ["optim.lr=nan"]),
    ("warmup ratio above 1", ["optim.warmup_ratio=1.5"], ConfigError, ["optim.warmup_ratio=1.5"]),
    ("max_length 0", ["task.max_length=0"], ConfigError, ["task.max_length=0", ">= 8"]),
    ("max_length above the positions", ["task.max_length=1000"], ConfigError,
     ["task.max_length=1000", "at most 512", "max_position_embeddings"]),
    ("unknown prompt method", ["prompt.type=deeep"], ConfigError,
     ["prompt.type='deeep'", "['none', 'shallow', 'deep', 'bitfit']"]),
    ("decay above 1", ["optim.schedule=exponential", "optim.decay_per_epoch=1.5"], ConfigError,
     ["optim.decay_per_epoch=1.5"]),
    ("unknown metric", ["task.metrics=[acc]"], ConfigError, ["task.metrics[]='acc'", "accuracy"]),
    ("missing model folder", ["model=minilm", "model.name_or_path=/no/such/model"], ConfigError,
     ["model.name_or_path='/no/such/model'", "no such folder"]),
    ("model folder without config.json", lambda d: (d.mkdir(), ["model=minilm", f"model.name_or_path={d}"])[1],
     ConfigError, ["{data}", "no config.json"]),
    ("missing data folder", ["task=sst2", "task.data_dir=/no/such/folder"], TaskDataError,
     ["/no/such/folder/train.tsv", "task.files.train"]),
    ("missing dev file", lambda d: sst2_files(d, dev=None) + ["task.files.eval=nodev.tsv"], TaskDataError,
     ["{data}/nodev.tsv", "not found"]),
    ("empty file", lambda d: sst2_files(d, train=""), TaskDataError, ["{data}/train.tsv", "empty"]),
    ("header-only file", lambda d: sst2_files(d, train=TSV), TaskDataError,
     ["{data}/train.tsv", "no data rows", "header only"]),
    ("extra field", lambda d: sst2_files(d, train=TSV + "good movie\t1\nbad movie\t0\textra\n"), TaskDataError,
     ["{data}/train.tsv:3", "3 tab-separated field(s), expected 2"]),
    ("missing field", lambda d: sst2_files(d, train=TSV + "good movie\t1\nbad movie\n"), TaskDataError,
     ["{data}/train.tsv:3", "1 tab-separated field(s), expected 2"]),
    ("label outside the label set", lambda d: sst2_files(d, train=TSV + "good movie\t1\nodd movie\tmaybe\n"),
     TaskDataError, ["{data}/train.tsv:3", "'maybe'", "task.labels ['0', '1']"]),
    ("non-UTF-8 bytes", lambda d: sst2_files(d, dev=TSV.encode() + b"caf\xe9 film\t1\n"), TaskDataError,
     ["{data}/dev.tsv:2", "0xe9", "UTF-8"]),
    ("malformed JSONL line", lambda d: cb_files(d, ROW + '{"premise": "a", "hypothesis": \n'), TaskDataError,
     ["{data}/train.jsonl:2", "not a JSON object"]),
    ("JSONL line not an object", lambda d: cb_files(d, ROW + '["a", "b"]\n'), TaskDataError,
     ["{data}/train.jsonl:2", "expected a JSON object"]),
    ("task YAML names a missing column", lambda d: sst2_files(d) + ["task.text_fields=[sentense]"], TaskDataError,
     ["{data}/train.tsv:", "'sentense'", "columns: ['label', 'sentence']"]),
    ("label column missing", lambda d: sst2_files(d) + ["task.label_field=lable"], TaskDataError,
     ["{data}/train.tsv:", "'lable'", "task.label_field"]),
    ("T5 template names a missing column", lambda d: sst2_files(d) + ["model=tiny-t5", "task.template='sst2: {sentense}'"],
     TaskDataError, ["{data}/train.tsv:", "'sentense'"]),
    ("test split without a file", lambda d: sst2_files(d) + ["task.test_splits=[test]"], ConfigError,
     ["task.files has no 'test' file"]),
    # options that do not apply (docs/errors.md "Options that do not apply"): one row per rule
    ("prompt length without a prompt", ["prompt=none", "prompt.length=20"], ConfigError,
     ["prompt.length=20", "no effect with prompt.type='none'", "default 0"]),
    ("prompt option without a prompt", ["prompt=none", "prompt.length=0", "prompt.dropout=0.1"], ConfigError,
     ["prompt.dropout=0.1", "no effect with prompt.type='none'"]),
    ("projection on a shallow prompt", ["prompt=shallow", "prompt.projection=true"], ConfigError,
     ["prompt.projection=True", "no effect with prompt.type='shallow'", "default False"]),
    ("init range without uniform init", ["prompt=shallow", "prompt.init=vocab", "prompt.init_range=0.1"], ConfigError,
     ["prompt.init_range=0.1", "with prompt.init='vocab'"]),
    ("init range on a deep prompt", ["prompt.init_range=0.1"], ConfigError,
     ["prompt.init_range=0.1", "with prompt.type='deep'"]),
    ("projection width without the projection", ["prompt.projection_hidden=64"], ConfigError,
     ["prompt.projection_hidden=64", "with prompt.projection=false"]),
    ("init text without init=text", ["prompt.init_text='a movie'"], ConfigError,
     ["prompt.init_text='a movie'", "with prompt.init='normal'"]),
    ("shallow init name on a deep prompt", ["prompt.init=uniform"], ConfigError,
     ["prompt.init='uniform'", "['normal', 'vocab', 'text']"]),
    ("token init under the projection", ["prompt.projection=true", "prompt.init=vocab"], ConfigError,
     ["prompt.init='vocab'", "prompt.projection=true", "prompt.init=normal"]),
    ("schedule option without stages", ["schedule.keep_layers=bottom"], ConfigError,
     ["schedule.keep_layers='bottom'", "no effect with schedule=none", "default 'spread'"]),
    ("growth schedule without a prompt", ["prompt=none", "prompt.length=0", "schedule=fpt"], ConfigError,
     ["schedule=fpt: grows a frozen model", "prompt=shallow or deep"]),
    ("layer choice without dropped layers", ["schedule=fpt_fr", "schedule.keep_layers=bottom"], ConfigError,
     ["schedule.keep_layers='bottom'", "with schedule=fpt_fr (no stage drops layers)"]),
    ("joining prefix on a shallow prompt", ["prompt=shallow", "schedule=fpt", "schedule.new_layer_prefix=gate"],
     ConfigError, ["schedule.new_layer_prefix='gate'", "with prompt.type='shallow'"]),
    ("joining prefix without joining layers", ["schedule=fpt_fr", "schedule.new_layer_prefix=copy"], ConfigError,
     ["schedule.new_layer_prefix='copy'", "no layer joins"]),
    ("stage warm-up with one stage", ["schedule=partial_ld", "schedule.stage_warmup_steps=5"], ConfigError,
     ["schedule.stage_warmup_steps=5", "one stage"]),
    ("decoder choice on an encoder", ["schedule=fpt", "schedule.reduce_decoder=true"], ConfigError,
     ["schedule.reduce_decoder=True", "no decoder"]),
    ("activation scores without FFN reduction", ["schedule=fpt_ld", "schedule.num_score_examples=10"], ConfigError,
     ["schedule.num_score_examples=10", "no stage narrows the FFN"]),
    ("size of a schedule that does not use it", ["schedule=fpt", "schedule.size=0.3"], ConfigError,
     ["schedule.size=0.3", "do not use ${{schedule.size}}"]),
    ("size of a partial schedule given its own stages", ["schedule=partial_ld", "schedule.stages=[{layers: 1}]",
                                                         "schedule.size=0.3"], ConfigError,
     ["schedule.size=0.3", "with schedule=partial_ld", "default 0.5"]),
    ("model path of a random model", ["model.name_or_path=/nonexistent/model"], ConfigError,
     ["model.name_or_path='/nonexistent/model'", "model.from_config builds model tiny-bert", "model.from_config=null"]),
    ("device map of a random model", ["model.device_map=auto"], ConfigError,
     ["model.device_map='auto'", "with model.from_config"]),
    ("head option on T5", ["model=tiny-t5", "model.pooling=mean"], ConfigError,
     ["model.pooling='mean'", "with model.family='t5'"]),
    ("attention dropout on T5", ["model=tiny-t5", "model.attention_dropout=0.1"], ConfigError,
     ["model.attention_dropout=0.1", "model.dropout"]),
    ("decoding length the task overrides", ["model=tiny-t5", "task.generate_max_tokens=5", "model.max_new_tokens=20"],
     ConfigError, ["model.max_new_tokens=20", "task.generate_max_tokens=5"]),
    ("pooling of a per-token head", ["task=conll03", "model.pooling=mean"], ConfigError,
     ["model.pooling='mean'", "with task.type='token_classification'"]),
    ("head dropout of the span head", ["task=squad", "model.head_dropout=0.3"], ConfigError,
     ["model.head_dropout=0.3", "the span head has no dropout"]),
    ("T5 option on an encoder", ["model.target_prefix='<extra_id_0>'"], ConfigError,
     ["model.target_prefix='<extra_id_0>'", "with model.family='bert'"]),
    ("span QA option on classification", ["task.doc_stride=64"], ConfigError,
     ["task.doc_stride=64", "with task.type='classification' (read by span_qa tasks only)"]),
    ("tagging option on classification", ["task.tag_scheme=IOB1"], ConfigError,
     ["task.tag_scheme='IOB1'", "token_classification tasks only"]),
    ("choice columns on classification", ["task.choice_fields=[a,b]"], ConfigError,
     ["task.choice_fields=['a', 'b']", "multiple_choice tasks only"]),
    ("generation target on classification", ["task.target='{summary}'"], ConfigError,
     ["task.target='{{summary}}'", "generation tasks only"]),
    ("answers column on classification", ["task.answers_field=gold"], ConfigError,
     ["task.answers_field='gold'", "(read by record and span_qa tasks only)"]),
    ("question id on tagging", ["task=conll03", "task.group_field=id"], ConfigError,
     ["task.group_field='id'", "with task.type='token_classification'"]),
    ("span scoring on T5", ["model=tiny-t5", "task=squad", "task.n_best=5"], ConfigError,
     ["task.n_best=5", "span QA as text-to-text"]),
    ("no-answer text on an encoder", ["task=squad", "task.no_answer_text=none"], ConfigError,
     ["task.no_answer_text='none'", "with an encoder model"]),
    ("no-answer threshold without no-answer questions", ["task=squad", "task.null_threshold=1.0"], ConfigError,
     ["task.null_threshold=1.0", "task.allow_no_answer=false"]),
    ("T5 task option on an encoder", ["task.verbalizers=[bad,good]"], ConfigError,
     ["task.verbalizers=['bad', 'good']", "T5's text-to-text form only", "default ['negative', 'positive']"]),
    ("tag list under tag types", ["task=conll03", "task.labels=[O,B-PER,I-PER]"], ConfigError,
     ["task.labels=['O', 'B-PER', 'I-PER']", "with task.tag_types=['PER', 'ORG', 'LOC', 'MISC']"]),
    ("text fields under a text variant", ["task=wic", "task.text_fields=[sentence1]"], ConfigError,
     ["task.text_fields=['sentence1']", "with task.text_variant="]),
    ("decoding minimum on an encoder", ["task.generate_min_tokens=3"], ConfigError,
     ["task.generate_min_tokens=3", "nothing is generated"]),
    ("CoNLL columns of a TSV task", ["task.conll_columns=[0,3]"], ConfigError,
     ["task.conll_columns=[0, 3]", "with task.format='tsv'"]),
    ("header of a JSONL task", ["task=cb", "task.header=false"], ConfigError,
     ["task.header=False", "with task.format='jsonl'"]),
    ("Adafactor option under AdamW", ["optim.relative_step=true"], ConfigError,
     ["optim.relative_step=True", "with optim.name='adamw'"]),
    ("AdamW option under Adafactor", ["optim=adafactor", "optim.betas=[0.8,0.99]"], ConfigError,
     ["optim.betas=[0.8, 0.99]", "with optim.name='adafactor'"]),
    ("epoch decay without the exponential schedule", ["optim.decay_per_epoch=0.9"], ConfigError,
     ["optim.decay_per_epoch=0.9", "with optim.schedule='linear'"]),
    ("warm-up ratio under warm-up steps", ["optim.warmup_steps=2", "optim.warmup_ratio=0.1"], ConfigError,
     ["optim.warmup_ratio=0.1", "with optim.warmup_steps=2"]),
    ("checkpointed share without checkpointing", ["trainer.checkpoint_layers=0.5"], ConfigError,
     ["trainer.checkpoint_layers=0.5", "with trainer.gradient_checkpointing=false"]),
    ("epochs under max_steps", ["trainer.epochs=3"], ConfigError,
     ["trainer.epochs=3", "with trainer.max_steps=4", "trainer.epochs=null trains by steps"]),
]


@pytest.mark.parametrize("overrides, error, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_naming_the_problem(tmp_path, overrides, error, names):
    data = tmp_path / "data"
    if callable(overrides):
        overrides = overrides(data)
    cfg = compose(*TINY, *overrides, f"output_root={tmp_path}")
    run = tmp_path / "run"
    with pytest.raises(error) as caught:
        main(cfg, run)
    message = str(caught.value)
    for part in names:
        assert part.format(data=data) in message, message
    leaves_nothing_complete(run)
    assert not (run / "config.yaml").exists() and not (run / "run_state.json").exists()  # before any run state
    results = json.loads((run / "results.json").read_text())  # the failure is recorded for a sweep's report
    assert results["status"] == "failed" and message in results["error"]


def test_table_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_missing_gpu_is_named(tmp_path, device):
    with pytest.raises(ConfigError, match=f"trainer.device='{device}'.*torch.cuda.is_available.. is False"):
        main(compose(*TINY, f"trainer.device={device}", f"output_root={tmp_path}"), tmp_path / "run")
    with pytest.raises(ConfigError, match="trainer.device='tpu'.*expected auto, cpu"):
        check_config(compose(*TINY, "trainer.device=tpu"))


@pytest.mark.parametrize("overrides, message", [
    (["promt=deep"], "promt"),
    (["task=sst3"], "task/sst3"),
    (["prompt.lenght=4"], "lenght"),
    (["model=gpt9"], "model/gpt9"),
    (["optim.lr=abc"], "optim.lr"),
])
def test_config_typos_fail_at_composition(overrides, message):
    with pytest.raises(Exception) as caught:
        compose(*TINY, *overrides)
    assert message in str(caught.value)


@pytest.mark.parametrize("override, allowed", [
    ("optim.name=sgd", "[adamw, adafactor]"),
    ("optim.schedule=cosine", "[linear, constant, exponential]"),
    ("schedule.keep_layers=top", "[spread, bottom]"),
    ("schedule.new_layer_prefix=zero", "[init, copy, gate]"),
    ("trainer.eval_strategy=hourly", "[steps, epoch]"),
    ("model.attn_implementation=flash", "[sdpa, eager]"),
    ("task.retriever.search=annoy", "[torch, faiss, auto]"),
])
def test_a_value_outside_a_fixed_choice_fails_at_composition_naming_the_key_and_the_choices(override, allowed):
    """The fixed choices are enums in the schema (fpt/config.py): OmegaConf refuses another value when composing,
    before any start-up check; train.py prints this message (tests/integration/test_errors_e2e.py)."""
    key, value = override.split("=")
    with pytest.raises(Exception) as caught:
        compose(*TINY, override)
    message = f"{caught.value}\n{caught.value.__cause__}"
    assert override in message and f"Invalid value '{value}', expected one of {allowed}" in message, message
    assert f"full_key: {key}" in message, message


@pytest.mark.parametrize("kind", ["read-only folder", "a file in the way"])
def test_unwritable_output_folder(tmp_path, kind):
    locked = tmp_path / "locked"
    if kind == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked.mkdir()
        locked.chmod(0o555)
    else:
        locked.write_text("not a folder")
    try:
        with pytest.raises(ConfigError, match=f"run folder {locked / 'run'}: cannot write there"):
            main(compose(*TINY, f"output_root={tmp_path}"), locked / "run")
    finally:
        if locked.is_dir():
            locked.chmod(0o755)


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    run = tmp_path / "run"
    cfg = compose(*TINY, "optim.lr=1e30", "optim.max_grad_norm=null", f"output_root={tmp_path}")
    with pytest.raises(TrainingError) as caught:
        main(cfg, run)
    assert "loss is nan" in str(caught.value).lower() or "loss is inf" in str(caught.value).lower()
    assert "optim.lr=1e+30" in str(caught.value)
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "failed" and "loss is" in results["error"]
    assert results["steps"] < 4  # stopped at the step it happened, not at the end
    leaves_nothing_complete(run)


def test_full_disk_stops_at_the_first_failed_write(tmp_path, monkeypatch):
    """The disk fills after the run's first two files: the next write (the best prompt's tensors, at the first
    evaluation, before the first checkpoint) fails with ENOSPC."""
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run = tmp_path / "run"
    with pytest.raises(OSError) as caught:
        main(compose(*TINY, f"output_root={tmp_path}"), run)
    assert caught.value.errno == errno.ENOSPC and "No space left on device" in str(caught.value)
    chain, err = [], caught.value  # the tensors' write failed, then results.json could not be written either
    while err is not None:
        chain.append(str(err))
        err = err.__context__
    assert any(f"could not write {run / 'trainable_best.safetensors'}: No space left" in m for m in chain), chain
    assert not (run / "checkpoint" / "last.pt").exists()
    assert json.loads((run / "run_state.json").read_text())["status"] == "running"
    leaves_nothing_complete(run)


def test_start_up_check_reads_the_files_once(tmp_path, monkeypatch):
    """check_config reads the local files; the Trainer's read_rows takes those rows instead of reading again."""
    from fpt import tasks

    cfg = compose(*TINY, *sst2_files(tmp_path / "data"))
    check_config(cfg)
    expected = {"train": ["bad movie", "good movie"], "eval": ["a bad film", "a fine film"]}

    def no_reading(task, split):
        raise AssertionError(f"read {split} again")

    monkeypatch.setattr(tasks, "_read_local", no_reading)
    for split in ("train", "eval"):
        assert sorted(r["sentence"] for r in tasks.read_rows(cfg.task, split)) == expected[split]
    with pytest.raises(AssertionError, match="read train again"):  # handed over once, not kept
        tasks.read_rows(cfg.task, "train")


def test_model_positions_from_its_config():
    from fpt.validate import max_positions

    assert max_positions({"model_type": "bert", "max_position_embeddings": 512}) == 512
    assert max_positions({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert max_positions({"model_type": "t5", "n_positions": 512}) is None  # relative positions: no limit
    check_config(compose(*TINY, "model=tiny-t5", "task.max_length=2000"))  # accepted for T5


def test_score_keys_apply_to_the_score_command():
    """schedule.num_score_examples / score_seed / scores_path do nothing in a run without an FFN-narrowing stage,
    but tools/scores.py computes the scores whatever the schedule: there they apply."""
    cfg = compose(*TINY, "schedule.num_score_examples=10")
    with pytest.raises(ConfigError, match="schedule.num_score_examples=10: has no effect with schedule=none"):
        check_config(cfg)
    check_config(cfg, computes_scores=True)
