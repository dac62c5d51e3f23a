"""One training run's loop: stages, optimizer steps, evaluation, checkpoints -> results.

The run's parts (data, prompted model, growth schedule, optimizer, LR schedule, batch stream) come from
fpt/build.py. Read top to bottom: `Trainer.run()` is the whole run. A run is a list of stages (one stage, the
full model, unless a growth schedule says otherwise); the optimizer and LR schedule span all stages.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import distributed as dist
from .batching import collate
from .build import build
from .device import pick_device, rank_seed, seed_everything
from .evaluation import evaluate_splits
from .flops import step_flops
from .loggers import build_loggers, check_loggers, scalars_of
from .runs.checkpoint import load_checkpoint, rng_state, save_checkpoint, save_tensors, set_rng_state, write_text
from .runs.identity import fingerprint
from .runs.results import improves, run_results
from .runs.trained import tensor_metadata
from .prompt_methods import prompt_method


log = logging.getLogger("fpt")

# 2: one trainable tensor per attention site's prefix (deep.prefixes.<i>, deep.outputs.<i>, deep.gates.<i>)
CHECKPOINT_FORMAT = 2


class TrainingError(RuntimeError):
    pass


class Interrupted(Exception):
    """SIGINT/SIGTERM: the run wrote a checkpoint at the step boundary and stopped (the same command resumes)."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step, self.signal_name = signum, step, signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name} at step {step}")


# --------------------------------------------------------------------------- pieces
def progress_interval(stream) -> float:
    """Seconds between progress-bar redraws: live on a terminal, every 30 s in a log file (Slurm, nohup)."""
    isatty = getattr(stream, "isatty", None)
    return 0.1 if isatty is not None and isatty() else 30.0


def _fault(point: str, step: int) -> None:
    """Fault injection for the crash tests: FPT_FAULT=<point>:<step> SIGKILLs this process there."""
    spec = os.environ.get("FPT_FAULT", "")
    if spec and spec == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- the run
