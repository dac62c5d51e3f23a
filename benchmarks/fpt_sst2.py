"""FPT vs vanilla prompt tuning on MiniLM + SST-2 (issue 3, point 4): accuracy, counted FLOPs, wall-clock.

The foundation issue's setup (8,000 training rows, max_length 64, P=20, AdamW 1e-2 with linear decay, batch 32,
750 steps, backbone dropout 0),
for shallow and deep prompts, 3 seeds each: vanilla (schedule=none) vs schedule=fpt (2/3/4/6 layers with
25/50/75/100% of the FFN neurons, 150/150/150/300 steps), and for deep prompts both ways of starting a
joining layer's prefix (schedule.new_layer_prefix=copy|init). Arm fpt-60 gives the full model 60% of the steps
after two cheap stages (2 layers/25% FFN for 30%, 4 layers/50% for 10%): ~0.69 of vanilla's FLOPs; arm
vanilla-450 stops vanilla at 60% of the steps. Runs are interleaved seed by seed so that
load from other processes hits both sides alike; every run uses one thread.

    nice python benchmarks/fpt_sst2.py            # ~5 h on a 2-core CPU; finished runs are skipped
    nice python benchmarks/fpt_sst2.py --prompts shallow & nice python benchmarks/fpt_sst2.py --prompts deep
    python benchmarks/fpt_sst2.py --report-only   # table + plot from the runs on disk
    # the same arms under another setting, in their own folder and table (here: FPT's constant learning rate)
    python benchmarks/fpt_sst2.py --arms shallow/vanilla shallow/fpt deep/vanilla deep/fpt-60 \
        --extra optim.schedule=constant --out outputs/bench_fpt_sst2_const --name fpt_sst2_const

Writes benchmarks/results/fpt_sst2.json, benchmarks/results/fpt_sst2.md (the README table) and
benchmarks/results/fpt_sst2.png (dev accuracy against cumulative training FLOPs).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fpt.config import default_data_root

ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_root() / "GLUE" / "SST-2"
OUT = ROOT / "outputs" / "bench_fpt_sst2"
RESULTS = ROOT / "benchmarks" / "results"
BASE = ["model=minilm", "task=sst2", f"task.data_dir={DATA}", "task.max_train_samples=8000", "task.max_length=64",
        "prompt.length=20", "optim.lr=1e-2", "model.dropout=0", "trainer.batch_size=32", "trainer.max_steps=750",
        "trainer.eval_every=150", "trainer.threads=1", "trainer.progress=false", "trainer.log_every=10"]
SIXTY = "schedule.stages=[{layers:2,ffn_ratio:0.25,fraction:0.3},{layers:4,ffn_ratio:0.5,fraction:0.1},{}]"
ARMS = {  # name -> (prompt, extra overrides)
    "shallow/vanilla": ("shallow", ["schedule=none"]),
    "shallow/fpt": ("shallow", ["schedule=fpt"]),
    "shallow/fpt-60": ("shallow", ["schedule=fpt", SIXTY]),
    "deep/vanilla": ("deep", ["schedule=none"]),
    "deep/fpt (copy)": ("deep", ["schedule=fpt", "schedule.new_layer_prefix=copy"]),
    "deep/fpt (init)": ("deep", ["schedule=fpt", "schedule.new_layer_prefix=init"]),
    # a joining layer's prefix behind a learnable gate at 0: it starts with no effect and grows in
    "deep/fpt (gate)": ("deep", ["schedule=fpt", "schedule.new_layer_prefix=gate"]),
    # the full model for 60% of the steps after 2 cheap stages (2 layers/25% FFN, 4/50%): ~0.69 of the FLOPs
    "deep/fpt-60": ("deep", ["schedule=fpt", SIXTY]),
    # the cheaper baseline FPT has to beat: vanilla stopped at 60% of the steps (its own full LR decay)
    "deep/vanilla-450": ("deep", ["schedule=none", "trainer.max_steps=450"]),
}


def run_dir(arm: str, seed: int) -> Path:
    return OUT / f"{arm.replace('/', '-').replace(' ', '').replace('(', '-').replace(')', '')}-s{seed}"


def run_train(overrides: list[str], out: Path, output_root: Path, label: str) -> dict:
    """train.py with BASE + overrides (later overrides win) into `out`, unless already completed there."""
    if _done(out):
        return json.loads((out / "results.json").read_text())
    cmd = [sys.executable, str(ROOT / "train.py"), *BASE, *overrides, f"hydra.run.dir={out}",
           f"output_root={output_root}"]
    started = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{label} failed:\n{proc.stderr[-3000:]}")
    print(f"{label}: {time.time() - started:.0f}s", flush=True)
    return json.loads((out / "results.json").read_text())


def train(arm: str, seed: int, steps: int, more: list[str] = ()) -> dict:
    prompt, extra = ARMS[arm]  # an arm's own trainer.max_steps comes after `steps` and wins
    return run_train([f"prompt={prompt}", f"trainer.max_steps={steps}", *extra, *more, f"seed={seed}"],
                     run_dir(arm, seed), OUT, f"{arm:18s} seed {seed}")


def curve(arm: str, seed: int) -> list[tuple[int, float]]:
    """(cumulative train FLOPs, dev accuracy) at every evaluation."""
    lines = [json.loads(x) for x in (run_dir(arm, seed) / "metrics.jsonl").read_text().splitlines()]
    return [(x["train_flops"], x["eval"]["accuracy"]) for x in lines if "eval" in x]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _done(out: Path) -> bool:
    path = out / "results.json"
    return path.exists() and json.loads(path.read_text())["status"] == "completed"


def report(seeds: list[int], score_seconds: float | None, name: str = "fpt_sst2", setup: list[str] = ()) -> dict:
    """The table (and plot) of every arm whose runs are complete for all seeds."""
    rows = {}
    for arm in [a for a in ARMS if all(_done(run_dir(a, s)) for s in seeds)]:
        res = [json.loads((run_dir(arm, s) / "results.json").read_text()) for s in seeds]
        base = [json.loads((run_dir(arm.split("/")[0] + "/vanilla", s) / "results.json").read_text()) for s in seeds]
        rows[arm] = {
            "final": mean_std([100 * r["final"]["accuracy"] for r in res]),
            "best": mean_std([100 * r["best"]["accuracy"] for r in res]),
            "flops": statistics.mean(r["train_flops"] for r in res),
            "seconds": statistics.mean(r["train_seconds"] for r in res),
            "flops_ratio": mean_std([r["train_flops"] / b["train_flops"] for r, b in zip(res, base)]),
            "seconds_ratio": mean_std([r["train_seconds"] / b["train_seconds"] for r, b in zip(res, base)]),
            "final_per_seed": [100 * r["final"]["accuracy"] for r in res],
        }
    lines = ["| prompt | schedule | dev acc. final (%) | dev acc. best (%) | train FLOPs | vs vanilla | "
             "train wall-clock | vs vanilla |", "|---|---|---|---|---|---|---|---|"]
    for arm, r in rows.items():
        prompt, schedule = arm.split("/")
        lines.append(f"| {prompt} | {schedule} | {r['final'][0]:.2f} ± {r['final'][1]:.2f} | "
                     f"{r['best'][0]:.2f} ± {r['best'][1]:.2f} | {r['flops'] / 1e12:.1f} T | "
                     f"{r['flops_ratio'][0]:.3f} | {r['seconds']:.0f} s | {r['seconds_ratio'][0]:.3f} ± "
                     f"{r['seconds_ratio'][1]:.3f} |")
    table = "\n".join(lines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps({"seeds": seeds, "setup": BASE + list(setup), "rows": rows,
                                                     "score_seconds": score_seconds}, indent=2) + "\n")
    print(table)
    plot(seeds, list(rows), name)
    return rows


def plot(seeds: list[int], arms: list[str], name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    prompts = [p for p in ["shallow", "deep"] if any(a.startswith(p) for a in arms)]
    fig, axes = plt.subplots(1, len(prompts), figsize=(5.5 * len(prompts), 4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, prompt in zip(axes, prompts):
        for arm in [a for a in arms if a.startswith(prompt)]:
            curves = [curve(arm, s) for s in seeds]
            xs = [statistics.mean(c[i][0] for c in curves) / 1e12 for i in range(len(curves[0]))]
            ys = [100 * statistics.mean(c[i][1] for c in curves) for i in range(len(curves[0]))]
            ax.plot(xs, ys, marker="o", markersize=3, label=arm.split("/")[1])
        ax.set_title(f"MiniLM + SST-2, {prompt} prompt (mean of {len(seeds)} seeds)")
        ax.set_xlabel("cumulative training FLOPs (T)")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("dev accuracy (%)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=750)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT, help="where the runs go")
    parser.add_argument("--prompts", nargs="+", default=["shallow", "deep"],
                        help="run only these arms (e.g. one process per prompt type, in parallel)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help="run only these arms")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every run (ablations)")
    parser.add_argument("--name", default="fpt_sst2", help="file name of the table and plot")
    args = parser.parse_args()
    OUT = args.out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    timing = OUT / "score_seconds.json"
    if not args.report_only:
        if not timing.exists():  # the activation scores, once for every FPT run (cached), timed on their own
            started = time.time()
            subprocess.run([sys.executable, "-m", "fpt.scores", *BASE, f"output_root={OUT}"], cwd=ROOT, check=True)
            timing.write_text(json.dumps(time.time() - started))
        for seed in args.seeds:
            for arm in ARMS:
                if arm.split("/")[0] in args.prompts and arm in args.arms:
                    train(arm, seed, args.steps, args.extra)
    if args.report_only or set(args.prompts) == {"shallow", "deep"}:
        report(args.seeds, json.loads(timing.read_text()) if timing.exists() else None, args.name, args.extra)


if __name__ == "__main__":
    main()
