"""One run's parts, assembled in one place: `build(cfg, device)` -> tokenizer, data, model (with its prompt and
head), growth schedule, optimizer, LR schedule and batch stream.

Every caller that needs a run's model goes through here: the Trainer (training), `load_run` (a finished run's
model, `training=False`), zero-shot evaluation, tools and benchmarks. The order of the steps below is the order of
every random draw of a run: changing it changes the numbers of every run.

    threads -> seeds -> tokenizer -> features -> seed -> model -> init_from -> placement -> growth
    -> optimizer -> LR schedule -> batch stream -> per-rank seed
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import distributed as dist
from .batching import BatchStream, Features, train_stream
from .device import pick_device, place_model, rank_seed, seed_everything
from .evaluation import check_metric
from .growth import Growth
from .models import Family, build_model, get_family, load_tokenizer
from .optim import build_lr_schedule, build_optimizer
from .runs.init_from import apply_init_from
from .scores import load_or_compute
from .task_kinds import get_kind
from .tasks import read_rows, training_set_warnings


@dataclass
class Parts:
    """What `build` assembled. Without training: no train/test features, optimizer, schedule or stream."""
    cfg: object
    device: torch.device  # where batches go (a model sharded by model.device_map: its input embeddings' device)
    tokenizer: object
    family: Family
    kind: object  # fpt.task_kinds.base.Kind
    model: torch.nn.Module  # the prompted model with its head (fpt/models/)
    growth: Growth
    total_steps: int  # the steps the LR and growth schedules are laid out for
    train_set: Features | None = None
    eval_set: Features | None = None
    test_sets: dict = field(default_factory=dict)
    init_from: dict | None = None  # what cfg.init_from loaded (fpt/runs/init_from.py), for results.json
    step_offset: int = 0  # a continuation's steps before this run (init_from's start_step)
    trainable: list = field(default_factory=list)  # every prompt tensor, also those a growth stage leaves out
    optimizer: torch.optim.Optimizer | None = None
    lr_schedule: object = None
    stream: BatchStream | None = None
    micro_batch: int = 0  # examples per forward: trainer.batch_size / (world size x trainer.grad_accum)

    @property
    def seq2seq(self) -> bool:
        return self.family.seq2seq


def features(cfg, kind, tokenizer, seq2seq: bool, split: str, warn: bool = False) -> Features:
    """The features of one split of cfg.task (`warn`: the training set's warnings, logged once per run)."""
    rows = read_rows(cfg.task, split)
    if not rows:
        raise ValueError(f"task {cfg.task.name}: split {split!r} has no rows")
    if split == "train" and warn:
        training_set_warnings(cfg.task, rows, cfg.trainer.batch_size)
    return kind.features(cfg.task, rows, tokenizer, seq2seq, cfg.model.target_prefix, train=split == "train")


def total_steps(tcfg, num_examples: int) -> int:
    """The run's optimizer steps: trainer.max_steps, or trainer.epochs over `num_examples` training examples."""
    if tcfg.max_steps:
        return int(tcfg.max_steps)
    if tcfg.epochs:
        return math.ceil(tcfg.epochs * num_examples / tcfg.batch_size)
    raise ValueError("set trainer.max_steps or trainer.epochs")


def micro_batch(batch_size: int, world: int, accum: int) -> int:
    if batch_size % (world * accum):
        raise ValueError(f"trainer.batch_size={batch_size} must be divisible by world size {world} "
                         f"x trainer.grad_accum {accum}")
    return batch_size // (world * accum)


def build(cfg, device: torch.device | str, *, training: bool = True, steps: int | None = None,
          is_main: bool = True) -> Parts:
    """The parts of a run of `cfg` on `device` (a torch device, or a trainer.device name).

    training=True: what the Trainer trains (every split's features, optimizer, LR schedule, batch stream; seeds and
    threads set as the run sets them). training=False: the run's model for evaluation, shaped as the final stage of
    its growth schedule (the dev features only where a schedule needs activation scores); `steps` is the length
    the run's schedule was laid out for (default: from the config). `is_main`: this process logs the training
    set's warnings (DDP rank 0).
    """
    tcfg = cfg.trainer
    device = device if isinstance(device, torch.device) else pick_device(device)
    if training:
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        seed_everything(cfg.seed)

    # data
    tokenizer = load_tokenizer(cfg.model)
    family = get_family(cfg.model)
    kind = get_kind(cfg.task)
    kind.check_config(cfg.task, family.seq2seq)
    train_set, eval_set, test_sets = None, None, {}
    if training:
        check_metric(cfg.task)
        train_set = features(cfg, kind, tokenizer, family.seq2seq, "train", warn=is_main)
        eval_set = features(cfg, kind, tokenizer, family.seq2seq, "eval")
        test_sets = {split: features(cfg, kind, tokenizer, family.seq2seq, split) for split in cfg.task.test_splits}
    elif cfg.schedule.stages:  # activation scores for the schedule's FFN widths are computed on the dev set
        eval_set = features(cfg, kind, tokenizer, family.seq2seq, "eval")

    # model (the same init on every rank: seeded just before)
    torch.manual_seed(cfg.seed)
    ckpt = dict(gradient_checkpointing=tcfg.gradient_checkpointing, checkpoint_layers=tcfg.checkpoint_layers)
    model = build_model(cfg.model, cfg.prompt, cfg.task, tokenizer, kind.num_labels(cfg.task), kind=kind,
                        **(ckpt if training else {}))
    init_from = apply_init_from(cfg, model)  # a trained prompt to start from (fpt/runs/init_from.py)
    step_offset = init_from["start_step"] if init_from else 0  # a continuation's step count
    device = place_model(model, device, sharded=bool(cfg.model.device_map))

    # steps, growth (before the optimizer: a schedule may add prompt tensors, gates), optimizer, schedule
    micro = micro_batch(tcfg.batch_size, dist.world_size(), tcfg.grad_accum) if training else 0
    if steps is None:
        steps = total_steps(tcfg, len(train_set)) if training else int(tcfg.max_steps or 0)
    growth = Growth.from_config(
        cfg.schedule, model, steps, prompt_type=cfg.prompt.type, prompt_projection=bool(cfg.prompt.projection),
        generates_text=kind.generates_text, scores=lambda: load_or_compute(cfg, model, eval_set))
    parts = Parts(cfg, device, tokenizer, family, kind, model, growth, steps, train_set, eval_set, test_sets,
                  init_from, step_offset, micro_batch=micro)
    if not training:
        growth.enter(steps)  # the prompt was selected on the schedule's final stage: shape the model as that
        return parts
    # every prompt tensor from the start, also those a growth stage leaves out (grad None: no optimizer
    # state until they join, so a site joining for the first time starts fresh)
    parts.trainable = [p for _, p in model.trainable_parameters()]
    parts.optimizer = build_optimizer(parts.trainable, cfg.optim)
    parts.lr_schedule = build_lr_schedule(parts.optimizer, cfg.optim, steps, tcfg.batch_size, len(train_set))
    if growth.stage_warmup_steps:  # schedule.stage_warmup_steps: an LR factor after each stage change
        parts.lr_schedule.lr_lambdas = [lambda s, f=f: f(s) * growth.lr_factor(s)
                                        for f in parts.lr_schedule.lr_lambdas]
    # step s's examples, a pure function of (seed, s): grouped by length over this run's steps, or not
    parts.stream = train_stream(train_set, tcfg.batch_size, cfg.seed, tcfg.group_by_length,
                                start=step_offset, end=step_offset + steps)
    if dist.rank() > 0:  # same init on every rank above; from here on each rank draws its own dropout masks
        seed_everything(rank_seed(cfg.seed, dist.rank()))
    return parts
