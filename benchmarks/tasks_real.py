"""Real-data runs of the task kinds: MiniLM + deep prompts on CoNLL-2003 NER, SQuAD 1.1, COPA and BoolQ.

    python benchmarks/tasks_real.py                      # all four, a few CPU minutes each
    python benchmarks/tasks_real.py copa boolq           # some of them

Reads the data root (paths.data_root: $FPT_DATA_ROOT or its default; override with --data), writes the documented
splits under <out>/data in each dataset's official format, runs train.py once per task (niced;
experiment=tasks_real/<task>) and prints the best dev metric (and, for CoNLL-2003, test at the best dev step) next
to a trivial baseline computed on the same eval set.

Splits (the only labelled copies on this machine are dev/val files):
- CoNLL-2003: train on the first 3,000 shuffled sentences of eng.train (task.shuffle_seed=0); dev eng.testa,
  test eng.testb (both whole).
- SQuAD 1.1: dev-v1.1.json split by article, in file order: article i goes to eval when i % 5 == 4
  (9 articles, 1,975 questions), else to train (39 articles, 8,595 questions); train on the first 2,400 shuffled
  training questions, score the first 1,000 eval questions (file order); windows of 128 tokens, stride 48
  (CPU budget; the task's defaults are 384/128).
- COPA: val.jsonl, idx < 50 -> train, idx >= 50 -> eval.
- BoolQ: val.jsonl, idx % 5 == 0 -> eval (654 questions), the other 2,616 -> train.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fpt.config import compose
from fpt.metrics import iob1_to_iob2, seqeval_f1, squad
from fpt.tasks import read_rows

ROOT = Path(__file__).resolve().parents[1]

# the recipes: conf/experiment/tasks_real/<task>.yaml; the data folder is this script's (it writes the splits)
DATA = {"conll03": "{shared}/conll2003", "squad": "{data}/squad", "copa": "{data}/copa", "boolq": "{data}/boolq"}


# --------------------------------------------------------------------------- splits
def _jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def prepare(shared: Path, data: Path) -> None:
    squad_dev = json.loads((shared / "SQuAD" / "dev-v1.1.json").read_text())
    for name, keep in [("train", lambda i: i % 5 != 4), ("eval", lambda i: i % 5 == 4)]:
        part = {"version": squad_dev["version"], "data": [a for i, a in enumerate(squad_dev["data"]) if keep(i)]}
        (data / "squad").mkdir(parents=True, exist_ok=True)
        (data / "squad" / f"{name}.json").write_text(json.dumps(part))
    copa = _jsonl(shared / "SuperGLUE" / "COPA" / "val.jsonl")
    _write_jsonl(data / "copa" / "train.jsonl", [r for r in copa if r["idx"] < 50])
    _write_jsonl(data / "copa" / "val.jsonl", [r for r in copa if r["idx"] >= 50])
    boolq = _jsonl(shared / "SuperGLUE" / "BoolQ" / "val.jsonl")
    _write_jsonl(data / "boolq" / "train.jsonl", [r for r in boolq if r["idx"] % 5 != 0])
    _write_jsonl(data / "boolq" / "val.jsonl", [r for r in boolq if r["idx"] % 5 == 0])


# --------------------------------------------------------------------------- trivial baselines
def baseline(task: str, shared: Path, data: Path) -> str:
    if task == "conll03":  # the dev sentences as the run reads them (fpt.tasks.read_rows), tags in IOB2
        cfg = compose("task=conll03", f"task.data_dir={shared / 'conll2003'}")
        gold = [iob1_to_iob2(row[cfg.task.tags_field]) for row in read_rows(cfg.task, "eval")]
        f1 = seqeval_f1([["O"] * len(t) for t in gold], gold)["f1"]
        return f"all-O tagger: dev f1 {f1:.3f}"
    if task == "squad":
        rows = [(p["context"], [a["text"] for a in q["answers"]]) for a in
                json.loads((data / "squad" / "eval.json").read_text())["data"] for p in a["paragraphs"] for q in p["qas"]]
        rows = rows[:compose("experiment=tasks_real/squad").task.max_eval_samples]  # the questions the run scores
        first = [re.split(r"(?<=[.!?])\s", c, maxsplit=1)[0] for c, _ in rows]
        m = squad(first, [g for _, g in rows])
        return f"first sentence of the context: EM {m['exact_match']:.3f} F1 {m['f1']:.3f}"
    rows = _jsonl(data / task / "val.jsonl")
    label, count = Counter(str(r["label"]) for r in rows).most_common(1)[0]
    return f"majority class ({label}): accuracy {count / len(rows):.3f}"


# --------------------------------------------------------------------------- runs
def run(task: str, shared: Path, data: Path, out: Path) -> dict:
    overrides = [f"experiment=tasks_real/{task}", "task.data_dir=" + DATA[task].format(shared=shared, data=data)]
    run_dir = out / "runs" / task
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run and metrics log every time
    cmd = ["nice", "-n", "10", sys.executable, str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}",
           f"output_root={run_dir}"]
    print("$", " ".join(cmd[3:]), flush=True)
    started = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    results = json.loads((run_dir / "results.json").read_text())
    results["wall_seconds"] = time.time() - started
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", default=list(DATA), choices=list(DATA))
    parser.add_argument("--data", type=Path, default=Path(compose().paths.data_root),
                        help="the data root (default: paths.data_root, from the folder this is run in)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "tasks_real")
    args = parser.parse_args()
    shared, data = args.data.resolve(), (args.out / "data").resolve()
    prepare(shared, data)
    lines = []
    for task in args.tasks:
        r = run(task, shared, data, args.out.resolve())
        best = r["best"]
        shown = {k: round(v, 4) for k, v in best.items() if k in ("accuracy", "exact_match", "f1", "test_f1")}
        lines.append(f"{task:8s} best step {r['best_step']}/{r['steps']}: {shown}  ({r['wall_seconds'] / 60:.1f} min)"
                     f"  | baseline: {baseline(task, shared, data)}")
        print(lines[-1], flush=True)
    print("\n".join(["", "summary:"] + lines))


if __name__ == "__main__":
    main()
