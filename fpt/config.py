"""Structured configs: one dataclass per config group, so a typo'd key fails at start-up.

The YAML files in conf/<group>/ are validated against these schemas by Hydra
(each group's files start from the `<group>_schema` default registered below). This file is where a field is
described; conf/*.yaml and docs/ do not repeat it.

A field with a fixed set of values is a `Choice` enum below: OmegaConf refuses any other value when the config is
composed, naming the key and the allowed values, so the code that reads a choice does not check it again. A new
value is one new member here (plus the code that reads it). The choices that are extension points hold a registered
name instead, checked against their registry at start-up (fpt/validate.py): task.type (fpt/task_kinds/base.py,
`register_kind`), model.family (fpt/models/family.py, `register_family`), prompt.type (fpt/prompt_methods.py,
`register_prompt_method`) and task.metrics / task.metric (fpt/metrics.py, `register_metric`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra import compose as hydra_compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from . import CONF_DIR


class Choice(str, Enum):
    """A fixed choice. A str, so `cfg.optim.name == "adamw"`, f-strings, config.yaml and run identities read
    exactly as the plain string did; a member's name is its value (OmegaConf writes and parses the name)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)


class AttnImplementation(Choice):
    sdpa = "sdpa"
    eager = "eager"


class Pooling(Choice):  # BERT-family pooled heads
    pooler = "pooler"  # the backbone's pooler (as P-tuning v2)
    cls = "cls"        # the [CLS] state
    mean = "mean"      # the mean over the real tokens


class PromptInit(Choice):  # which ones a prompt.type takes: fpt/prompt_methods.py (`inits`)
    uniform = "uniform"  # shallow: U(-init_range, init_range)
    normal = "normal"    # deep: N(0, 1)
    vocab = "vocab"      # random vocabulary tokens' embeddings (deep: their keys/values)
    text = "text"        # the tokens of prompt.init_text


class RetrieverArch(Choice):
    dpr = "dpr"          # one vector per text
    colbert = "colbert"  # token vectors, MaxSim


class RetrieverPooling(Choice):  # dpr
    cls = "cls"
    mean = "mean"  # over the real tokens


class Similarity(Choice):  # dpr (colbert: always cosine per token)
    dot = "dot"
    cosine = "cosine"


class SearchBackend(Choice):  # exact search
    torch = "torch"  # matmul
    faiss = "faiss"  # IndexFlatIP
    auto = "auto"    # faiss if installed


class NegativeSource(Choice):  # retrieval: where the hard negatives come from
    qrels = "qrels"  # judged score 0 / DPR's hard_negative_ctxs, topped up at random
    bm25 = "bm25"    # mined: the top BM25 passages that are not positive


class TagScheme(Choice):
    IOB1 = "IOB1"  # converted to IOB2 when read (CoNLL-2003's files)
    IOB2 = "IOB2"


class NewLayerPrefix(Choice):  # deep prompts: how a joining layer's prefix starts
    init = "init"  # its own untrained init
    copy = "copy"  # the nearest trained layer's prefix
    gate = "gate"  # its init behind a learnable per-site gate at 0: no effect at the join, grows in as it trains


class KeepLayers(Choice):  # which layers a stage keeps
    spread = "spread"  # evenly spaced, first and last (as FPT)
    bottom = "bottom"  # the first k: their inputs are the full model's own


class Optimizer(Choice):
    adamw = "adamw"
    adafactor = "adafactor"


class LRSchedule(Choice):
    linear = "linear"
    constant = "constant"
    exponential = "exponential"  # lr x optim.decay_per_epoch after every epoch


class EvalStrategy(Choice):
    steps = "steps"  # every trainer.eval_every steps
    epoch = "epoch"  # after every pass over the data


