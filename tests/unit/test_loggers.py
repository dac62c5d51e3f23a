"""The `logger` config group (fpt/loggers.py): what each backend writes, resume, and clear errors."""
import csv
import json
import sys

import pytest
from helpers import compose

from fpt.loggers import CSVLogger, JSONLLogger, TensorBoardLogger, build_loggers, check_loggers
from fpt.runs.launch import main as run_main

TINY = ["model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=4", "trainer.eval_every=2",
        "trainer.log_every=2", "trainer.batch_size=8", "task.max_eval_samples=40", "trainer.threads=1",
        "trainer.progress=false"]


def _tb_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_logs_scalars_and_config_to_every_chosen_logger(tmp_path):
    cfg = compose(*TINY, "logger=[tensorboard,csv,jsonl]", "optim.lr=0.0123", f"output_root={tmp_path}")
    assert set(cfg.logger) == {"tensorboard", "csv", "jsonl"}
    run = tmp_path / "run"
    results = run_main(cfg, run)
    evals = {r["step"]: r["eval"]["accuracy"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if "eval" in r}
    assert sorted(evals) == [2, 4] and results["final"]["accuracy"] == evals[4]

    rows = _csv_rows(run / "csv" / "scalars.csv")
    assert {int(r["step"]): float(r["value"]) for r in rows if r["name"] == "eval/accuracy"} == evals
    assert [int(r["step"]) for r in rows if r["name"] == "train/loss"] == [2, 4]
    hparams = {r["name"]: r["value"] for r in _csv_rows(run / "csv" / "hparams.csv")}
    assert float(hparams["optim.lr"]) == 0.0123 and hparams["model.name"] == "tiny-bert"

    lines = [json.loads(x) for x in (run / "jsonl" / "scalars.jsonl").read_text().splitlines()]
    assert {x["step"]: x["eval/accuracy"] for x in lines if "eval/accuracy" in x} == evals
    config = json.loads((run / "jsonl" / "hparams.json").read_text())
    assert config["optim"]["lr"] == 0.0123 and config["trainer"]["max_steps"] == 4

    acc = _tb_events(run / "tensorboard")
    assert {e.step: pytest.approx(e.value) for e in acc.Scalars("eval/accuracy")} == evals
    plugin = acc.PluginTagToContent("hparams")
    from tensorboard.plugins.hparams import plugin_data_pb2
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optim.lr"].number_value == pytest.approx(0.0123)
    assert start.hparams["task.name"].string_value == "sample_sentiment"


def test_logger_choice_does_not_change_the_run_fingerprint():
    from fpt.runs.identity import config_fingerprint
    assert config_fingerprint(compose("logger=csv")) == config_fingerprint(compose("logger=none"))
    assert compose("logger=none").logger == {}


def test_resumed_loggers_drop_what_a_killed_run_wrote_after_its_checkpoint(tmp_path):
    for cls in (CSVLogger, JSONLLogger, TensorBoardLogger):
        folder = tmp_path / cls.__name__
        first = cls(folder, 0)
        for step in (1, 2, 3, 4):
            first.log_scalars({"train/loss": float(step)}, step)
        first.close(failed=True)
        for torn in [folder / "csv" / "scalars.csv", folder / "jsonl" / "scalars.jsonl"]:
            if torn.exists():  # killed while writing a line
                torn.write_text(torn.read_text() + ("5,train/lo" if torn.suffix == ".csv" else '{"step": 5, "tr'))
        resumed = cls(folder, 2)  # the checkpoint was at step 2
        # what the trainer replays from metrics.jsonl (TensorBoard rewrites its one events file from it)
        resumed.replay([({"train/loss": float(step)}, step) for step in (1, 2, 3, 4)])
        resumed.log_scalars({"train/loss": 30.0}, 3)
        resumed.close()
    rows = _csv_rows(tmp_path / "CSVLogger" / "csv" / "scalars.csv")
    assert [(int(r["step"]), float(r["value"])) for r in rows] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    lines = [json.loads(x) for x in (tmp_path / "JSONLLogger" / "jsonl" / "scalars.jsonl").read_text().splitlines()]
    assert [(x["step"], x["train/loss"]) for x in lines] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    acc = _tb_events(tmp_path / "TensorBoardLogger" / "tensorboard")
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert len(list((tmp_path / "TensorBoardLogger" / "tensorboard").glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("package", ["wandb", "mlflow"])
def test_missing_backend_package_fails_at_start_naming_it(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    spec = compose(f"logger={package}").logger
    with pytest.raises(ImportError, match=rf"logger={package} needs the '{package}' package.*pip install {package}"):
        check_loggers(spec)


def test_bad_logger_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"logger.csv: unknown option\(s\) \['colour'\]"):
        build_loggers({"csv": {"_target_": "fpt.loggers.CSVLogger", "colour": "red"}}, tmp_path)
    with pytest.raises(ValueError, match=r"logger.x._target_='fpt.loggers.Nope' is not an importable class"):
        check_loggers({"x": {"_target_": "fpt.loggers.Nope"}})
    with pytest.raises(ValueError, match=r"logger.x needs a _target_"):
        check_loggers({"x": {"subdir": "y"}})


HPARAMS = {"optim": {"lr": 0.0123, "betas": [0.9, 0.999]}, "model": {"name": "tiny-bert"}, "run_dir": None}


def _wandb_records(path):
    """The records of an offline W&B run file (LevelDB log format: 7-byte header, then crc32, length, chunk type
    and payload in 32 KiB blocks); no reader ships in wandb's Python package."""
    import struct
    from wandb.proto import wandb_internal_pb2
    data, pos, chunk, records = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk, pos = chunk + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            records.append(wandb_internal_pb2.Record.FromString(chunk))
            chunk = b""
    return records


def test_wandb_offline_run_holds_config_and_scalars(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb not installed (its missing-package error is tested above)")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = build_loggers(compose("logger=wandb", "logger.wandb.mode=offline").logger, tmp_path)
    logger.log_hparams(HPARAMS)
    logger.log_scalars({"eval/accuracy": 0.75, "train/loss": 0.5}, 2)
    logger.close()
    import wandb
    wandb.teardown()  # wandb's service writes the run file in the background: wait for it (as at process exit)
    run_id = json.loads((tmp_path / "wandb_run.json").read_text())["id"]
    [offline] = (tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    records = _wandb_records(offline)
    # the config arrives in config records, or in the run record when it was set before the run started
    updates = [u for r in records if r.HasField("config") for u in r.config.update]
    updates += [u for r in records if r.HasField("run") for u in r.run.config.update]
    config = {u.key: json.loads(u.value_json) for u in updates}
    assert config["optim"] == {"lr": 0.0123, "betas": [0.9, 0.999]} and config["model"] == {"name": "tiny-bert"}
    [history] = [r.history for r in records if r.HasField("history")]
    items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in history.item}
    assert history.step.num == 2 and items["eval/accuracy"] == 0.75 and items["train/loss"] == 0.5


def test_mlflow_run_holds_params_and_metric_history_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow not installed (its missing-package error is tested above)")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store: MLflow's SQL store needs SQLAlchemy 2
    from mlflow.tracking import MlflowClient
    uri = (tmp_path / "mlruns").as_uri()
    spec = compose("logger=mlflow", f"logger.mlflow.tracking_uri={uri}").logger
    run_dir = tmp_path / "run"
    logger = build_loggers(spec, run_dir)
    logger.log_hparams(HPARAMS)
    logger.log_scalars({"eval/accuracy": 0.5}, 2)
    logger.close(failed=True)  # killed; resumed below into the same MLflow run
    logger = build_loggers(spec, run_dir, start_step=2)
    logger.log_hparams(HPARAMS)
    logger.log_scalars({"eval/accuracy": 0.75}, 4)
    logger.close()
    client = MlflowClient(tracking_uri=uri)
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["optim.lr"] == "0.0123" and run.data.params["model.name"] == "tiny-bert"
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "eval/accuracy")]
    assert sorted(history) == [(2, 0.5), (4, 0.75)]
