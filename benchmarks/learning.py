"""Real learning on the benchmark files under the data root (paths.data_root, $FPT_DATA_ROOT): MiniLM with none /
shallow / deep prompts on SST-2 and RTE.

    python benchmarks/learning.py [--tasks sst2 rte] [--prompts none shallow deep] [--seeds 42]

SST-2: first 8,000 shuffled train rows, max_length 64, 750 steps, batch 32, whole dev set.
RTE: full train set, max_length 128, 390 steps, batch 32. Learning rates: deep/shallow 1e-2 (AdamW, linear decay),
none (full fine-tuning) 5e-5. Prints the best and final dev accuracy of each run and writes a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
    "sst2": ["task=sst2", "task.data_dir=${paths.data_root}/GLUE/SST-2", "task.max_train_samples=8000",
             "task.max_length=64", "trainer.max_steps=750", "trainer.eval_every=125"],
    "rte": ["task=rte", "task.data_dir=${paths.data_root}/GLUE/RTE", "task.max_length=128", "trainer.max_steps=390",
            "trainer.eval_every=78"],
}
PROMPTS = {"none": ["prompt=none", "optim.lr=5e-5"],
           "shallow": ["prompt=shallow", "prompt.length=20", "optim.lr=1e-2"],
           "deep": ["prompt=deep", "prompt.length=20", "optim.lr=1e-2"]}


def run(task: str, prompt: str, seed: int, out: Path, extra: list[str]) -> dict:
    run_dir = out / f"{task}-{prompt}-{seed}"
    cmd = [sys.executable, str(ROOT / "train.py"), "model=minilm", *SETUPS[task], *PROMPTS[prompt],
           "trainer.batch_size=32", f"seed={seed}", "trainer.progress=false", f"hydra.run.dir={run_dir}",
           f"output_root={run_dir}", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    return json.loads((run_dir / "results.json").read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="+", default=["sst2", "rte"])
    ap.add_argument("--prompts", nargs="+", default=["none", "shallow", "deep"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42])
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench-learning"))
    ap.add_argument("extra", nargs="*", help="more overrides, e.g. model.pooling=mean")
    args = ap.parse_args()
    rows = ["| task | prompt | seed | best dev acc | best step | final dev acc | trainable params | train s |",
            "|---|---|---|---|---|---|---|---|"]
    for task in args.tasks:
        for prompt in args.prompts:
            for seed in args.seeds:
                r = run(task, prompt, seed, Path(args.out), args.extra)
                rows.append(f"| {task} | {prompt} | {seed} | {r['best']['accuracy']:.4f} | {r['best_step']} | "
                            f"{r['final']['accuracy']:.4f} | {r['trainable_params']:,} | {r['train_seconds']:.0f} |")
                print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