@dataclass
class ModelConfig:
    name: str = MISSING                 # short name used in results and score files
    name_or_path: str = MISSING         # hub id, local folder, or "bundled:minilm"
    family: str = MISSING               # a registered model family (fpt/models/family.py)
    tokenizer: Optional[str] = None     # defaults to name_or_path
    from_config: Optional[dict[str, Any]] = None  # build random weights from this HF config (tiny test models)
    attn_implementation: AttnImplementation = AttnImplementation.sdpa
    target_prefix: str = ""             # text put before every T5 target (FPT: "<extra_id_0>")
    pooling: Pooling = Pooling.pooler
    head_dropout: float = 0.1
    dropout: Optional[float] = None     # override the backbone's dropout probabilities (FPT: 0)
    attention_dropout: Optional[float] = None  # attention-probability dropout when it differs (default: dropout)
    max_new_tokens: int = 10            # greedy decoding length for text-to-text tasks
    device_map: Optional[str] = None    # e.g. "auto" to shard a big model over several GPUs


@dataclass
class PromptConfig:
    type: str = MISSING                 # a registered prompt method (fpt/prompt_methods.py)
    length: int = 20
    init: PromptInit = PromptInit.uniform
    init_range: Optional[float] = None  # shallow uniform half-width, default 1/sqrt(d_model)
    init_text: str = ""                 # shallow init="text"
    projection: bool = False            # deep: P-tuning v2 reparameterization MLP
    projection_hidden: int = 512
    dropout: float = 0.0                # deep: dropout on the prefix


@dataclass
class RetrieverConfig:
    """task.type=retrieval: the retriever on top of the backbone (fpt/models/retrieval.py, docs/retrieval.md)."""
    arch: RetrieverArch = RetrieverArch.dpr
    shared: bool = True                 # one encoder for queries and passages; false: a prompt (or, fine-tuned, a
                                        # backbone copy) of their own for the passages
    pooling: RetrieverPooling = RetrieverPooling.mean
    similarity: Similarity = Similarity.cosine
    temperature: float = 0.05           # softmax temperature of the contrastive loss (and of the calibrated scores)
    query_max_length: int = 64          # query tokens (passages: task.max_length)
    dim: int = 128                      # colbert: token vector size (a trained linear map)
    query_marker: str = "[unused0]"     # colbert: token after [CLS] of a query
    doc_marker: str = "[unused1]"       # colbert: token after [CLS] of a passage
    search: SearchBackend = SearchBackend.auto
    top_k: int = 100                    # passages kept per query (metrics, predictions)
    chunk_size: int = 8192              # passages scored at once (peak memory: queries x chunk_size scores)


