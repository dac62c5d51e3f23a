"""The demo, `python train.py` with no arguments: its wall-clock time and its learning curve.

    python benchmarks/demo.py [--root /path/to/another/checkout] [-- extra overrides]

Runs the checkout's `train.py` with its defaults in a fresh process into a temporary folder (logger=none, no
progress bar; nothing else changed) and prints the seconds until it exits, the steps it ran and its dev metric
at every evaluation (metrics.jsonl), with the fraction of the run at which the dev metric first came within
0.01 of its final best ("learnt by").
Compare two checkouts on the same machine at the same time of day: the ratio of their times is what carries
over to another machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose train.py runs (default: this one)")
    parser.add_argument("overrides", nargs="*", help="extra overrides (default: none, the demo as it is)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.root)}
    print(f"{args.root}: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, str(args.root / "train.py"), "logger=none", "trainer.progress=false", *args.overrides,
               f"hydra.run.dir={run}", f"output_root={tmp}"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=args.root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        results = json.loads((run / "results.json").read_text())
        metric = results["metric"]
        curve = [(r["step"], r["eval"][metric]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                 if "eval" in r]
    best = max(value for _, value in curve)
    learnt = next(step for step, value in curve if value >= best - 0.01)
    print(f"{seconds:.0f} s wall-clock, {results['steps']} steps ({results['train_seconds']:.0f} s training); "
          f"dev {metric}: " + ", ".join(f"{value:.3f} at {step}" for step, value in curve)
          + f"; learnt by step {learnt} ({learnt / results['steps']:.2f} of the run)")


if __name__ == "__main__":
    main()
