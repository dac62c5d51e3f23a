"""Memory and time of one training step with and without trainer.gradient_checkpointing (docs/memory.md).

    nice python benchmarks/memory.py [--checkpoint-layers 0.67] [--batch-size 32] [--length 128]
                                     [--prompt-length 20] [--steps 5] [--threads 1]

Three arms: plain, full (every layer checkpointed) and partial (trainer.checkpoint_layers=--checkpoint-layers:
the bottom share of the layers checkpointed, the top ones plain).

MiniLM (all-MiniLM-L6-v2, model=minilm) with a deep prompt (P=20, the ptv2_deep recipe: dropout 0.1), a
classification head, the optimizer, LR schedule and clipping of its config, trained by the Trainer's own step
(fpt.trainer.Trainer.optimizer_step); batches of SST-2 training sentences (under the data root, paths.data_root /
$FPT_DATA_ROOT, or the bundled sample) joined and cut to exactly --length tokens, so every position is a
real token. CPU, fp32.

Memory, per arm in a fresh subprocess (the arms in turn, --repeats times): the process's peak resident memory
during one training step (forward, backward, optimizer step) minus its resident memory just before it, with
the model loaded and the batch built. The peak is the kernel's high-water mark (VmHWM), reset right before the
step (/proc/self/clear_refs), so loading the model cannot hide in it. glibc is told to give every block of
64 KiB or more its own mapping (MALLOC_MMAP_THRESHOLD_), so a freed activation goes back to the kernel at
once and the RSS follows the live tensors, as a GPU allocator's peak would (its dynamic threshold otherwise
keeps freed blocks in the heap, and RSS then shows the allocator's history, not the step). Second number:
the bytes the forward keeps for the backward (distinct storages packed by autograd, counted with
torch.autograd.graph.saved_tensors_hooks), which is what checkpointing trades away; it does not see the
recomputation's transient peak in the backward, the RSS does.

Time: one process, one model switched between the arms, steps alternating (the arms' order rotating each
batch) on the same batches so that machine load hits them alike; the median step time of each arm and its
ratio to plain.
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from fpt.config import compose  # noqa: E402
from fpt.models.checkpointing import checkpointed  # noqa: E402
from fpt.tasks import read_rows  # noqa: E402
from fpt.trainer import Trainer  # noqa: E402

SST2 = "${paths.data_root}/GLUE/SST-2"  # under the data root (conf/paths/), if it is there
ARMS = ("plain", "full", "partial")


def has_sst2() -> bool:
    return Path(compose(f"task.data_dir={SST2}").task.data_dir).is_dir()


def config(prompt_length: int, threads: int):
    data = [f"task.data_dir={SST2}", "task=sst2"] if has_sst2() else []
    return compose("model=minilm", "prompt=deep", f"prompt.length={prompt_length}", f"trainer.threads={threads}",
                   "trainer.grad_accum=1", "trainer.max_steps=1000", *data)


def batches(cfg, tokenizer, batch_size: int, length: int, count: int) -> list[dict]:
    """`count` batches of `batch_size` rows of exactly `length` real tokens (sentences joined, then cut)."""
    texts = [row[cfg.task.text_fields[0]] for row in read_rows(cfg.task, "train")]
    out, k = [], 0
    for _ in range(count):
        rows = []
        for _ in range(batch_size):
            words = []
            while len(tokenizer(" ".join(words))["input_ids"]) < length:
                words.append(texts[k % len(texts)])
                k += 1
            rows.append(" ".join(words))
        enc = tokenizer(rows, truncation=True, max_length=length, padding="max_length", return_tensors="pt")
        assert enc["input_ids"].shape == (batch_size, length) and bool(enc["attention_mask"].all())
        out.append({**enc, "label": torch.arange(batch_size) % 2})
    return out


def use_arm(model, arm: str, fraction: float) -> None:
    model.set_gradient_checkpointing(arm != "plain", fraction if arm == "partial" else 1.0)


def setup(args, arm: str):
    """A run's trainer (fpt.build.build: model, optimizer, LR schedule as configured), its model in training mode."""
    cfg = config(args.prompt_length, args.threads)
    trainer = Trainer(cfg, Path(tempfile.gettempdir()) / "fpt-memory")  # a folder it writes only in run()
    trainer.model.train()
    use_arm(trainer.model, arm, args.checkpoint_layers)
    return cfg, trainer