class Trainer:
    def __init__(self, cfg, run_dir: Path, identity: dict | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.identity = identity  # what the run is (fpt/runs/identity.py): every checkpoint carries it
        self.task, self.tcfg = cfg.task, cfg.trainer
        device = pick_device(self.tcfg.device)
        self.is_main = dist.rank() == 0
        if self.is_main:
            check_loggers(cfg.get("logger"))  # a missing wandb/mlflow fails now, not after loading data and model

        # data, model, growth, optimizer, LR schedule, batch stream (fpt/build.py: the order of every random draw)
        parts = build(cfg, device, is_main=self.is_main)
        self.device, self.tokenizer, self.family, self.kind = parts.device, parts.tokenizer, parts.family, parts.kind
        self.seq2seq = parts.seq2seq
        self.train_set, self.eval_set, self.test_sets = parts.train_set, parts.eval_set, parts.test_sets
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.model, self.growth = parts.model, parts.growth
        self.init_from, self.step_offset = parts.init_from, parts.step_offset
        self.backbone_trains = prompt_method(cfg.prompt.type).trains_backbone
        self.ddp_model = self.model  # DDP-wrapped in run(), once the stage's model is built
        self.micro_batch, self.total_steps = parts.micro_batch, parts.total_steps
        self.stop_step = self._stop_step()
        self.trainable, self.optimizer, self.lr_schedule = parts.trainable, parts.optimizer, parts.lr_schedule
        self.stream = parts.stream

        # state that a checkpoint carries
        self.step = 0
        self.best = {"step": None, "metrics": None}
        self.train_flops = 0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0  # wall time spent in evaluate()
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                         if self.device.type == "cuda" and self.tcfg.bf16 else nullcontext())
        self.loggers = None  # fpt/loggers.py, opened in run() on the main rank
        self._saved_step = None
        self._signal = None  # SIGINT/SIGTERM received: stop at the next step boundary

    def _stop_step(self) -> int:
        """trainer.stop_at_step (a search's rung: evaluate, checkpoint, return "stopped"), else the last step."""
        stop = self.tcfg.get("stop_at_step")
        if stop is None:
            return self.total_steps
        if isinstance(stop, bool) or not isinstance(stop, int) or not 1 <= stop <= self.total_steps:
            raise ValueError(f"trainer.stop_at_step={stop!r}: expected a step in 1..{self.total_steps} (the run's "
                             f"length, trainer.max_steps/epochs) or null")
        return stop

    def epochs_done(self, step: int) -> int:
        """Passes over the training set completed after `step` optimizer steps."""
        return step * self.tcfg.batch_size // len(self.train_set)

    def is_eval_step(self, step: int) -> bool:
        """trainer.eval_strategy: every eval_every steps, or at the step that finishes an epoch; always the last."""
        if step in (self.total_steps, self.stop_step):
            return True
        if self.tcfg.eval_strategy == "epoch":
            return self.epochs_done(step) > self.epochs_done(step - 1)
        return step % self.tcfg.eval_every == 0

    def is_save_step(self, step: int) -> bool:
        """trainer.save_every steps, or at every evaluation when it is not given."""
        if self.tcfg.save_every:
            return step % self.tcfg.save_every == 0 or step in (self.total_steps, self.stop_step)
        return self.is_eval_step(step)

    # ---------------------------------------------------------------- checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoint" / "last.pt"

    def save(self) -> None:
        """Every rank calls this (each one's RNG state goes into the checkpoint); rank 0 writes it."""
        rngs = dist.gather_lists([rng_state()])
        self._saved_step = self.step
        if not self.is_main:
            return
        identity = ({"fingerprint": fingerprint(self.identity, resume=True), "keys": self.identity}
                    if self.identity is not None else None)
        state = {"format": CHECKPOINT_FORMAT, "step": self.step, "trainable": self.model.trainable_state_dict(),
                 "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                 "rng": rngs, "best": self.best, "train_flops": self.train_flops,
                 "train_seconds": self.train_seconds, "eval_seconds": self.eval_seconds,
                 "identity": identity}
        step = self.step
        save_checkpoint(self.ckpt_path, state, before_rename=lambda: _fault("checkpoint_write", step))

    def _restore_rng(self, rngs) -> None:
        if isinstance(rngs, dict):  # a checkpoint of a single process from before per-rank states
            rngs = [rngs]
        world, rank = dist.world_size(), dist.rank()
        if len(rngs) != world:
            if self.is_main:
                log.warning("%s was written by %d process(es), resumed by %d: random streams (dropout) cannot "
                            "continue exactly", self.ckpt_path, len(rngs), world)
            if rank >= len(rngs):
                seed_everything(rank_seed(self.cfg.seed + self.step, rank))
                return
        set_rng_state(rngs[rank])

    def load(self) -> bool:
        if not (self.tcfg.resume and self.ckpt_path.is_file()):
            return False
        state = load_checkpoint(self.ckpt_path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{self.ckpt_path}: checkpoint format {state.get('format', 1)}, this fpt reads format "
                f"{CHECKPOINT_FORMAT} (one tensor per attention site's prefix instead of one `deep.embeds` for "
                f"all sites, and their optimizer state). It cannot be resumed: start the run afresh "
                f"(trainer.resume=false or a new run folder)")
        self.step = state["step"]
        self.growth.enter(self.step)  # the stage the run was in, before loading its tensors
        unexpected = self.model.load_state_dict(state["trainable"], strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"{self.ckpt_path}: checkpoint holds tensors this model does not have: {unexpected[:5]}")
        missing = [n for n, _ in self.model.trainable_parameters() if n not in state["trainable"]]
        if missing:
            raise ValueError(f"{self.ckpt_path}: checkpoint lacks trainable tensors of this model: {missing[:5]}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self._restore_rng(state["rng"])
        self.best, self.train_flops, self.train_seconds = state["best"], state["train_flops"], state["train_seconds"]
        self.eval_seconds = state.get("eval_seconds", 0.0)  # 0: a checkpoint written before it was recorded
        self._truncate_log(self.step + self.step_offset)
        return True

    # ---------------------------------------------------------------- logging
    def log(self, record: dict) -> None:
        if not self.is_main:
            return
        record = {**record, "step": record["step"] + self.step_offset}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.loggers is not None:
            self.loggers.log_scalars(scalars_of(record), record["step"])

    def _log_records(self) -> list[dict]:
        path = self.run_dir / "metrics.jsonl"
        records = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:  # a line torn by a kill mid-write
                    continue
        return records

    def _truncate_log(self, step: int) -> None:
        """Keep metrics.jsonl up to `step` (the checkpoint's; 0 for a fresh start): a resumed run repeats no line."""
        path = self.run_dir / "metrics.jsonl"
        if self.is_main and path.exists():
            kept = [r for r in self._log_records() if r.get("step", 0) <= step]
            if kept:
                write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
            else:
                path.unlink()

    # ---------------------------------------------------------------- SIGINT / SIGTERM
    def _on_signal(self, signum, frame) -> None:
        if self._signal is not None:  # a second one: stop now, without a checkpoint
            raise KeyboardInterrupt
        self._signal = signum
        if self.is_main:
            print(f"{signal.Signals(signum).name}: writing a checkpoint after step {self.step + 1}, then stopping "
                  f"(again to stop at once)", flush=True)

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def _stop_requested(self) -> int | None:
        """The signal to stop for, agreed by every rank (one may have received it a step before another)."""
        mine = self._signal or 0
        if dist.world_size() > 1:
            if dist.total(float(mine)) == 0:
                return None
            return mine or signal.SIGTERM
        return mine or None

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Dev metrics (and "<split>_<metric>" for task.test_splits), gathered over DDP ranks (fpt/evaluation.py)."""
        started = time.perf_counter()
        self.model.eval()
        metrics = evaluate_splits(self.model, self.kind, self.task, {"eval": self.eval_set, **self.test_sets},
                                  seq2seq=self.seq2seq, batch_size=self.tcfg.eval_batch_size, device=self.device,
                                  pad_id=self.pad_id, autocast=self.autocast)
        self.model.train()
        self.eval_seconds += time.perf_counter() - started
        return metrics

    # ---------------------------------------------------------------- one optimizer step
    def train_step(self, step: int) -> float:
        """Optimizer step `step` of the run on its examples (the batch stream's, this rank's shard)."""
        mine = dist.shard(self.stream.indices(step + self.step_offset))
        micro = (mine[k * self.micro_batch:(k + 1) * self.micro_batch] for k in range(self.tcfg.grad_accum))
        batches = ({key: v.to(self.device) for key, v in collate([self.train_set[i] for i in part],
                                                                  self.pad_id).items()}
                   for part in micro)  # collated one at a time, as the forwards need them
        return self.optimizer_step(batches, step)

    def optimizer_step(self, batches, step: int | None = None) -> float:
        """One optimizer step over trainer.grad_accum micro-batches (on the device): forward under autocast
        (trainer.bf16 on CUDA), backward of loss / grad_accum (DDP syncs gradients at the last), clipping at
        optim.max_grad_norm, optimizer and LR schedule steps. Returns the step's loss, averaged over DDP ranks.
        Benchmarks call it with batches of their own (benchmarks/memory.py, bench_peft.py)."""
        step = self.step if step is None else step
        total_loss, given = 0.0, 0
        for k, batch in enumerate(batches):
            given = k + 1
            if given > self.tcfg.grad_accum:
                raise ValueError(f"optimizer_step: more micro-batches than trainer.grad_accum={self.tcfg.grad_accum}")
            sync = k == self.tcfg.grad_accum - 1
            with (nullcontext() if sync else dist.no_sync(self.ddp_model)), self.autocast:
                loss = self.ddp_model(batch)["loss"]
            if not torch.isfinite(loss):
                raise TrainingError(f"loss is {loss.item()} at step {step + 1} (optim.lr={self.cfg.optim.lr}); "
                                    f"lower the learning rate or check the data")
            (loss / self.tcfg.grad_accum).backward()
            total_loss += loss.item() / self.tcfg.grad_accum
            self.train_flops += dist.total(self._flops(batch))  # what every rank's shard cost
        if given != self.tcfg.grad_accum:  # a short step would scale its loss wrong and never sync DDP gradients
            raise ValueError(f"optimizer_step: {given} micro-batches, expected trainer.grad_accum="
                             f"{self.tcfg.grad_accum}")
        if self.cfg.optim.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optim.max_grad_norm)
        self.optimizer.step()
        self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return dist.mean(total_loss)

    def _flops(self, batch) -> int:
        dims = self.family.dims(self.model.backbone.config)
        shape = self.growth.current_shape(dims)
        tgt = batch["labels"].shape[1] if self.seq2seq else 0
        # a retriever's step is two forwards: the queries, and their passages (p_input_ids, task_kinds/retrieval.py)
        inputs = [batch[k].shape for k in ("input_ids", "p_input_ids") if k in batch]
        return sum(step_flops(dims, src[0], src[1], tgt, backbone_trains=self.backbone_trains,
                              **self.model.flops_shape(), **shape) for src in inputs)

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict:
        handlers = self._install_signal_handlers()
        try:
            return self._run()
        except BaseException:
            if self.loggers is not None:
                self.loggers.close(failed=True)
                self.loggers = None
            raise
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)

    def _run(self) -> dict:
        resumed = self.load()
        if not resumed:
            self.growth.enter(0)
            self._truncate_log(0)  # lines of an earlier attempt killed before its first checkpoint
        self.ddp_model = dist.wrap(self.model, self.device)
        if self.is_main:
            self.loggers = build_loggers(self.cfg.get("logger"), self.run_dir,
                                         start_step=self.step + self.step_offset)
            self.loggers.log_hparams(OmegaConf.to_container(self.cfg, resolve=True))
            # TensorBoard is rewritten from metrics.jsonl (kept up to the checkpoint): one events file per run
            self.loggers.replay([(scalars_of(r), r["step"]) for r in self._log_records()])
            for line in self.describe():
                log.info(line)
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"{self.task.name} {self.cfg.prompt.type}",
                   disable=not (self.tcfg.progress and self.is_main), dynamic_ncols=True,
                   mininterval=progress_interval(sys.stderr))
        final = None
        if not resumed and self.step_offset and self.growth.final_stage:
            final = self.evaluate_and_keep_best(bar)  # a continuation starts where its source ended
        while self.step < self.stop_step:
            started = time.perf_counter()  # growing the model counts as training time
            if self.growth.enter(self.step):
                self.ddp_model = dist.wrap(self.model, self.device)  # DDP hooks this stage's parameters
                _fault("after_stage_change", self.step)
            loss = self.train_step(self.step)
            self.train_seconds += time.perf_counter() - started
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.lr_schedule.get_last_lr()[0]:.2e}", refresh=False)
            if self.step % self.tcfg.log_every == 0 or self.step == self.total_steps:
                self.log({"step": self.step, "loss": loss, "lr": self.lr_schedule.get_last_lr()[0],
                          "train_flops": self.train_flops, "train_seconds": self.train_seconds,
                          "stage": self.growth.stage_index})
            if self.is_eval_step(self.step):
                final = self.evaluate_and_keep_best(bar)
            if self.cfg.schedule.eval_final_at_stage_end and self.growth.ends_partial_stage(self.step):
                self.log_stage_end()
            if self.is_save_step(self.step):
                self.save()
            _fault("after_step", self.step)
            signum = self._stop_requested()
            if signum:
                if self._saved_step != self.step:
                    self.save()
                bar.close()
                raise Interrupted(signum, self.step)
        bar.close()
        if final is None:  # resumed after the last (or stop) step: re-evaluate the finished prompt
            final = self.evaluate()
        if self.step < self.total_steps:  # trainer.stop_at_step: checkpointed there; a later stop step resumes
            if self.loggers is not None:
                loggers, self.loggers = self.loggers, None
                loggers.close()
            return self.results(final, "stopped")
        if self.is_main:
            save_tensors(self.run_dir / "trainable_final.safetensors", self.model.trainable_state_dict(),
                         self._tensor_metadata("final"))
        if self.loggers is not None:
            loggers, self.loggers = self.loggers, None
            loggers.close()
        return self.results(final, "completed")

    def log_stage_end(self) -> None:
        """Diagnostic (schedule.eval_final_at_stage_end): the prompt at the end of a partial stage, scored on that
        stage's model and on the model the run ends with."""
        partial = self.evaluate()
        with self.growth.final_model():
            final_model = self.evaluate()
        self.log({"step": self.step, "stage": self.growth.stage_index, "eval_stage_model": partial,
                  "eval_final_model": final_model})

    def evaluate_and_keep_best(self, bar) -> dict:
        final = self.evaluate()
        step = self.step + self.step_offset
        self.log({"step": self.step, "epoch": self.step * self.tcfg.batch_size / len(self.train_set),
                  "eval": final, "train_flops": self.train_flops, "train_seconds": self.train_seconds})
        score = final[self.task.metric]
        # a growth schedule's partial models do not compete: the prompt must work on the final model
        kept = self.best["metrics"][self.task.metric] if self.best["metrics"] else None
        if self.growth.final_stage and improves(score, kept):  # fpt/runs/results.py: NaN never wins
            self.best = {"step": step, "metrics": final}
            if self.is_main:
                save_tensors(self.run_dir / "trainable_best.safetensors", self.model.trainable_state_dict(),
                             self._tensor_metadata("best"))
        if self.is_main:  # one line per evaluation, not one per DDP rank; in train.log too
            with logging_redirect_tqdm():  # on the console above the progress bar
                log.info(self.eval_line(step, score))
        return final

    def eval_line(self, step: int, score: float) -> str:
        """`step 100: accuracy=0.8100 (best 0.8200 at step 50)`; in a growth schedule's partial stages, which do
        not compete for best, `(partial stage 1 of 4)`."""
        line = f"step {step}: {self.task.metric}={score:.4f}"
        if self.best["metrics"] is None:
            return f"{line} (partial stage {self.growth.stage_index + 1} of {len(self.growth.stages)})"
        return f"{line} (best {self.best['metrics'][self.task.metric]:.4f} at step {self.best['step']})"

    def describe(self) -> list[str]:
        """What this run is, logged at its start (console and train.log)."""
        cfg, t = self.cfg, self.tcfg
        prompt = cfg.prompt.type + (f" (length {cfg.prompt.length})" if not prompt_method(cfg.prompt.type).trains_backbone else "")
        stages = f", {len(self.growth.stages)} stages" if len(self.growth.stages) > 1 else ""
        evals = f"every {t.eval_every} steps" if t.eval_strategy == "steps" else "every epoch"
        return [f"run folder: {self.run_dir}",
                f"task {self.task.name} ({len(self.train_set)} train / {len(self.eval_set)} dev examples), "
                f"model {cfg.model.name}, prompt {prompt}, schedule {cfg.schedule.name}{stages}",
                f"{self.total_steps} steps of batch {t.batch_size}, {cfg.optim.name} lr {cfg.optim.lr:g} "
                f"({cfg.optim.schedule}), dev {self.task.metric} {evals}, seed {cfg.seed}, device {self.device}"
                + (f", resuming at step {self.step}" if self.step else "")]

    def _tensor_metadata(self, checkpoint: str) -> dict:
        return tensor_metadata(self.cfg, self.model, step=self.step + self.step_offset, checkpoint=checkpoint)

    def results(self, final: dict | None, status: str, error: str | None = None) -> dict:
        """results.json (fpt/runs/results.py) with what this run measured so far."""
        best_step = self.best["step"]
        return run_results(self.cfg, status, error=error, steps=self.step + self.step_offset,
                           best=self.best["metrics"], final=final, total_steps=self.total_steps + self.step_offset,
                           best_step=best_step,
                           best_epoch=self.epochs_done(best_step - self.step_offset) if best_step is not None else None,
                           trainable_params=sum(p.numel() for p in self.trainable),
                           train_seconds=self.train_seconds, eval_seconds=self.eval_seconds,
                           train_flops=self.train_flops,
                           growth=self.growth.summary(), init_from=self.init_from)
