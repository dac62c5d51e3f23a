"""Seconds from launching `python train.py` to its error, for three bad inputs (a config value, a data file, a model).

    python benchmarks/startup.py [--repeats 3] [--root /path/to/another/checkout]

Each case runs `train.py` in a fresh process into a temporary folder and prints the wall-clock seconds until the
process exits, its exit code and the error line. The start-up checks (fpt/validate.py) run before the trainer and
its heavy imports (transformers, peft, datasets, tensorboard) are loaded.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ["model=tiny-bert", "trainer.max_steps=4", "trainer.progress=false"]


def cases(tmp: Path) -> dict[str, list[str]]:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    (data / "train.tsv").write_text("sentence\tlabel\ngood movie\t1\nodd movie\tmaybe\n")
    (data / "dev.tsv").write_text("sentence\tlabel\na fine film\t1\n")
    return {
        "config value (trainer.batch_size=0)": ["trainer.batch_size=0"],
        "data file (label outside task.labels)": ["task=sst2", f"task.data_dir={data}"],
        "model (task.max_length above its positions)": ["task.max_length=1000"],
    }


def launch(root: Path, overrides: list[str], run_dir: Path) -> tuple[float, int, str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(root / "train.py"), *BASE, *overrides, f"hydra.run.dir={run_dir}",
           f"output_root={run_dir}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    errors = [line for line in proc.stderr.splitlines() if "Error" in line and ":" in line]
    return seconds, proc.returncode, errors[-1] if errors else proc.stderr[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose train.py runs (default: this one)")
    args = parser.parse_args()
    print(f"{args.root}: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, overrides in cases(tmp).items():
            times = []
            for _ in range(args.repeats):
                seconds, code, error = launch(args.root, overrides, tmp / f"run-{len(times)}-{abs(hash(name))}")
                times.append(seconds)
            print(f"{name}: median {statistics.median(times):.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)}), "
                  f"exit code {code}\n    {error}")


if __name__ == "__main__":
    main()