@dataclass
class TaskConfig:
    name: str = MISSING
    type: str = "classification"        # a registered task kind (fpt/task_kinds/)
    hub: Optional[list[str]] = None     # datasets.load_dataset args, e.g. [glue, rte]
    hub_splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "eval": "validation"})
    data_dir: Optional[str] = None      # local files in the official format (overrides hub)
    # local file format: tsv | csv | jsonl, or an official format read by fpt/readers/ (READERS):
    # squad_json | conll | spert_json | srl | multirc_jsonl | record_jsonl
    format: str = "tsv"
    files: dict[str, str] = field(default_factory=dict)  # split -> file name inside data_dir
    header: bool = True                 # tsv/csv: first line is a header
    column_names: Optional[list[str]] = None  # tsv/csv without header
    text_fields: list[str] = MISSING    # one or two input columns (BERT: a sentence pair), or "{col}" templates
    label_field: str = "label"
    labels: list[str] = field(default_factory=list)      # raw label values, in class-index order
    verbalizers: list[str] = field(default_factory=list)  # T5 target text per label
    template: str = MISSING             # T5 input text, e.g. "rte sentence1: {sentence1} sentence2: {sentence2}"
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    metric: str = "accuracy"            # selection metric (higher is better)
    max_length: int = 128
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    shuffle_seed: int = 0               # order before max_train_samples is applied ("first N shuffled rows")
    rename: dict[str, str] = field(default_factory=dict)  # local files: column renames (file name -> task name)
    derive: list[str] = field(default_factory=list)       # derived columns (fpt/readers/derived.py DERIVED)
    text_variants: dict[str, list[str]] = field(default_factory=dict)  # named alternative text_fields (templates)
    text_variant: Optional[str] = None  # pick one of text_variants instead of text_fields
    test_splits: list[str] = field(default_factory=list)  # also scored at every eval as "<split>_<metric>"
    group_field: Optional[str] = None   # classification: question id template (MultiRC's per-question EM)
    choice_fields: list[str] = field(default_factory=list)  # multiple_choice: columns filled into "{choice}"
    tokens_field: str = "tokens"        # token_classification: word list column
    tags_field: str = "tags"            # token_classification: tag list column (strings or class indices)
    tag_scheme: TagScheme = TagScheme.IOB2  # token_classification: how the tag files are written
    tag_types: list[str] = field(default_factory=list)  # labels = O, B-t, I-t for each type t (instead of labels)
    predicate_field: Optional[str] = None  # SRL: predicate word index, appended after [SEP] as a 2nd segment
    conll_columns: list[int] = field(default_factory=lambda: [0, -1])  # format conll: token and tag column
    answers_field: str = "answers"      # span_qa / record: gold answers column
    allow_no_answer: bool = False       # span_qa: SQuAD 2.0 (unanswerable questions, null-score threshold)
    no_answer_text: str = "no answer"   # span_qa text-to-text: target for unanswerable questions
    doc_stride: int = 128               # span_qa: overlap of consecutive windows of a long context
    n_best: int = 20                    # span_qa: start/end candidates per window
    max_answer_length: int = 30         # span_qa: longest answer, in tokens
    null_threshold: float = 0.0         # span_qa v2: answer "" when null score - best span score > this
    target: Optional[str] = None        # generation: target template, e.g. "{summary}"
    max_target_length: int = 16         # text-to-text: target tokens kept in training
    generate_max_tokens: Optional[int] = None  # text-to-text: greedy decoding length (default model.max_new_tokens)
    generate_min_tokens: int = 0
    hard_negatives: int = 0             # retrieval: hard negative passages per training query (plus in-batch ones)
    negatives: NegativeSource = NegativeSource.qrels
    shared_files: list[str] = field(default_factory=list)  # files inside data_dir every split reads (BEIR corpus)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)


@dataclass
class StageConfig:
    layers: Optional[float] = None      # int = layer count, float < 1 = fraction of layers, None = all
    ffn_ratio: float = 1.0              # fraction of FFN neurons kept
    fraction: Optional[float] = None    # share of trainer.max_steps (or give steps)
    steps: Optional[int] = None


@dataclass
class ScheduleConfig:
    name: str = "none"
    stages: list[StageConfig] = field(default_factory=list)  # empty = the full model throughout
    reduce_decoder: Optional[bool] = None  # T5: shrink the decoder too; null: for generated answers only (SQuAD,
                                           # ReCoRD, XSum), not for label words (MNLI, QQP)
    # a joining layer's prefix: its optimizer state starts fresh the first time it joins (a returning layer keeps
    # its own)
    new_layer_prefix: NewLayerPrefix = NewLayerPrefix.init
    keep_layers: KeepLayers = KeepLayers.spread
    stage_warmup_steps: int = 0         # > 0: linear LR warm-up over this many steps after each stage change
    eval_final_at_stage_end: bool = False  # diagnostic: at each partial stage's end, also score the prompt on
                                           # the model the run ends with (metrics.jsonl "eval_final_model")
    size: Optional[float] = None        # partial_* schedules: the kept share, interpolated into their stage
    num_score_examples: int = 1000      # activation scores (fpt/scores.py): validation examples, their seed,
    score_seed: int = 0
    scores_path: Optional[str] = None   # and the cache (default {output_root}/scores/{task}-{model}.safetensors)


