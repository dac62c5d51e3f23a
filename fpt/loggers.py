"""Experiment loggers, chosen by the `logger` config group (conf/logger/): TensorBoard, CSV, JSONL, W&B, MLflow.

    python train.py logger=csv                   # one
    python train.py 'logger=[tensorboard,wandb]' # several
    python train.py logger=none                  # only metrics.jsonl (always written: fpt.collect reads it)

Each file of the group adds `<name>: {_target_: fpt.loggers.<Class>, ...options}` under `logger`. A logger is
built on the main rank once the run knows the step it starts from (0, or a resumed checkpoint's step) and is
told: the composed config once (`log_hparams`), scalars at a step (`log_scalars`), and `close(failed)`.
Its records past the start step, left by a killed run, are dropped, as the trainer does for metrics.jsonl.
"""
from __future__ import annotations

import csv
import importlib
import inspect
import io
import json
import shutil
import time
import uuid
from pathlib import Path

from .runs.checkpoint import write_json, write_text
from .config import flatten
from .extras import require


class Logger:
    """The interface (and a logger that logs nothing)."""

    requires: str | None = None  # the package a backend needs (checked at start-up by check_loggers)

    def __init__(self, run_dir: Path, start_step: int = 0):
        self.run_dir, self.start_step = Path(run_dir), start_step

    def log_hparams(self, hparams: dict) -> None:
        pass

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        pass

    def replay(self, history: list[tuple[dict[str, float], int]]) -> None:
        """At a (re)start: the run's scalars so far (from metrics.jsonl), for a logger that rewrites its files."""

    def close(self, failed: bool = False) -> None:
        pass


def scalars_of(record: dict) -> dict[str, float]:
    """A metrics.jsonl record as named scalars: {"eval": {"accuracy": a}} -> "eval/accuracy", "loss" -> "train/loss"."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in value.items() if _is_number(v)})
        elif key != "step" and _is_number(value):
            out[f"train/{key}"] = value
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _import(package: str, logger: str):
    return require(package, f"logger={logger}", " (or choose another logger: conf/logger/)")


def _keep_until(rows: list, step: int, step_of) -> list:
    """The rows logged at or before `step`; a row torn by a kill mid-write (unreadable) is dropped."""
    kept = []
    for row in rows:
        try:
            if step_of(row) <= step:
                kept.append(row)
        except (ValueError, IndexError, KeyError, TypeError):
            continue
    return kept


# --------------------------------------------------------------------------- backends
class TensorBoardLogger(Logger):
    """Event files in <run_dir>/<subdir>; the config on TensorBoard's HParams tab."""

    requires = "tensorboard"

    def __init__(self, run_dir, start_step=0, subdir: str = "tensorboard"):
        super().__init__(run_dir, start_step)
        from torch.utils.tensorboard import SummaryWriter
        # one events file per run folder: a (re)start rewrites it from metrics.jsonl (replay), so events a killed
        # run wrote after the checkpoint it resumes from are gone and none is written twice
        shutil.rmtree(self.run_dir / subdir, ignore_errors=True)
        self.writer = SummaryWriter(str(self.run_dir / subdir))

    def replay(self, history):
        for scalars, step in history:
            if step <= self.start_step:
                self.log_scalars(scalars, step)

    def log_hparams(self, hparams):
        from torch.utils.tensorboard.summary import hparams as hparams_summaries
        values = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flatten(hparams).items()}
        for summary in hparams_summaries(values, {}):
            self.writer.file_writer.add_summary(summary)

    def log_scalars(self, scalars, step):
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def close(self, failed=False):
        self.writer.close()


def _csv_step(row: list) -> int:
    if len(row) != 3:
        raise ValueError(row)
    float(row[2])
    return int(row[0])


class CSVLogger(Logger):
    """<run_dir>/<subdir>/scalars.csv (step,name,value: one row per scalar) and hparams.csv (name,value)."""

    def __init__(self, run_dir, start_step=0, subdir: str = "csv"):
        super().__init__(run_dir, start_step)
        self.folder = self.run_dir / subdir
        path = self.folder / "scalars.csv"
        rows = list(csv.reader(path.open(newline=""))) if path.exists() else []
        kept = [["step", "name", "value"]] + _keep_until(rows[1:], start_step, _csv_step)
        write_text(path, "".join(f"{','.join(row)}\n" for row in kept))
        self.file = path.open("a", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")

    def log_hparams(self, hparams):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(
            [["name", "value"]] + [[k, v if isinstance(v, str) else json.dumps(v)]
                                   for k, v in flatten(hparams).items()])
        write_text(self.folder / "hparams.csv", buf.getvalue())

    def log_scalars(self, scalars, step):
        self.writer.writerows([step, name, repr(float(value))] for name, value in scalars.items())
        self.file.flush()

    def close(self, failed=False):
        self.file.close()


class JSONLLogger(Logger):
    """<run_dir>/<subdir>/scalars.jsonl ({"step": s, name: value, ...} per call) and hparams.json (nested)."""

    def __init__(self, run_dir, start_step=0, subdir: str = "jsonl"):
        super().__init__(run_dir, start_step)
        self.folder = self.run_dir / subdir
        path = self.folder / "scalars.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        write_text(path, "".join(line + "\n" for line in
                                 _keep_until([x for x in lines if x], start_step, lambda x: json.loads(x)["step"])))
        self.file = path.open("a")

    def log_hparams(self, hparams):
        write_json(self.folder / "hparams.json", hparams)

    def log_scalars(self, scalars, step):
        self.file.write(json.dumps({"step": step, **scalars}) + "\n")
        self.file.flush()

    def close(self, failed=False):
        self.file.close()


