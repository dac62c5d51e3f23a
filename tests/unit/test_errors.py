"""Bad input fails at once, naming the key, file or value and what was expected, and leaves nothing complete.

Most cases run in-process through fpt.run.main (what train.py calls, after fpt.validate.check_config);
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

from fpt.run import main
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
    ("unknown optimizer", ["optim.name=sgd"], ConfigError, ["optim.name='sgd'", "adamw"]),
    ("unknown LR schedule", ["optim.schedule=cosine"], ConfigError, ["optim.schedule='cosine'", "exponential"]),
    ("unknown layer choice", ["schedule=fpt", "schedule.keep_layers=top"], ConfigError,
     ["schedule.keep_layers='top'", "bottom"]),
    ("unknown joining prefix", ["schedule=fpt", "schedule.new_layer_prefix=zero"], ConfigError,
     ["schedule.new_layer_prefix='zero'", "gate"]),
    ("unknown eval strategy", ["trainer.eval_strategy=hourly"], ConfigError, ["trainer.eval_strategy='hourly'", "epoch"]),
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