@dataclass
class OptimConfig:
    name: Optimizer = Optimizer.adamw
    lr: float = 1e-2
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: LRSchedule = LRSchedule.linear
    decay_per_epoch: float = 0.95       # exponential: lr x this after every epoch (P-tuning v2's NER/SRL/QA)
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    max_grad_norm: Optional[float] = 1.0
    scale_parameter: bool = False       # Adafactor
    relative_step: bool = False
    warmup_init: bool = False


@dataclass
class TrainerConfig:
    max_steps: Optional[int] = None     # either max_steps or epochs
    epochs: Optional[float] = None
    batch_size: int = 32                # global batch (split over DDP ranks and accumulation)
    grad_accum: int = 1
    group_by_length: bool = True        # training batches of similar length (fpt/batching.py; docs/speed.md)
    eval_strategy: EvalStrategy = EvalStrategy.steps
    eval_every: int = 100
    eval_batch_size: int = 64
    save_every: Optional[int] = None    # checkpoint every N steps (default: eval_every)
    stop_at_step: Optional[int] = None  # evaluate, checkpoint and return status "stopped" there (a search's rung)
    device: str = "auto"                # auto | cpu | cuda | cuda:1 ...
    bf16: bool = True                   # autocast to bf16 on CUDA
    gradient_checkpointing: bool = False  # recompute each layer's activations in the backward: less memory, more time
    checkpoint_layers: float = 1.0      # with it: the fraction of each layer stack checkpointed, from the bottom
    resume: bool = True                 # continue a killed run (same run dir or same config)
    skip_completed: bool = True         # a finished run with this exact config is not run again
    keep_checkpoints: bool = True       # false: a completed run removes checkpoint/*.pt (its safetensors stay)
    progress: bool = True
    log_every: int = 10
    threads: Optional[int] = None       # torch CPU threads


@dataclass
class ReleasedConfig:
    """A published result this config reproduces; `python -m fpt.collect` prints ours next to it."""
    source: str = MISSING               # where the number comes from, e.g. "P-tuning v2 run_script/run_rte_roberta.sh"
    metrics: dict[str, float] = MISSING  # our metric key (as in results.json "best") -> the published value, in %
    best_epoch: Optional[int] = None    # the epoch the published number was reached at
    total_epochs: Optional[int] = None




def flatten(tree: dict, prefix: str = "") -> dict:
    """{"optim": {"lr": 0.01}} -> {"optim.lr": 0.01}; lists and empty dicts stay values."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


@dataclass
class PathsConfig:
    data_root: str = MISSING            # benchmark files: conf/paths/default.yaml ($FPT_DATA_ROOT or its default)


@dataclass
class Config:
    model: ModelConfig = MISSING
    task: TaskConfig = MISSING
    prompt: PromptConfig = MISSING
    schedule: ScheduleConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: dict[str, Any] = field(default_factory=dict)  # conf/logger/: {name: {_target_, options}} (fpt/loggers.py)
    seed: int = 42
    output_root: str = "outputs"
    run_dir: Optional[str] = None       # set at start-up to Hydra's output folder
    released: Optional[ReleasedConfig] = None  # the published number an experiment config reproduces
    init_from: Optional[str] = None     # a run folder or trained-tensor file to start from (fpt/runs/init_from.py)


def eval_dir(run, output_root) -> str:
    """eval.py's output folder: <run>/eval, or <output_root>/zero-shot without a run (conf/eval.yaml)."""
    return f"{run}/eval" if run else f"{output_root}/zero-shot"


def register_configs() -> None:
    from omegaconf import OmegaConf
    OmegaConf.register_new_resolver("fpt_eval_dir", eval_dir, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, node in [("model", ModelConfig), ("task", TaskConfig), ("prompt", PromptConfig),
                        ("schedule", ScheduleConfig), ("optim", OptimConfig), ("trainer", TrainerConfig),
                        ("paths", PathsConfig)]:
        cs.store(group=group, name=f"{group}_schema", node=node)


def compose(*overrides: str, config_name: str = "config"):
    """The config train.py would see for these command-line overrides (Hydra's compose API on fpt's tree)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
