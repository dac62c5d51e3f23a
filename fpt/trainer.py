"""One training run: data -> prompted model -> training loop (stages, evaluation, checkpoints) -> results.

Read top to bottom: `Trainer.run()` is the whole run. A run is a list of stages (one stage, the full
model, unless a growth schedule says otherwise); the optimizer and LR schedule span all stages.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup
from transformers.optimization import Adafactor

from . import distributed as dist
from .checkpoint import (load_checkpoint, rng_state, save_checkpoint, save_tensors, set_rng_state,
                         write_json)
from .flops import step_flops
from .loggers import build_loggers, check_loggers, scalars_of
from .models import build_model, load_tokenizer
from .evaluation import check_metric, evaluate_splits
from .tasks import collate, read_rows
from .task_kinds import get_kind


class TrainingError(RuntimeError):
    pass


# --------------------------------------------------------------------------- pieces
def pick_device(name: str) -> torch.device:
    if name == "auto":
        if dist.is_distributed() and torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def place_model(model, device: torch.device, sharded: bool) -> torch.device:
    """Move the model to `device`; return the device batches go to.

    A model loaded with `model.device_map` (sharded over GPUs by Hugging Face) stays where it was put:
    only the prompt and head move, to the device of the input embeddings, where batches go too.
    """
    if not sharded:
        model.to(device)
        return device
    if dist.world_size() > 1:
        raise ValueError("model.device_map shards one model over this process's GPUs; it cannot be combined with "
                         "DDP (torchrun with more than one process). Use one or the other.")
    first = model.backbone.get_input_embeddings().weight.device
    for name, child in model.named_children():
        if name != "backbone":
            child.to(first)
    return first


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class BatchStream:
    """Example indices for step s, the same whatever happened before: epoch e is a permutation
    seeded by (seed, e), and step s takes the global examples [s*B, (s+1)*B) of that endless stream."""

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = num_examples, batch_size, seed
        self._epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g).tolist()
        return self._perm

    def indices(self, step: int) -> list[int]:
        start = step * self.batch_size
        return [self._permutation(k // self.n)[k % self.n] for k in range(start, start + self.batch_size)]


def build_optimizer(params, cfg):
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas),
                                 eps=cfg.eps)
    if cfg.name == "adafactor":
        return Adafactor(params, lr=cfg.lr, weight_decay=cfg.weight_decay, scale_parameter=cfg.scale_parameter,
                         relative_step=cfg.relative_step, warmup_init=cfg.warmup_init)
    raise ValueError(f"optim.name={cfg.name!r}: expected adamw or adafactor")


def build_lr_schedule(optimizer, cfg, total_steps: int):
    warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total_steps)
    if cfg.schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    if cfg.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    raise ValueError(f"optim.schedule={cfg.schedule!r}: expected linear or constant")


def _fault(point: str, step: int) -> None:
    """Fault injection for the crash tests: FPT_FAULT=<point>:<step> SIGKILLs this process there."""
    spec = os.environ.get("FPT_FAULT", "")
    if spec and spec == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- the run
class Trainer:
    def __init__(self, cfg, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.task, self.tcfg = cfg.task, cfg.trainer
        self.device = pick_device(self.tcfg.device)
        self.is_main = dist.rank() == 0
        if self.is_main:
            check_loggers(cfg.get("logger"))  # a missing wandb/mlflow fails now, not after loading data and model
        if self.tcfg.threads:
            torch.set_num_threads(self.tcfg.threads)
        seed_everything(cfg.seed)

        # data
        self.tokenizer = load_tokenizer(cfg.model)
        from .models import get_family
        self.family = get_family(cfg.model)
        self.seq2seq = self.family.seq2seq
        self.kind = get_kind(self.task)
        self.kind.check_config(self.task, self.seq2seq)
        check_metric(self.task)
        self.train_set = self._features("train")
        self.eval_set = self._features("eval")
        self.test_sets = {split: self._features(split) for split in self.task.test_splits}
        self.pad_id = self.tokenizer.pad_token_id or 0

        # model (the same init on every rank: seeded just before)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, self.tokenizer, num_labels=self.kind.num_labels(self.task))
        self.device = place_model(self.model, self.device, sharded=bool(cfg.model.device_map))
        self.backbone_trains = cfg.prompt.type == "none"
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.ddp_model = self.model  # DDP-wrapped in run(), once the stage's model is built

        # steps, optimizer, schedule
        world, accum = dist.world_size(), self.tcfg.grad_accum
        if self.tcfg.batch_size % (world * accum):
            raise ValueError(f"trainer.batch_size={self.tcfg.batch_size} must be divisible by world size {world} "
                             f"x trainer.grad_accum {accum}")
        self.micro_batch = self.tcfg.batch_size // (world * accum)
        self.total_steps = self._total_steps()
        self.optimizer = build_optimizer(self.trainable, cfg.optim)
        self.lr_schedule = build_lr_schedule(self.optimizer, cfg.optim, self.total_steps)
        self.stream = BatchStream(len(self.train_set), self.tcfg.batch_size, cfg.seed)
        from .growth import Growth
        self.growth = Growth.from_config(cfg, self.model, self.total_steps, self.train_set, self.eval_set,
                                         self.run_dir)

        # state that a checkpoint carries
        self.step = 0
        self.best = {"step": None, "metrics": None}
        self.train_flops = 0
        self.train_seconds = 0.0
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                         if self.device.type == "cuda" and self.tcfg.bf16 else nullcontext())
        self.loggers = None  # fpt/loggers.py, opened in run() on the main rank

    def _features(self, split):
        rows = read_rows(self.task, split)
        if not rows:
            raise ValueError(f"task {self.task.name}: split {split!r} has no rows")
        return self.kind.features(self.task, rows, self.tokenizer, self.seq2seq, self.cfg.model.target_prefix,
                                  train=split == "train")

    def _total_steps(self) -> int:
        if self.tcfg.max_steps:
            return int(self.tcfg.max_steps)
        if self.tcfg.epochs:
            return math.ceil(self.tcfg.epochs * len(self.train_set) / self.tcfg.batch_size)
        raise ValueError("set trainer.max_steps or trainer.epochs")

    # ---------------------------------------------------------------- checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoint" / "last.pt"

    def save(self) -> None:
        if not self.is_main:
            return
        state = {"step": self.step, "trainable": self.model.trainable_state_dict(),
                 "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                 "rng": rng_state(), "best": self.best, "train_flops": self.train_flops,
                 "train_seconds": self.train_seconds}
        step = self.step
        save_checkpoint(self.ckpt_path, state, before_rename=lambda: _fault("checkpoint_write", step))

    def load(self) -> bool:
        if not (self.tcfg.resume and self.ckpt_path.is_file()):
            return False
        state = load_checkpoint(self.ckpt_path)
        self.step = state["step"]
        self.growth.enter(self.step)  # the stage the run was in, before loading its tensors
        missing = self.model.load_state_dict(state["trainable"], strict=False).unexpected_keys
        if missing:
            raise ValueError(f"{self.ckpt_path}: checkpoint holds tensors this model does not have: {missing[:5]}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        set_rng_state(state["rng"])
        self.best, self.train_flops, self.train_seconds = state["best"], state["train_flops"], state["train_seconds"]
        self._truncate_log(self.step)
        return True

    # ---------------------------------------------------------------- logging
    def log(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.loggers is not None:
            self.loggers.log_scalars(scalars_of(record), record["step"])

    def _truncate_log(self, step: int) -> None:
        path = self.run_dir / "metrics.jsonl"
        if self.is_main and path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in kept))

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Dev metrics (and "<split>_<metric>" for task.test_splits), gathered over DDP ranks (fpt/evaluation.py)."""
        self.model.eval()
        metrics = evaluate_splits(self.model, self.kind, self.task, {"eval": self.eval_set, **self.test_sets},
                                  seq2seq=self.seq2seq, batch_size=self.tcfg.eval_batch_size, device=self.device,
                                  pad_id=self.pad_id, autocast=self.autocast)
        self.model.train()
        return metrics

    # ---------------------------------------------------------------- one optimizer step
    def train_step(self, step: int) -> float:
        indices = self.stream.indices(step)
        mine = dist.shard(indices)
        total_loss = 0.0
        for k in range(self.tcfg.grad_accum):
            micro = [self.train_set[i] for i in mine[k * self.micro_batch:(k + 1) * self.micro_batch]]
            batch = {key: v.to(self.device) for key, v in collate(micro, self.pad_id).items()}
            sync = k == self.tcfg.grad_accum - 1
            with (nullcontext() if sync else dist.no_sync(self.ddp_model)), self.autocast:
                loss = self.ddp_model(batch)["loss"]
            if not torch.isfinite(loss):
                raise TrainingError(f"loss is {loss.item()} at step {step + 1} (optim.lr={self.cfg.optim.lr}); "
                                    f"lower the learning rate or check the data")
            (loss / self.tcfg.grad_accum).backward()
            total_loss += loss.item() / self.tcfg.grad_accum
            self.train_flops += dist.total(self._flops(batch))  # what every rank's shard cost
        if self.cfg.optim.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optim.max_grad_norm)
        self.optimizer.step()
        self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return dist.mean(total_loss)

    def _flops(self, batch) -> int:
        dims = self.family.dims(self.model.backbone.config)
        shape = self.growth.current_shape(dims)
        src = batch["input_ids"].shape
        tgt = batch["labels"].shape[1] if self.seq2seq else 0
        return step_flops(dims, src[0], src[1], tgt, shallow=self.model.shallow_length,
                          deep=self.cfg.prompt.length if self.cfg.prompt.type == "deep" else 0,
                          backbone_trains=self.backbone_trains, **shape)

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict:
        try:
            return self._run()
        except BaseException:
            if self.loggers is not None:
                self.loggers.close(failed=True)
            raise

    def _run(self) -> dict:
        resumed = self.load()
        if not resumed:
            self.growth.enter(0)
        self.ddp_model = dist.wrap(self.model, self.device)
        if self.is_main:
            self.loggers = build_loggers(self.cfg.get("logger"), self.run_dir, start_step=self.step)
            self.loggers.log_hparams(OmegaConf.to_container(self.cfg, resolve=True))
        self.model.train()
        save_every = self.tcfg.save_every or self.tcfg.eval_every
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"{self.task.name} {self.cfg.prompt.type}",
                   disable=not (self.tcfg.progress and self.is_main), dynamic_ncols=True)
        final = None
        while self.step < self.total_steps:
            started = time.perf_counter()  # growing the model counts as training time
            if self.growth.enter(self.step):
                self.trainable = [p for p in self.model.parameters() if p.requires_grad]
                self.ddp_model = dist.wrap(self.model, self.device)  # DDP hooks this stage's parameters
            loss = self.train_step(self.step)
            self.train_seconds += time.perf_counter() - started
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.lr_schedule.get_last_lr()[0]:.2e}")
            if self.step % self.tcfg.log_every == 0 or self.step == self.total_steps:
                self.log({"step": self.step, "loss": loss, "lr": self.lr_schedule.get_last_lr()[0],
                          "train_flops": self.train_flops, "train_seconds": self.train_seconds,
                          "stage": self.growth.stage_index})
            if self.step % self.tcfg.eval_every == 0 or self.step == self.total_steps:
                final = self.evaluate()
                self.log({"step": self.step, "eval": final, "train_flops": self.train_flops,
                          "train_seconds": self.train_seconds})
                score = final[self.task.metric]
                # a growth schedule's partial models do not compete: the prompt must work on the final model
                if self.growth.final_stage and (self.best["metrics"] is None
                                                or score > self.best["metrics"][self.task.metric]):
                    self.best = {"step": self.step, "metrics": final}
                    if self.is_main:
                        save_tensors(self.run_dir / "trainable_best.safetensors", self.model.trainable_state_dict())
                best = self.best["metrics"][self.task.metric] if self.best["metrics"] else float("nan")
                if self.is_main:  # one line per evaluation, not one per DDP rank
                    bar.write(f"step {self.step}: {self.task.metric}={score:.4f} (best {best:.4f} "
                              f"at step {self.best['step']})")
            if self.step % save_every == 0 or self.step == self.total_steps:
                self.save()
            _fault("after_step", self.step)
        bar.close()
        if final is None:  # resumed after the last step: re-evaluate the finished prompt
            final = self.evaluate()
        if self.is_main:
            save_tensors(self.run_dir / "trainable_final.safetensors", self.model.trainable_state_dict())
        if self.loggers is not None:
            loggers, self.loggers = self.loggers, None
            loggers.close()
        return self.results(final, "completed")

    def results(self, final: dict | None, status: str, error: str | None = None) -> dict:
        cfg = self.cfg
        out = {"task": cfg.task.name, "model": cfg.model.name, "prompt": cfg.prompt.type,
               "schedule": cfg.schedule.name, "seed": cfg.seed, "steps": self.step, "total_steps": self.total_steps,
               "best_step": self.best["step"], "metric": cfg.task.metric, "best": self.best["metrics"] or {},
               "final": final or {}, "trainable_params": sum(p.numel() for p in self.trainable),
               "train_seconds": self.train_seconds, "train_flops": self.train_flops, "status": status,
               "prompt_length": cfg.prompt.length, "lr": cfg.optim.lr, "batch_size": cfg.trainer.batch_size,
               "growth": self.growth.summary()}
        if error:
            out["error"] = error
        return out
