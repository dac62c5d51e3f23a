"""Grid vs successive halving over the same 9 configurations on MiniLM + SST-2, deep prompts:
best configuration found, total training FLOPs and wall time.

The grid runs 3 learning rates x 3 prompt lengths to the full length; the search (hparams_search=ptv2_halving,
the same 9 configurations in grid order) stops them at rungs 10 / 30 / 90 steps with 9 / 3 / 1 trials
(eta 3) and resumes the promoted ones. Same data (2,000 training rows, length 64), batch 16, 90 steps, the same
LR schedule for every job, evaluation every 30 steps (plus the search's rung steps), one thread per job, one
job at a time per sweep. Both sweeps run AT ONCE by default (two processes), so both see the same machine load.
The recipes: conf/experiment/search/grid.yaml (the shared setup) and search/halving.yaml (the search).

    nice python benchmarks/search.py                # ~30-60 min on a loaded 2-core CPU
    python benchmarks/search.py --report-only       # the comparison from the sweeps on disk
    python -m fpt.collect outputs/bench_search/grid/sweep      # the grid's table
    python -m fpt.collect outputs/bench_search/search/sweep    # the search's trials, rungs and total FLOPs

Prints for both: best dev accuracy found (the sweep's selection metric: a run's best evaluation), total training
FLOPs (the sum of the jobs' train_flops) and wall time. Target: the search within 0.5 point of the grid's best
with <= 35% of its FLOPs. Data: ${paths.data_root}/GLUE/SST-2 ($FPT_DATA_ROOT, conf/paths/).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fpt.collect import search_summary

ROOT = Path(__file__).resolve().parents[1]
LRS, LENGTHS = "5e-3,1e-2,2e-2", "8,16,32"


def commands(out: Path) -> dict[str, list[str]]:
    """The two sweeps: conf/experiment/search/{grid,halving}.yaml over the same learning rates and prompt lengths."""
    train = [sys.executable, str(ROOT / "train.py"), "-m"]
    return {
        "grid": [*train, "experiment=search/grid", f"optim.lr={LRS}", f"prompt.length={LENGTHS}",
                 f"output_root={out}/grid", f"hydra.sweep.dir={out}/grid/sweep"],
        "search": [*train, "experiment=search/halving", f"optim.lr=choice({LRS})", f"prompt.length=choice({LENGTHS})",
                   f"output_root={out}/search", f"hydra.sweep.dir={out}/search/sweep"],
    }


def summary(sweep: Path) -> dict:
    """Best dev accuracy (and its configuration), total train FLOPs, jobs: fpt.collect's view of the sweep."""
    s = search_summary(sweep)
    best = s["best"]
    label = f"lr={best.results['lr']} P={best.results['prompt_length']}" if best else None
    return {**s, "best": (s["value"], label, best.folder.name) if best else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_search")
    parser.add_argument("--sequential", action="store_true", help="the grid, then the search (default: at once)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    out = args.out.resolve()
    walls = {}
    if not args.report_only:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        out.mkdir(parents=True, exist_ok=True)
        running = {}
        for name, cmd in commands(out).items():
            print("$", " ".join(cmd), flush=True)
            log = open(out / f"{name}.log", "w")
            running[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT),
                             time.time(), log)
            if args.sequential:
                running[name][0].wait()
        while running:
            for name, (proc, started, log) in list(running.items()):
                if proc.poll() is not None:
                    walls[name] = time.time() - started
                    log.close()
                    del running[name]
                    if proc.returncode:
                        sys.exit(f"the {name} sweep failed ({proc.returncode}): see {out / (name + '.log')}")
            time.sleep(5)
        (out / "walls.json").write_text(json.dumps(walls))
    elif (out / "walls.json").is_file():
        walls = json.loads((out / "walls.json").read_text())
    grid, search = summary(out / "grid" / "sweep"), summary(out / "search" / "sweep")
    print(f"\n{'':8} {'best dev acc':>12} {'configuration':>16} {'jobs':>5} {'full-length':>11} "
          f"{'train FLOPs':>12} {'wall s':>8}")
    for name, s in (("grid", grid), ("search", search)):
        acc, config = (f"{100 * s['best'][0]:.2f}", s["best"][1]) if s["best"] else ("-", "-")
        print(f"{name:8} {acc:>12} {config:>16} {s['jobs']:>5} {s['full_length']:>11} {s['flops']:>12.4g} "
              f"{walls.get(name, float('nan')):>8.0f}")
    if grid["best"] and search["best"]:
        gap, ratio = 100 * (grid["best"][0] - search["best"][0]), search["flops"] / grid["flops"]
        wall = walls.get("search", float("nan")) / walls.get("grid", float("nan"))
        print(f"\nsearch vs grid: {gap:+.2f} points below the grid's best (target <= 0.5), {ratio:.3f} of its "
              f"training FLOPs (target <= 0.35), {wall:.2f} "
              f"of its wall time ({'at once' if not args.sequential else 'one after the other'})")


if __name__ == "__main__":
    main()
