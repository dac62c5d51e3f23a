"""Console scripts (pyproject.toml [project.scripts]): `fpt-train` is `python train.py`, `fpt-eval` is
`python eval.py`, from any directory (the configs ship inside the package).

    fpt-train task=rte model=roberta-large prompt=deep     # the same overrides as train.py
    fpt-train --cfg job                                    # print the composed config
    fpt-train --help                                       # the config groups and their options
    fpt-eval run=outputs/demo split=eval                   # the same overrides as eval.py

`RunFolderCheck` (a Hydra callback, conf/config.yaml and conf/eval.yaml) refuses an unusable folder before
Hydra creates it and opens its log file there: a job folder that cannot be written, and for eval.py a `run=`
that is no training run (so a typo creates no `<typo>/eval/...` folder).

A bad value, a missing data file or a run folder that holds another config's run stops a single run with one line
naming it (`ConfigError: trainer.batch_size=0: expected a whole number >= 1`); HYDRA_FULL_ERROR=1 shows the
traceback. In a multirun the job fails as any other error does (Hydra reports it; the other jobs still run).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.experimental.callback import Callback  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from . import CONF_DIR  # noqa: E402
from .config import register_configs  # noqa: E402
from .extras import MissingExtra  # noqa: E402
from .runs.folder import RunFolderError, resolve_run_dir, run_config  # noqa: E402
from .runs.results import check_start  # noqa: E402
from .tasks import TaskDataError  # noqa: E402
from .validate import ConfigError, check_writable  # noqa: E402

register_configs()

# bad input the message already names (key and value, file and line, folder, the extra to install): no traceback
# adds to it
USER_ERRORS = (ConfigError, TaskDataError, RunFolderError, MissingExtra)


def config_groups(conf_dir=CONF_DIR) -> dict[str, list[str]]:
    """The config groups under conf/ and their options: the YAML files a user picks from (hydra/launcher too). The
    schemas (fpt/config.py, registered in Hydra's ConfigStore) are not options and are not listed."""
    groups = {}
    for folder in sorted(p for p in conf_dir.rglob("*") if p.is_dir()):
        group = folder.relative_to(conf_dir).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options:
            groups[group] = options
    return groups


def help_text(command: str) -> str:
    lines = [f"{command} [group=option ...] [key=value ...]   (README.md; docs/configuration.md)", "",
             "Config groups (group=option):"]
    lines += [f"  {group}: {', '.join(options)}" for group, options in config_groups().items()]
    lines += ["", "Any value: key=value (trainer.max_steps=100, optim.lr=1e-3); a sweep: -m key=a,b",
              f"{command} [overrides] --cfg job   prints the composed config (not with -m)",
              f"{command} --hydra-help             Hydra's own flags"]
    return "\n".join(lines)


def _command() -> str:
    return "fpt-train" if os.path.basename(sys.argv[0]) == "fpt-train" else "python train.py"


def train():
    """`python train.py` / `fpt-train`: --help lists the config groups; otherwise Hydra runs `_train`."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(help_text(_command()))
        return None
    return _train()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _train(cfg) -> float:
    """Train a prompt; returns the best dev value of the task's selection metric (what a sweeper maximizes)."""
    hc = HydraConfig.get()
    search = hc.runtime.choices.get("hparams_search")
    if search not in (None, "null") and hc.mode != RunMode.MULTIRUN:
        raise ValueError(f"hparams_search={search} is a sweep: add -m ({_command()} -m hparams_search={search} ...)")
    if hc.runtime.choices.get("hydra/launcher") == "local_gpus" and cfg.trainer.device == "auto":
        cfg.trainer.device = "free"  # a GPU of its own for each concurrent job (conf/hydra/launcher/local_gpus.yaml)
    try:
        check_start(cfg, hc.runtime.output_dir)  # config and data errors in seconds, before torch is imported
        from .runs.launch import main  # lazy: torch and the model code load after the checks above
        results = main(cfg, hc.runtime.output_dir)
    except USER_ERRORS as err:
        if hc.mode == RunMode.MULTIRUN or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    return results["best"].get(results["metric"], float("nan"))


@hydra.main(config_path=str(CONF_DIR), config_name="eval", version_base="1.3")
def evaluate(cfg) -> float:
    """Score a trained run's prompt (fpt/evaluate_run.py), or with no `run=` the untrained model of `model=... task=...`
    (zero-shot, fpt/zero_shot.py); returns the task's selection metric (NaN without gold labels)."""
    hc = HydraConfig.get()
    if cfg.run is None:  # RunFolderCheck made sure model= and task= are given
        from hydra import compose  # torch and the model code: imported once the command line composed

        from .zero_shot import evaluate_untrained, train_overrides  # lazy, as above
        train_cfg = compose(config_name="config", overrides=train_overrides(list(hc.overrides.task)))
        summary = evaluate_untrained(train_cfg, hc.runtime.output_dir, split=cfg.split, device=cfg.trainer.device,
                                     batch_size=cfg.trainer.eval_batch_size, bf16=cfg.trainer.bf16)
        return summary["metrics"].get(summary["metric"], float("nan"))
    from .evaluate_run import evaluate_run  # lazy, as above: torch once the command line composed
    overrides = {f"task.{k}": v for k, v in cfg.task.items() if k in ("data_dir", "max_eval_samples") and v is not None}
    summary = evaluate_run(cfg.run, hc.runtime.output_dir, split=cfg.split, data=cfg.data,
                           checkpoint=cfg.checkpoint, device=cfg.trainer.device, data_format=cfg.data_format,
                           batch_size=cfg.trainer.eval_batch_size, bf16=cfg.trainer.bf16, overrides=overrides)
    return summary["metrics"].get(summary["metric"], float("nan"))


# --------------------------------------------------------------------------- before Hydra writes anything
def check_eval_run(config) -> None:
    """eval.py's `run=` is a training run folder with a complete config.yaml and the checkpoint's tensors."""
    from .runs.trained import tensor_file  # lazy: it imports torch (this check runs before Hydra's job)
    if OmegaConf.select(config, "run") is None:
        if OmegaConf.select(config, "model") is not None and OmegaConf.select(config, "task.name") is not None:
            return  # zero-shot: the untrained model of model= and task= (fpt/zero_shot.py)
        raise ValueError("run= is missing: give the training run's folder (run=outputs/demo), or model=... task=... "
                         "to score the untrained model (zero-shot)")
    folder = resolve_run_dir(config.run)
    run_config(folder)
    tensor_file(folder, config.checkpoint)


class RunFolderCheck(Callback):
    """Refuse, before Hydra creates the job folder and opens its log file there, a folder that cannot be written
    (and for eval.py, `scores_a_run=true`, a `run=` that is no training run). The message is the one fpt's own
    checks give (docs/errors.md); the process exits with status 1 and nothing is written."""

    def __init__(self, scores_a_run: bool = False):
        self.scores_a_run = scores_a_run

    def on_run_start(self, config, **kwargs) -> None:
        try:
            if self.scores_a_run:
                check_eval_run(config)
            check_writable(OmegaConf.select(config, "hydra.run.dir"))
        except (OSError, ValueError) as err:  # ConfigError is a ValueError
            raise SystemExit(f"{type(err).__name__}: {err}") from None

    def on_multirun_start(self, config, **kwargs) -> None:
        try:
            check_writable(OmegaConf.select(config, "hydra.sweep.dir"))
        except ConfigError as err:
            raise SystemExit(f"{type(err).__name__}: {err}") from None
