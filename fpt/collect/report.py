"""What collect writes: the Markdown tables (summary, best, ours vs released, failed jobs) and the CSV files
(numbers only in number columns)."""
from __future__ import annotations

import math
from pathlib import Path

from ..extras import require
from ..runs.checkpoint import write_text
from .read import Job
from .table import IDENTITY, best_rows

pd = require("pandas", "python -m fpt.collect")


def _pm(mean: float, std: float, n: int = 0) -> str:
    """mean ± std; "nan" when completed seeds (n) have no number, blank when there are none."""
    if math.isnan(mean):
        return "nan" if n else ""
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def num_text(x: float, fmt: str) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def summary_table(table: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[list[str]]]:
    with_ref = bool(table["has_reference"].any())
    best = set(best_rows(table).index)
    header = columns + ["n", "metric", "best", "final", "train FLOPs", "train s"]
    if with_ref:
        header += ["FLOPs vs PT", "time vs PT"]
    not_done = table["jobs"] - table["n"]
    if not_done.any():
        header += ["not done"]
    body = []
    for i, r in table.iterrows():
        line = [str(r[c]) for c in columns] + [
            str(r["n"]), r["metric"], _pm(r["best_mean"], r["best_std"], r["n"]) + (" *" if i in best else ""),
            _pm(r["final_mean"], r["final_std"], r["n"]), num_text(r["train_flops_mean"], ".3g"),
            num_text(r["train_seconds_mean"], ".1f")]
        if with_ref:
            line += [num_text(r["flops_vs_vanilla"], ".2f") + "x",
                     num_text(r["seconds_vs_vanilla"], ".2f") + "x"] \
                if not math.isnan(r["flops_vs_vanilla"]) else ["", ""]
        if "not done" in header:
            line.append(str(not_done[i]))
        body.append(line)
    return header, body


def _configuration(r: pd.Series, columns: list[str]) -> str:
    return " ".join(f"{c}={r[c]}" for c in columns if c not in IDENTITY) or "-"


def best_table(table: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[list[str]]]:
    header = list(IDENTITY) + ["configuration", "n", "metric", "best"]
    body = [[str(r[c]) for c in IDENTITY] + [_configuration(r, columns), str(r["n"]), r["metric"],
                                             _pm(r["best_mean"], r["best_std"], r["n"])]
            for _, r in best_rows(table).iterrows()]
    return header, body


def released_table(table: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[list[str]]]:
    """Configurations that record a published result (`released:`, e.g. experiment=ptv2/...): ours next to it.

    Ours is the mean ± std over seeds of the best-dev-step value of each released metric, x100 as papers print.
    """
    header = ["task", "model", "configuration", "metric", "n", "ours", "released", "ours - released",
              "best epoch: ours / released", "source"]
    body = []
    for _, r in table.iterrows():
        released = r["released"] if isinstance(r["released"], dict) else {}
        prefix = "metrics."
        for key in [k for k in released if k.startswith(prefix)]:
            metric, value = key[len(prefix):], float(released[key])
            mean, std = r.get(f"best_{metric}_mean", math.nan), r.get(f"best_{metric}_std", math.nan)
            ours = "" if math.isnan(mean) else f"{100 * mean:.1f}" + ("" if math.isnan(std) else f" ± {100 * std:.1f}")
            epoch = r.get("best_epoch_mean", math.nan)
            body.append([str(r["task"]), str(r["model"]), _configuration(r, columns), metric, str(r["n"]), ours,
                         f"{value:.1f}", "" if math.isnan(mean) else f"{100 * mean - value:+.1f}",
                         f"{num_text(epoch, '.0f') or '?'} / {released.get('best_epoch') or '?'}",
                         str(released.get("source", ""))])
    return header, body


def problems_table(jobs: list[Job], roots: list[Path]) -> tuple[list[str], list[list[str]]]:
    header = ["job", "status", "overrides", "error"]
    body = []
    for job in jobs:
        if job.status not in ("completed", "stopped"):
            error = (job.error.splitlines() or [""])[0][:200] or job.note
            body.append([_relative(job.folder, roots), job.status, " ".join(job.overrides), error])
    return header, body


def _relative(path: Path, roots: list[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return str(path.relative_to(root)) if len(roots) == 1 else str(path)
    return str(path)


def markdown(header: list[str], body: list[list[str]]) -> str:
    esc = [[cell.replace("|", "\\|") for cell in line] for line in [header] + body]
    lines = ["| " + " | ".join(line) + " |" for line in esc]
    lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
    return "\n".join(lines)



# --------------------------------------------------------------------------- files (numbers only in number columns)
def results_frame(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    metrics = [c.removeprefix("best_").removesuffix("_mean") for c in table.columns
               if c.startswith("best_") and c.endswith("_mean") and c != "best_mean"]
    out = table[columns + ["n"]].copy()
    out["not_done"] = table["jobs"] - table["n"]
    out = out.join(table[["seeds", "metric", "best_mean", "best_std", "final_mean", "final_std"]])
    out = out.join(table[[f"best_{m}_{s}" for m in metrics for s in ("mean", "std")]])
    return out.join(table[["train_flops_mean", "train_flops_std", "train_seconds_mean", "train_seconds_std",
                           "flops_vs_vanilla", "seconds_vs_vanilla"]])


def best_frame(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    best = best_rows(table)
    out = best[list(IDENTITY)].copy()
    out["configuration"] = [_configuration(r, columns) for _, r in best.iterrows()]
    return out.join(best[[c for c in columns if c not in IDENTITY] + ["n", "metric", "best_mean", "best_std",
                                                                     "final_mean", "final_std"]])


def jobs_frame(jobs: list[Job], roots: list[Path]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        r, metric = j.results, j.results.get("metric", j.config.get("task.metric", ""))
        rows.append({"job": _relative(j.folder, roots), "status": j.status, "run_dir": str(j.run_dir),
                     **{c: j.config.get(IDENTITY[c], r.get(c)) for c in IDENTITY},
                     "seed": j.config.get("seed", r.get("seed")), "metric": metric,
                     "best": r.get("best", {}).get(metric), "final": r.get("final", {}).get(metric),
                     "train_flops": r.get("train_flops"), "train_seconds": r.get("train_seconds"),
                     "overrides": " ".join(j.overrides), "error": (j.error.splitlines() or [""])[0],
                     "note": j.note})
    return pd.DataFrame(rows)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False))

