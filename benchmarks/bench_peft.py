"""Training throughput: fpt deep prompts vs Hugging Face PEFT PrefixTuning, same model, data, P and batch.

    python benchmarks/bench_peft.py [--steps 20] [--rounds 3] [--prompt-length 20] [--batch-size 32]

Both train MiniLM (all-MiniLM-L6-v2) on SST-2 rows (under the data root, paths.data_root / $FPT_DATA_ROOT, or the bundled sample), in the same
process, alternating in rounds so machine noise hits both alike. Prints examples/s for each, their
ratio, and our train-step time over the frozen model's plain forward time on the same batches.

Run it with the versions in constraints.txt (pip install -c constraints.txt ".[dev]"): PEFT's PrefixTuning
stopped running on BERT with transformers 5.24 (peft 0.21.2). The versions used are printed, and any that
differ from constraints.txt are named.
"""
import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from peft import PrefixTuningConfig, TaskType, get_peft_model  # noqa: E402
from transformers import AutoModel, BertForSequenceClassification  # noqa: E402

from fpt.batching import collate  # noqa: E402
from fpt.config import compose  # noqa: E402
from fpt.models import resolve_path  # noqa: E402
from fpt.trainer import Trainer  # noqa: E402

SST2 = "${paths.data_root}/GLUE/SST-2"  # under the data root (conf/paths/), if it is there
CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"
PACKAGES = ("torch", "transformers", "peft")


def versions() -> tuple[str, list[str]]:
    """("torch 2.13.0, transformers 5.23.0, peft 0.21.2", those that differ from constraints.txt)."""
    from importlib.metadata import version
    text = CONSTRAINTS.read_text() if CONSTRAINTS.is_file() else ""
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M))
    installed = {p: version(p) for p in PACKAGES}
    differ = [f"{p} {v} (constraints.txt: {pinned[p]})" for p, v in installed.items()
              if p in pinned and v.split("+")[0] != pinned[p]]
    return ", ".join(f"{p} {v}" for p, v in installed.items()), differ


def has_sst2() -> bool:
    return Path(compose(f"task.data_dir={SST2}").task.data_dir).is_dir()


def config(prompt_length: int, threads: int):
    """Our arm's run: AdamW at 1e-2 (PEFT's arm too), its LR schedule and clipping as configured, one thread."""
    data = [f"task.data_dir={SST2}", "task=sst2"] if has_sst2() else []
    return compose("prompt=deep", f"prompt.length={prompt_length}", "task.max_length=64",
                   "task.max_train_samples=2000", "optim.name=adamw", "optim.lr=1e-2", f"trainer.threads={threads}",
                   "trainer.grad_accum=1", "trainer.max_steps=1000", *data)


def batches(feats, pad_id: int, batch_size: int, count: int):
    return [collate([feats[(i * batch_size + j) % len(feats)] for j in range(batch_size)], pad_id)
            for i in range(count)]


def timed_steps(step_fn, data) -> float:
    start = time.perf_counter()
    for batch in data:
        step_fn(batch)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is least noisy on a shared machine)")
    args = ap.parse_args()
    used, differ = versions()
    print(f"versions: {used}" + (f"; NOT the tested ones: {', '.join(differ)}" if differ else " (as constraints.txt)"))
    cfg = config(args.prompt_length, args.threads)
    trainer = Trainer(cfg, Path(tempfile.gettempdir()) / "fpt-bench-peft")  # fpt.build.build; writes only in run()
    trainer.model.train()
    data = batches(trainer.train_set, trainer.pad_id, args.batch_size, args.steps)

    def ours_step(batch):  # the trainer's own step: forward, backward, clipping, optimizer and LR step
        trainer.optimizer_step([batch])

    path = resolve_path(cfg.model.name_or_path)
    base = BertForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation="sdpa")
    peft = get_peft_model(base, PrefixTuningConfig(task_type=TaskType.SEQ_CLS,
                                                   num_virtual_tokens=args.prompt_length)).train()
    peft_opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-2)

    def peft_step(batch):
        out = peft(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   token_type_ids=batch["token_type_ids"], labels=batch["label"])
        out.loss.backward()
        peft_opt.step()
        peft_opt.zero_grad(set_to_none=True)

    frozen = AutoModel.from_pretrained(path, attn_implementation="sdpa").eval()

    @torch.no_grad()
    def forward_only(batch):
        frozen(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
               token_type_ids=batch["token_type_ids"])

    try:
        timed_steps(peft_step, data[:1])
    except Exception as err:
        sys.exit(f"PEFT PrefixTuning failed with {used}: {type(err).__name__}: {err}\n"
                 f"The comparison ran with the versions in {CONSTRAINTS.name}: "
                 f"pip install -c constraints.txt \".[dev]\""
                 + (f" (differing here: {', '.join(differ)})" if differ else ""))
    for fn in (ours_step, peft_step, forward_only):  # warm-up
        timed_steps(fn, data[:2])
    totals = {"fpt": 0.0, "peft": 0.0, "forward": 0.0}
    for r in range(args.rounds):
        order = [("fpt", ours_step), ("peft", peft_step), ("forward", forward_only)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            totals[name] += timed_steps(fn, data)
    examples = args.rounds * args.steps * args.batch_size
    ours_eps, peft_eps = examples / totals["fpt"], examples / totals["peft"]
    print(f"torch threads: {torch.get_num_threads()}, batch {args.batch_size}, P={args.prompt_length}, "
          f"{args.rounds} rounds x {args.steps} steps, data: {'SST-2' if has_sst2() else 'bundled sample'}")
    print(f"fpt deep prompt      : {ours_eps:8.1f} examples/s")
    print(f"PEFT PrefixTuning    : {peft_eps:8.1f} examples/s")
    print(f"ratio fpt / PEFT     : {ours_eps / peft_eps:8.3f}x")
    print(f"fpt train step / frozen forward: {totals['fpt'] / totals['forward']:.3f}x")
    print(f"PEFT train step / frozen forward: {totals['peft'] / totals['forward']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
