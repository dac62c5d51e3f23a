"""The PT-Retrieval study's table (benchmarks/README.md): per arm, mean ± std over seeds of nDCG@10 and ECE in domain
(BoolQ test) and out of domain (SQuAD test), training FLOPs and the trainable share of the parameters. It reads the
runs (not those under diag/) and their two eval.py folders (eval-boolq-test, eval-squad-test), and the zero-shot
evaluations:

    python benchmarks/retrieval_study.py outputs/pt_retrieval_study
"""
import argparse
import json
import statistics
from pathlib import Path

import yaml


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())["metrics"]


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    args = parser.parse_args()
    arms: dict[str, list[dict]] = {}
    for results in sorted(args.study.glob("**/results.json")):
        run = results.parent
        if "diag" in run.parts or not (run / "eval-squad-test" / "metrics.json").is_file():
            continue
        r = json.loads(results.read_text())
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        arm = f"{cfg['prompt']['type']}" + ("" if cfg["schedule"]["name"] == "none" else f" + {cfg['schedule']['name']}")
        arms.setdefault(arm, []).append({"seed": cfg["seed"], "dev": r["best"]["ndcg@10"],
                                         "in": metrics(run / "eval-boolq-test"), "out": metrics(run / "eval-squad-test"),
                                         "flops": r["train_flops"], "params": r["trainable_params"],
                                         "seconds": r["train_seconds"]})
    total = max(x["params"] for runs in arms.values() for x in runs)  # fine-tuning trains every weight
    print("| arm | seeds | BoolQ test nDCG@10 | BoolQ test ECE | SQuAD (OOD) nDCG@10 | SQuAD (OOD) ECE | "
          "train FLOPs | trainable share |")
    print("|---|---|---|---|---|---|---|---|")
    zero = args.study / "zero-shot"
    if (zero / "squad" / "metrics.json").is_file():
        zi, zo = metrics(zero / "boolq"), metrics(zero / "squad")
        print(f"| zero-shot (no training) | - | {zi['ndcg@10']:.4f} | {zi['ece']:.4f} | {zo['ndcg@10']:.4f} | "
              f"{zo['ece']:.4f} | 0 | 0 |")
    for arm, runs in arms.items():
        cols = [mean_std([x[side]["ndcg@10"] for x in runs]) + "|" + mean_std([x[side]["ece"] for x in runs])
                for side in ("in", "out")]
        print(f"| {arm} | {','.join(str(x['seed']) for x in runs)} | {cols[0].replace('|', ' | ')} | "
              f"{cols[1].replace('|', ' | ')} | {statistics.mean(x['flops'] for x in runs):.3g} | "
              f"{runs[0]['params'] / total:.4f} |")


if __name__ == "__main__":
    main()