def train_step(trainer, batch, saved: dict | None = None) -> None:
    """The trainer's own step (Trainer.optimizer_step: forward, backward, clipping, optimizer and LR step).
    `saved`: storage -> bytes the forward keeps for the backward, less the model's own tensors (a frozen Linear
    keeps its weight, which is resident anyway)."""
    model = trainer.model
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if saved is not None and ptr not in own:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):  # (the backward packs nothing)
        trainer.optimizer_step([batch])


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def measure_memory(args, arm: str) -> dict:
    """In a fresh process: peak RSS growth over one training step, and the bytes the forward keeps for backward."""
    cfg, trainer = setup(args, arm)
    model = trainer.model
    batch = batches(cfg, trainer.tokenizer, args.batch_size, args.length, 1)[0]
    gc.collect()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    saved = {}
    train_step(trainer, batch, saved)
    peak = _status_kib("VmHWM")
    return {"arm": arm, "peak_step_mib": (peak - before) / 1024, "rss_before_mib": before / 1024,
            "saved_for_backward_mib": sum(saved.values()) / 2**20,
            "checkpointed_layers": sum(map(checkpointed, model.family.layer_stacks(model.backbone)["encoder"])),
            "layers": len(model.family.layer_stacks(model.backbone)["encoder"])}


def memory_in_subprocess(args, arm: str) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, __file__, "--memory-arm", arm, "--batch-size", str(args.batch_size), "--length",
           str(args.length), "--prompt-length", str(args.prompt_length), "--threads", str(args.threads),
           "--checkpoint-layers", str(args.checkpoint_layers)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        sys.exit(f"memory subprocess ({arm}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def step_times(args) -> dict[str, list[float]]:
    cfg, trainer = setup(args, "plain")
    data = batches(cfg, trainer.tokenizer, args.batch_size, args.length, args.steps)
    times = {arm: [] for arm in ARMS}
    for arm in ARMS:  # warm-up, one step each
        use_arm(trainer.model, arm, args.checkpoint_layers)
        train_step(trainer, data[0])
    for i, batch in enumerate(data):
        order = ARMS[i % len(ARMS):] + ARMS[:i % len(ARMS)]
        for arm in order:
            use_arm(trainer.model, arm, args.checkpoint_layers)
            start = time.perf_counter()
            train_step(trainer, batch)
            times[arm].append(time.perf_counter() - start)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per arm (alternating)")
    ap.add_argument("--repeats", type=int, default=2, help="fresh memory subprocesses per arm")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is least noisy on a shared machine)")
    ap.add_argument("--checkpoint-layers", type=float, default=0.67,
                    help="the partial arm's trainer.checkpoint_layers (MiniLM's 6 layers: 0.67 -> 4 checkpointed)")
    ap.add_argument("--memory-arm", choices=ARMS, help=argparse.SUPPRESS)  # internal: one memory measurement
    args = ap.parse_args()
    if args.memory_arm:
        print(json.dumps(measure_memory(args, args.memory_arm)))
        return

    print(f"torch {torch.__version__}, threads {args.threads}; MiniLM, deep prompt P={args.prompt_length}, batch "
          f"{args.batch_size} x {args.length} tokens, fp32 CPU; data: "
          f"{'SST-2' if has_sst2() else 'bundled sample'}; partial: "
          f"trainer.checkpoint_layers={args.checkpoint_layers}")
    memory = {arm: [] for arm in ARMS}
    for r in range(args.repeats):
        for arm in (ARMS if r % 2 == 0 else ARMS[::-1]):
            m = memory_in_subprocess(args, arm)
            memory[arm].append(m)
            print(f"  memory run {r + 1} {arm:8s} ({m['checkpointed_layers']} of {m['layers']} layers checkpointed): "
                  f"peak step RSS +{m['peak_step_mib']:7.1f} MiB (RSS before {m['rss_before_mib']:.0f} MiB), "
                  f"kept for backward {m['saved_for_backward_mib']:7.1f} MiB", flush=True)
    times = step_times(args)
    peak = {arm: statistics.median(m["peak_step_mib"] for m in memory[arm]) for arm in ARMS}
    kept = {arm: statistics.median(m["saved_for_backward_mib"] for m in memory[arm]) for arm in ARMS}
    step = {arm: statistics.median(times[arm]) for arm in ARMS}
    for arm in ARMS:
        print(f"step times (s) {arm:8s}: {', '.join(f'{t:.2f}' for t in times[arm])}")
    label = f"partial ({memory['partial'][0]['checkpointed_layers']}/{memory['partial'][0]['layers']})"
    print(f"{'':24s}{'plain':>10s}{'full':>18s}{label:>22s}")
    for name, values in (("peak step RSS (MiB)", peak), ("kept for backward (MiB)", kept)):
        print(f"{name:24s}{values['plain']:10.1f}" + "".join(
            f"{values[arm]:10.1f} ({100 * (values[arm] / values['plain'] - 1):+5.1f}%)" for arm in ("full", "partial")))
    print(f"{'median step time (s)':24s}{step['plain']:10.2f}" + "".join(
        f"{step[arm]:10.2f} ({step[arm] / step['plain']:5.2f}x)" for arm in ("full", "partial")))


if __name__ == "__main__":
    main()