class WandbLogger(Logger):
    """A Weights & Biases run (its own library), resumed by id when the fpt run resumes.
    `mode`: online | offline | disabled, or null for wandb's own default (WANDB_MODE, `wandb login`)."""

    requires = "wandb"

    def __init__(self, run_dir, start_step=0, project: str = "fpt", entity: str | None = None,
                 mode: str | None = None, tags: list | None = None, name: str | None = None):
        super().__init__(run_dir, start_step)
        wandb = _import("wandb", "wandb")
        id_file = self.run_dir / "wandb_run.json"
        run_id = json.loads(id_file.read_text())["id"] if id_file.exists() else uuid.uuid4().hex[:12]
        write_json(id_file, {"id": run_id})
        self.run = wandb.init(project=project, entity=entity, mode=mode, tags=list(tags or []),
                              name=name or self.run_dir.name, id=run_id, resume="allow", dir=str(self.run_dir),
                              reinit="create_new")

    def log_hparams(self, hparams):
        self.run.config.update(hparams, allow_val_change=True)

    def log_scalars(self, scalars, step):
        self.run.log(dict(scalars), step=step)

    def close(self, failed=False):
        self.run.finish(exit_code=1 if failed else 0)


class MLflowLogger(Logger):
    """An MLflow run (its own client library), resumed when the fpt run resumes (the id is kept in the run dir).
    `tracking_uri`: null for MLflow's default (MLFLOW_TRACKING_URI, else its local store)."""

    requires = "mlflow"

    def __init__(self, run_dir, start_step=0, experiment: str = "fpt", tracking_uri: str | None = None,
                 name: str | None = None):
        super().__init__(run_dir, start_step)
        mlflow = _import("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient
        self.entities = importlib.import_module("mlflow.entities")
        self.client = MlflowClient(tracking_uri=tracking_uri)
        id_file = self.run_dir / "mlflow_run.json"
        if id_file.exists():
            self.run_id = json.loads(id_file.read_text())["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            self.run_id = self.client.create_run(experiment_id, run_name=name or self.run_dir.name,
                                                 tags={"fpt.run_dir": str(self.run_dir.resolve())}).info.run_id
            write_json(id_file, {"run_id": self.run_id, "tracking_uri": mlflow.get_tracking_uri()
                                 if tracking_uri is None else tracking_uri})

    def log_hparams(self, hparams):
        params = [self.entities.Param(k[:250], json.dumps(v) if not isinstance(v, str) else v)
                  for k, v in flatten(hparams).items()]
        logged = self.client.get_run(self.run_id).data.params
        params = [p for p in params if p.key not in logged]  # MLflow params are write-once (a resumed run)
        for i in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log_scalars(self, scalars, step):
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self.entities.Metric(k, float(v), now, step)
                                                    for k, v in scalars.items()])

    def close(self, failed=False):
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


# --------------------------------------------------------------------------- the group
def _backend(name: str, spec) -> type:
    target = spec.get("_target_") if hasattr(spec, "get") else None
    if not target:
        raise ValueError(f"logger.{name} needs a _target_ (a Logger class, e.g. fpt.loggers.CSVLogger): "
                         f"see conf/logger/")
    module, _, cls = target.rpartition(".")
    try:
        backend = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"logger.{name}._target_={target!r} is not an importable class") from err
    if not (isinstance(backend, type) and issubclass(backend, Logger)):
        raise ValueError(f"logger.{name}._target_={target!r} is not a fpt.loggers.Logger")
    return backend


def check_loggers(spec) -> None:
    """At start-up, before any work: every chosen logger's class exists and its package is installed."""
    for name, options in (spec or {}).items():
        backend = _backend(name, options)
        if backend.requires:
            _import(backend.requires, name)


class Loggers(Logger):
    """All chosen loggers as one."""

    def __init__(self, loggers: list[Logger]):
        self.loggers = loggers

    def log_hparams(self, hparams):
        for logger in self.loggers:
            logger.log_hparams(hparams)

    def log_scalars(self, scalars, step):
        if scalars:
            for logger in self.loggers:
                logger.log_scalars(scalars, step)

    def replay(self, history):
        for logger in self.loggers:
            logger.replay(history)

    def close(self, failed=False):
        for logger in self.loggers:
            logger.close(failed)


def build_loggers(spec, run_dir: Path, start_step: int = 0) -> Loggers:
    """The loggers of config group `logger` ({name: {_target_, ...options}}), opened at `start_step`."""
    from omegaconf import OmegaConf
    plain = OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else dict(spec or {})
    built = []
    try:
        for name, options in plain.items():
            backend = _backend(name, options)
            kwargs = {k: v for k, v in options.items() if k != "_target_"}
            given = {"run_dir", "start_step"}  # given by the trainer, not by the config
            options_taken = [k for k in inspect.signature(backend).parameters if k not in given]
            unknown = sorted(set(kwargs) - set(options_taken))
            if unknown:
                raise ValueError(f"logger.{name}: unknown option(s) {unknown} for {options['_target_']}; "
                                 f"it takes {options_taken}")
            built.append(backend(run_dir, start_step, **kwargs))
    except BaseException:
        Loggers(built).close(failed=True)
        raise
    return Loggers(built)
