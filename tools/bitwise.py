"""Fingerprint what runs wrote, to show a refactoring changed no number (issue 22's proof).

    python -m tools.bitwise run OUT.json [--data-root DIR]    # train the runs below, fingerprint their folders
    python -m tools.bitwise compare BEFORE.json AFTER.json    # every tensor, metric and logged value equal?

A fingerprint holds, per run: the sha256 of every tensor in trainable_best/final.safetensors and in
checkpoint/last.pt (model tensors, optimizer state, RNG states), results.json and every metrics.jsonl record
without their wall-clock fields, and the config the run wrote (without its folder). Equal fingerprints mean
bitwise-equal trained tensors, optimizer states and metrics.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
# name -> train.py overrides: the demo, a deep SST-2 run, FPT runs (deep with gates, shallow on tiny T5)
RUNS = {
    "demo": [],
    "sst2_deep": ["experiment=learning/sst2_deep", "trainer.max_steps=60", "trainer.eval_every=20",
                  "task.max_eval_samples=200"],
    "fpt_deep_gate": ["experiment=fpt_sst2/deep_fpt_gate", "trainer.max_steps=60", "trainer.eval_every=20",
                      "task.max_eval_samples=200"],
    "fpt_t5_shallow": ["model=tiny-t5", "schedule=fpt", "trainer.max_steps=12", "trainer.eval_every=4"],
}
TIME_KEYS = {"train_seconds", "seconds", "time", "elapsed", "steps_per_second", "examples_per_second",
             "eval_seconds", "wall", "timestamp"}


def _digest(tensor: torch.Tensor) -> str:
    t = tensor.detach().cpu().contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return f"{t.dtype}{tuple(t.shape)}:" + hashlib.sha256(raw).hexdigest()[:16]


def _walk(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = _digest(obj)
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            _walk(obj[key], f"{prefix}.{key}", out)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _walk(value, f"{prefix}[{i}]", out)
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        if prefix.rsplit(".", 1)[-1] not in TIME_KEYS:
            out[prefix] = obj
    else:
        out[prefix] = repr(type(obj))


def _timeless(record):
    if isinstance(record, dict):
        return {k: _timeless(v) for k, v in record.items() if k not in TIME_KEYS}
    return record


def fingerprint(run_dir: Path) -> dict:
    out = {}
    for name in ("trainable_best.safetensors", "trainable_final.safetensors"):
        if (run_dir / name).is_file():
            out[name] = {k: _digest(v) for k, v in sorted(load_file(str(run_dir / name)).items())}
    last = run_dir / "checkpoint" / "last.pt"
    if last.is_file():
        state, flat = torch.load(last, map_location="cpu", weights_only=False), {}
        _walk(state, "last", flat)
        out["last.pt"] = {k: v for k, v in flat.items() if "identity" not in k and "run_dir" not in k}
    results = json.loads((run_dir / "results.json").read_text())
    out["results.json"] = _timeless(results)
    out["metrics.jsonl"] = [_timeless(json.loads(line)) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                            if line.strip()]
    out["config.yaml"] = [line for line in (run_dir / "config.yaml").read_text().splitlines()
                          if not line.startswith("run_dir:")]
    return out


def run(out: Path, data_root: str | None, names: list[str]) -> None:
    prints = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            run_dir = Path(tmp) / name
            cmd = [sys.executable, str(ROOT / "train.py"), *RUNS[name], f"hydra.run.dir={run_dir}",
                   f"output_root={tmp}/outputs", "logger=none", "trainer.progress=false", "trainer.threads=1",
                   "trainer.keep_checkpoints=true"]
            if data_root:
                cmd.append(f"paths.data_root={data_root}")
            print("+", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True, cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"})
            prints[name] = fingerprint(run_dir)
    out.write_text(json.dumps(prints, indent=1, sort_keys=True))
    print(f"wrote {out}")


def _diff(a, b, where: str, found: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{where}/{key}", found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", found)
    elif a != b:
        found.append(f"{where}: {a!r} != {b!r}")


def _load(path: Path) -> dict:
    """A fingerprint file with each run's temporary folder written as <tmp> (it differs between invocations)."""
    return json.loads(re.sub(r"/tmp/tmp\w+", "<tmp>", path.read_text()))


def compare(before: Path, after: Path) -> int:
    a, b = _load(before), _load(after)
    found = []
    _diff(a, b, "", found)
    for line in found[:50]:
        print(line)
    counted = sum(len(v) if isinstance(v, (dict, list)) else 1 for run in a.values() for v in run.values())
    print(f"{len(a)} runs, {counted} fingerprinted items: " + ("all equal" if not found else f"{len(found)} differ"))
    return 1 if found else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bitwise", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--data-root", default=os.environ.get("FPT_DATA_ROOT"))
    r.add_argument("--only", nargs="*", default=list(RUNS), choices=list(RUNS))
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "run":
        run(args.out, args.data_root, args.only)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
