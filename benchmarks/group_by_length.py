"""Length grouping end to end (end-to-end time and accuracy): the SST-2 deep-prompt recipe with and
without length-grouped batches.

MiniLM, SST-2 (the first 8,000 shuffled training rows, max_length 64, the whole dev set), deep prompt P=20, AdamW
1e-2 with linear decay, backbone dropout 0, batch 32, 750 steps, evaluation every 125 steps. Two arms:

- `before`: `trainer.group_by_length=false` and evaluation batches in file order, i.e. fpt before length
  grouping (FPT_EVAL_ORDER=file, fpt/batching.py, in that arm's process only);
- `grouped`: the defaults, training batches grouped by length (trainer.group_by_length=true) and length-sorted
  evaluation batches.

Both arms run at once, one thread each, so that they share the machine's load; each is a `train.py` process
(start-up, data, training, evaluations), timed from launch to exit. When one arm ends first, the other runs on a
freer machine for its last stretch, which favours the slower arm. Prints per arm: wall time, train_seconds,
evaluation seconds, counted training FLOPs, final and best dev accuracy; and the ratios.

    nice python benchmarks/group_by_length.py                  # ~20-30 min on a 2-core CPU
    python benchmarks/group_by_length.py --steps 20 --eval-every 10 --rows 400 --dev-rows 100   # a quick check
    # the dev-set evaluation alone, sorted vs file order, alternating (init_from: a trained prompt to score)
    python benchmarks/group_by_length.py --eval-only 3 init_from=outputs/bench_group_by_length/<folder>/grouped

Every invocation trains afresh in its own folder under outputs/bench_group_by_length/ and writes
benchmarks/results/group_by_length.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "bench_group_by_length"
RESULTS = ROOT / "benchmarks" / "results"
ARMS = {"before": ["trainer.group_by_length=false"], "grouped": ["trainer.group_by_length=true"]}


def base(rows: int, steps: int, eval_every: int, dev_rows: int | None) -> list[str]:
    """The SST-2 deep-prompt recipe (conf/experiment/group_by_length/sst2_deep.yaml) at these sizes."""
    out = ["experiment=group_by_length/sst2_deep", f"task.max_train_samples={rows}", f"trainer.max_steps={steps}",
           f"trainer.eval_every={eval_every}"]
    if dev_rows:
        out.append(f"task.max_eval_samples={dev_rows}")
    return out


# --------------------------------------------------------------------------- evaluation alone
def eval_only(rounds: int, overrides: list[str]) -> None:
    """One process: the dev set scored by MiniLM with a deep prompt (untrained, or `init_from=RUN`), in length-sorted batches and in
    file order, alternating `rounds` times (the same machine load for both); metrics must be identical."""
    import statistics

    from fpt.batching import EVAL_ORDER_ENV
    from fpt.config import compose
    from fpt.trainer import Trainer

    cfg = compose(*overrides)
    trainer = Trainer(cfg, OUT / "eval-only")
    modes = {"file order": "file", "sorted": "sorted"}  # FPT_EVAL_ORDER (fpt/batching.py), read at every batching
    seconds, metrics = {m: [] for m in modes}, {}
    for _ in range(rounds):
        for mode, order in modes.items():
            os.environ[EVAL_ORDER_ENV] = order
            started = time.perf_counter()
            metrics[mode] = trainer.evaluate()
            seconds[mode].append(time.perf_counter() - started)
    os.environ.pop(EVAL_ORDER_ENV)
    if metrics["sorted"] != metrics["file order"]:
        sys.exit(f"metrics differ: sorted {metrics['sorted']} vs file order {metrics['file order']}")
    for mode in modes:
        print(f"{mode:10s} median {statistics.median(seconds[mode]):6.1f} s  "
              f"({', '.join(f'{x:.1f}' for x in seconds[mode])})  {metrics[mode]}")
    print(f"sorted evaluation {statistics.median(seconds['file order']) / statistics.median(seconds['sorted']):.2f}x "
          f"faster, identical metrics")


# --------------------------------------------------------------------------- both arms
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=750)
    parser.add_argument("--eval-every", type=int, default=125)
    parser.add_argument("--rows", type=int, default=8000, help="training rows (the first N shuffled)")
    parser.add_argument("--dev-rows", type=int, default=None, help="cap on dev rows (default: the whole dev set)")
    parser.add_argument("--eval-only", type=int, metavar="ROUNDS",
                        help="time the dev-set evaluation alone, sorted vs file order, ROUNDS times each")
    args, overrides = parser.parse_known_args()

    from fpt.batching import EVAL_ORDER_ENV
    from fpt.config import compose
    data = Path(compose().paths.data_root) / "GLUE" / "SST-2"
    if not (data / "train.tsv").is_file():
        sys.exit(f"SST-2 not found at {data} (the data root is paths.data_root: set $FPT_DATA_ROOT)")
    common = base(args.rows, args.steps, args.eval_every, args.dev_rows) + overrides  # extra Hydra overrides
    if args.eval_only:
        return eval_only(args.eval_only, [*common, "trainer.eval_batch_size=64"])
    folder = OUT / time.strftime("%Y%m%d-%H%M%S")
    procs, started = {}, {}
    for arm, extra in ARMS.items():
        run = folder / arm
        run.mkdir(parents=True)
        cmd = [sys.executable, str(ROOT / "train.py"), *common, *extra,
               f"hydra.run.dir={run}", f"output_root={folder / ('root-' + arm)}"]
        # the `before` arm evaluates in file order (fpt/batching.py reads FPT_EVAL_ORDER at every batching)
        env = {**os.environ, **({EVAL_ORDER_ENV: "file"} if arm == "before" else {})}
        started[arm] = time.perf_counter()
        procs[arm] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(run / "stderr.txt", "w"))
    print(f"both arms started in {folder}", flush=True)
    wall = {}
    while len(wall) < len(procs):
        for arm, proc in procs.items():
            if arm not in wall and proc.poll() is not None:
                wall[arm] = time.perf_counter() - started[arm]
                if proc.returncode:
                    sys.exit(f"arm {arm} failed (exit {proc.returncode}):\n"
                             f"{(folder / arm / 'stderr.txt').read_text()[-3000:]}")
                print(f"{arm}: done in {wall[arm]:.0f} s", flush=True)
        time.sleep(1)

    rows = {}
    for arm in ARMS:
        res = json.loads((folder / arm / "results.json").read_text())
        records = [json.loads(line) for line in (folder / arm / "metrics.jsonl").read_text().splitlines()]
        rows[arm] = {"wall_seconds": wall[arm], "train_seconds": res["train_seconds"],
                     "eval_seconds": res["eval_seconds"], "evaluations": sum("eval" in r for r in records),
                     "train_flops": res["train_flops"], "final_accuracy": 100 * res["final"]["accuracy"],
                     "best_accuracy": 100 * res["best"]["accuracy"], "best_step": res["best_step"]}
    before, grouped = rows["before"], rows["grouped"]
    ratios = {"wall": before["wall_seconds"] / grouped["wall_seconds"],
              "train_seconds": before["train_seconds"] / grouped["train_seconds"],
              "eval_seconds": before["eval_seconds"] / grouped["eval_seconds"],
              "train_flops": before["train_flops"] / grouped["train_flops"]}
    print(f"\nSST-2 deep prompt, MiniLM, {args.rows} rows, {args.steps} steps, eval every {args.eval_every}, "
          f"one thread per arm, both arms at once")
    print(f"{'arm':8s} {'wall s':>8s} {'train s':>8s} {'eval s':>7s} {'train TFLOPs':>12s} "
          f"{'final acc':>9s} {'best acc':>9s} (step)")
    for arm, r in rows.items():
        print(f"{arm:8s} {r['wall_seconds']:8.0f} {r['train_seconds']:8.0f} {r['eval_seconds']:7.0f} "
              f"{r['train_flops'] / 1e12:12.1f} {r['final_accuracy']:9.2f} {r['best_accuracy']:9.2f} ({r['best_step']})")
    print(f"speed-up before/grouped: end to end {ratios['wall']:.2f}x, training {ratios['train_seconds']:.2f}x, "
          f"evaluation {ratios['eval_seconds']:.2f}x; counted training FLOPs {ratios['train_flops']:.2f}x fewer")
    print(f"accuracy grouped - before: final {grouped['final_accuracy'] - before['final_accuracy']:+.2f}, "
          f"best {grouped['best_accuracy'] - before['best_accuracy']:+.2f} points")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(["python", "benchmarks/group_by_length.py", *sys.argv[1:]]), "folder": str(folder),
              "setup": common, "arms": rows, "ratios": ratios}
    (RESULTS / "group_by_length.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
