"""How well does a prompt trained on a partial model work on the full model?

Each arm prompt-tunes a partial MiniLM for `--steps` steps on SST-2 (the setup of the study arms in
conf/experiment/fpt_sst2/, under schedule=fpt: conf/experiment/fpt_transfer/partial.yaml), is evaluated there, then
grows to the full model and is evaluated again after one step (at learning rate ~0): the second number is what the
full model starts from when FPT expands. The reference arm trains the full model for the same number of steps.
Reports both accuracies and the partial model's FLOPs per step relative to the full model's
(benchmarks/results/fpt_transfer.{md,json}). Runs that already completed are skipped by train.py itself.

    python benchmarks/fpt_transfer.py --prompt deep --arms ld2 ld4 fr25 cr4-50
    python benchmarks/fpt_transfer.py --report-only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "bench_fpt_transfer"
RESULTS = ROOT / "benchmarks" / "results"
ARMS = {  # name -> the partial model (layers, ffn_ratio); None = the full model throughout (reference)
    "full": None,
    "ld2": (2, 1.0), "ld3": (3, 1.0), "ld4": (4, 1.0), "ld5": (5, 1.0),
    "fr25": (6, 0.25), "fr50": (6, 0.5),
    "cr2-25": (2, 0.25), "cr4-50": (4, 0.5),
}


def run(arm: str, prompt: str, steps: int, prefix: str) -> None:
    """One arm: conf/experiment/fpt_transfer/partial.yaml with the arm's stages, or the reference arm (the full
    model throughout: the study's vanilla arm), for `steps` steps."""
    if ARMS[arm] is None:
        setup, total = [f"experiment=fpt_sst2/{prompt}_vanilla"], steps
    else:
        layers, ratio = ARMS[arm]
        setup = ["experiment=fpt_transfer/partial", f"prompt={prompt}",
                 f"schedule.stages=[{{layers:{layers},ffn_ratio:{ratio},steps:{steps}}},{{}}]",
                 f"schedule.new_layer_prefix={prefix}"]
        total = steps + 1
    out = OUT / f"{prompt}-{arm}-{prefix}-{steps}"
    cmd = [sys.executable, str(ROOT / "train.py"), *setup, f"trainer.max_steps={total}", f"trainer.eval_every={steps}",
           f"hydra.run.dir={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{arm} failed:\n{proc.stderr[-3000:]}")


def summary(out: Path) -> dict:
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in evals if "eval" in x]
    return {"partial": evals[0]["eval"]["accuracy"], "full": evals[-1]["eval"]["accuracy"],
            "flops_first": evals[0]["train_flops"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", default="deep")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--prefix", default="init", help="schedule.new_layer_prefix")
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if not args.report_only:
        for arm in args.arms:
            run(arm, args.prompt, args.steps, args.prefix)
    rows = {}
    for out in sorted(OUT.glob("*/results.json")):
        prompt, arm, prefix, steps = out.parent.name.split("-", 1)[0], *out.parent.name.split("-", 1)[1].rsplit("-", 2)
        rows[out.parent.name] = {"prompt": prompt, "arm": arm, "prefix": prefix, "steps": int(steps),
                                 **summary(out.parent)}
    full = {(r["prompt"], r["steps"]): r["flops_first"] for r in rows.values() if r["arm"] == "full"}
    lines = ["| prompt | partial model (layers, FFN) | new-layer prefix | steps | dev acc. partial (%) | "
             "dev acc. full model, no further training (%) | FLOPs per step vs full |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows.values(), key=lambda r: (r["prompt"], r["steps"], list(ARMS).index(r["arm"]))):
        ref = full.get((r["prompt"], r["steps"]))
        if ref is None:
            continue
        partial = ARMS[r["arm"]]
        shape = "full model" if partial is None else f"{partial[0]}, {partial[1]:.0%}"
        grown = "-" if partial is None else f"{100 * r['full']:.1f}"
        lines.append(f"| {r['prompt']} | {shape} | {r['prefix'] if partial else '-'} | {r['steps']} | "
                     f"{100 * r['partial']:.1f} | {grown} | {r['flops_first'] / ref:.2f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fpt_transfer.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "fpt_transfer.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
