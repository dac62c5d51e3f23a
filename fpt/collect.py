"""Turn a sweep into a results table: `python -m fpt.collect outputs/multirun/<sweep> [more sweeps] [--plot]`.

Reads every job folder's results.json and config.yaml (following run_link.json when a re-run skipped or
resumed an earlier run), groups the jobs by every config value that differs between them except the seed,
and writes next to the sweep (or to --out):

  results.md   the tables printed on stdout: one row per configuration (mean ± std over seeds and the
               count), the best configuration per (task, model, prompt, schedule), failed/unfinished jobs
  results.csv  one row per configuration, every dev metric's mean and std
  best.csv     the best configuration per (task, model, prompt, schedule)
  jobs.csv     one row per job, with its status and error
  curves.png   (--plot) dev metric against cumulative training FLOPs, one line per configuration

"best" is the best dev value of the task's selection metric during a run (the one train.py returns),
"final" its value at the last step. std is the sample standard deviation (n - 1); blank when n = 1.
FLOPs and time are relative to the vanilla prompt-tuning row (schedule=none, everything else equal)
when the sweep has one.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from .checkpoint import RUNTIME_KEYS

IDENTITY = {"task": "task.name", "model": "model.name", "prompt": "prompt.type", "schedule": "schedule.name"}
IGNORED = {"seed", "run_dir", "output_root"} | {f"trainer.{k}" for k in RUNTIME_KEYS}
JOB_MARKERS = ("results.json", "run_state.json", "run_link.json", ".hydra")


# --------------------------------------------------------------------------- reading jobs
@dataclass
class Job:
    folder: Path                    # the job's folder in the sweep
    run_dir: Path                   # where its outputs are (an earlier run's folder if it was skipped/resumed)
    status: str                     # completed | failed | unfinished
    config: dict                    # flattened "a.b" -> value
    results: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    note: str = ""                  # e.g. "skipped: completed in <dir>"

    @property
    def error(self) -> str:
        return self.results.get("error", "")


def find_job_folders(root: Path) -> list[Path]:
    """Folders under root holding a job (results, run state, a link to an earlier run, or Hydra's .hydra/)."""
    found = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        if any((path / m).exists() for m in JOB_MARKERS):
            found.append(path)
        else:
            found += find_job_folders(path)
    return found


def flatten(node, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return out


def read_config(*candidates: Path) -> dict:
    for path in candidates:
        if path.is_file():
            cfg = OmegaConf.load(path)
            cfg.pop("hydra", None)
            return flatten(OmegaConf.to_container(cfg, resolve=False))
    return {}


def read_job(folder: Path) -> Job:
    run_dir, note = folder, ""
    link = folder / "run_link.json"
    if link.is_file():
        target = json.loads(link.read_text())
        run_dir = Path(target["run_dir"])
        verb = "skipped, completed" if target.get("earlier_status") == "completed" else "resumed"
        note = f"{verb} in {run_dir}"
    config = read_config(run_dir / "config.yaml", folder / ".hydra" / "config.yaml")
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
    results_file = run_dir / "results.json"
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        status = "completed" if results.get("status") == "completed" else "failed"
        return Job(folder, run_dir, status, config, results, overrides, note)
    state_file = run_dir / "run_state.json"
    state = json.loads(state_file.read_text()).get("status") if state_file.is_file() else None
    note = note or ("never started" if state is None else f"run_state: {state}")
    if link.is_file() and not run_dir.is_dir():
        note = f"the linked run {run_dir} is missing"
    return Job(folder, run_dir, "unfinished", config, {}, overrides, note)


def read_sweeps(roots: list[Path]) -> list[Job]:
    jobs, seen = [], set()
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"sweep folder {root} does not exist")
        for folder in find_job_folders(root):
            job = read_job(folder)
            key = job.run_dir.resolve()
            if key not in seen:  # the same run reached from two sweeps counts once
                seen.add(key)
                jobs.append(job)
    if not jobs:
        raise FileNotFoundError(f"no job folders (with {', '.join(JOB_MARKERS)}) under {', '.join(map(str, roots))}")
    return jobs


# --------------------------------------------------------------------------- grouping
def _sortable(value):
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def group_keys(jobs: list[Job]) -> tuple[list[str], list[str]]:
    """(keys the jobs are grouped by, the subset shown as columns besides task/model/prompt/schedule)."""
    keys = []
    for job in jobs:
        keys += [k for k in job.config if k not in keys]
    differing = [k for k in keys if k not in IGNORED and len({json.dumps(j.config.get(k), default=str)
                                                                for j in jobs}) > 1]
    shown = []
    for key in differing:
        if key in IDENTITY.values() or key.startswith("released."):
            continue  # (released.*: the published number, shown in released_table, not a setting)
        group = key.split(".")[0]
        ident = IDENTITY.get(group)
        if ident in differing and _determined_by(jobs, key, ident):
            continue  # e.g. model.name_or_path when model=... is swept: the model column says it
        shown.append(key)
    return differing, shown


def _determined_by(jobs, key, by) -> bool:
    seen = {}
    for job in jobs:
        value = json.dumps(job.config.get(key), default=str)
        if seen.setdefault(job.config.get(by), value) != value:
            return False
    return True


@dataclass
class Row:
    values: dict                    # group key -> value (plus task/model/prompt/schedule)
    jobs: list[Job]

    @property
    def done(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "completed"]

    @property
    def metric(self) -> str:
        return self.done[0].results["metric"] if self.done else self.jobs[0].config.get("task.metric", "")

    def stat(self, part: str, metric: str | None = None) -> tuple[float, float]:
        """(mean, std) of results[part][metric] over the completed seeds."""
        values = [j.results.get(part, {}).get(metric or self.metric) for j in self.done]
        return _mean_std([v for v in values if v is not None])

    def mean_of(self, key: str) -> float:
        return _mean_std([j.results[key] for j in self.done if j.results.get(key) is not None])[0]


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def make_rows(jobs: list[Job]) -> tuple[list[Row], list[str]]:
    keys, shown = group_keys(jobs)
    columns = list(IDENTITY) + shown
    groups: dict[tuple, Row] = {}
    for job in jobs:
        values = {name: job.config.get(key, job.results.get(name)) for name, key in IDENTITY.items()}
        values.update({k: job.config.get(k) for k in shown})
        ident = tuple(json.dumps(job.config.get(k), default=str) for k in keys)
        groups.setdefault(ident, Row(values, [])).jobs.append(job)
    rows = sorted(groups.values(), key=lambda r: [_sortable(r.values[c]) for c in columns])
    return rows, columns


def vanilla_of(row: Row, rows: list[Row], columns: list[str]) -> Row | None:
    """The vanilla prompt-tuning row with everything else equal (schedule.* aside)."""
    same = [c for c in columns if c != "schedule" and not c.startswith("schedule.")]
    for other in rows:
        if other.values["schedule"] == "none" and all(other.values[c] == row.values[c] for c in same):
            return other
    return None


def best_rows(rows: list[Row]) -> list[Row]:
    """Per (task, model, prompt, schedule): the configuration with the highest mean best metric."""
    best: dict[tuple, Row] = {}
    for row in rows:
        mean = row.stat("best")[0]
        if math.isnan(mean):
            continue
        cell = tuple(row.values[c] for c in IDENTITY)
        if cell not in best or mean > best[cell].stat("best")[0]:
            best[cell] = row
    return list(best.values())


# --------------------------------------------------------------------------- tables
def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _num(x: float, fmt: str) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def summary_table(rows: list[Row], columns: list[str]) -> tuple[list[str], list[list[str]]]:
    relative = {id(r): vanilla_of(r, rows, columns) for r in rows}
    with_ref = any(relative[id(r)] not in (None, r) for r in rows)
    best = {id(r) for r in best_rows(rows)}
    header = columns + ["n", "metric", "best", "final", "train FLOPs", "train s"]
    if with_ref:
        header += ["FLOPs vs PT", "time vs PT"]
    if any(len(r.done) < len(r.jobs) for r in rows):
        header += ["not done"]
    body = []
    for r in rows:
        flops, secs = r.mean_of("train_flops"), r.mean_of("train_seconds")
        line = [str(r.values[c]) for c in columns] + [
            str(len(r.done)), r.metric, _pm(*r.stat("best")) + (" *" if id(r) in best else ""),
            _pm(*r.stat("final")), _num(flops, ".3g"), _num(secs, ".1f")]
        if with_ref:
            ref = relative[id(r)]
            line += [_num(flops / ref.mean_of("train_flops"), ".2f") + "x", _num(secs / ref.mean_of("train_seconds"),
                     ".2f") + "x"] if ref is not None and ref.done and r.done else ["", ""]
        if "not done" in header:
            line.append(str(len(r.jobs) - len(r.done)))
        body.append(line)
    return header, body


def best_table(rows: list[Row], columns: list[str]) -> tuple[list[str], list[list[str]]]:
    extra = [c for c in columns if c not in IDENTITY]
    header = list(IDENTITY) + ["configuration", "n", "metric", "best"]
    body = [[str(r.values[c]) for c in IDENTITY] + [" ".join(f"{c}={r.values[c]}" for c in extra) or "-",
                                                     str(len(r.done)), r.metric, _pm(*r.stat("best"))]
            for r in best_rows(rows)]
    return header, body


def released_table(rows: list[Row], columns: list[str]) -> tuple[list[str], list[list[str]]]:
    """Configurations that record a published result (`released:`, e.g. experiment=ptv2/...): ours next to it.

    Ours is the mean ± std over seeds of the best-dev-step value of each released metric, x100 as papers print.
    """
    extra = [c for c in columns if c not in IDENTITY]
    header = ["task", "model", "configuration", "metric", "n", "ours", "released", "ours - released",
              "best epoch: ours / released", "source"]
    body = []
    for r in rows:
        config = r.jobs[0].config
        prefix = "released.metrics."
        for key in [k for k in config if k.startswith(prefix)]:
            metric, value = key[len(prefix):], float(config[key])
            mean, std = r.stat("best", metric)
            ours = "" if math.isnan(mean) else f"{100 * mean:.1f}" + ("" if math.isnan(std) else f" ± {100 * std:.1f}")
            body.append([str(r.values["task"]), str(r.values["model"]),
                         " ".join(f"{c}={r.values[c]}" for c in extra) or "-", metric, str(len(r.done)), ours,
                         f"{value:.1f}", "" if math.isnan(mean) else f"{100 * mean - value:+.1f}",
                         f"{_num(r.mean_of('best_epoch'), '.0f') or '?'} / {config.get('released.best_epoch') or '?'}",
                         str(config.get("released.source", ""))])
    return header, body


def problems_table(jobs: list[Job], roots: list[Path]) -> tuple[list[str], list[list[str]]]:
    header = ["job", "status", "overrides", "error"]
    body = []
    for job in jobs:
        if job.status != "completed":
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


# --------------------------------------------------------------------------- files
def write_csv(path: Path, header: list[str], body: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(body)


def results_csv(rows: list[Row], columns: list[str]) -> tuple[list[str], list[list]]:
    metrics = []
    for r in rows:
        for j in r.done:
            metrics += [m for m in j.results.get("best", {}) if m not in metrics]
    header = columns + ["n", "not_done", "seeds", "metric", "best_mean", "best_std", "final_mean", "final_std"]
    header += [f"best_{m}_{s}" for m in metrics for s in ("mean", "std")]
    header += ["train_flops_mean", "train_seconds_mean", "flops_vs_vanilla", "seconds_vs_vanilla"]
    body = []
    for r in rows:
        ref = vanilla_of(r, rows, columns)
        flops, secs = r.mean_of("train_flops"), r.mean_of("train_seconds")
        line = [r.values[c] for c in columns] + [len(r.done), len(r.jobs) - len(r.done),
                                                 " ".join(str(j.config.get("seed")) for j in r.done), r.metric,
                                                 *r.stat("best"), *r.stat("final")]
        line += [x for m in metrics for x in r.stat("best", m)]
        line += [flops, secs] + ([flops / ref.mean_of("train_flops"), secs / ref.mean_of("train_seconds")]
                                 if ref is not None and ref.done and r.done else ["", ""])
        body.append(["" if isinstance(x, float) and math.isnan(x) else x for x in line])
    return header, body


def jobs_csv(jobs: list[Job], roots: list[Path]) -> tuple[list[str], list[list]]:
    header = ["job", "status", "run_dir", "task", "model", "prompt", "schedule", "seed", "metric", "best", "final",
              "train_flops", "train_seconds", "overrides", "error", "note"]
    body = []
    for j in jobs:
        r, metric = j.results, j.results.get("metric", j.config.get("task.metric", ""))
        body.append([_relative(j.folder, roots), j.status, str(j.run_dir)] +
                    [j.config.get(IDENTITY[c], r.get(c, "")) for c in IDENTITY] +
                    [j.config.get("seed", r.get("seed", "")), metric, r.get("best", {}).get(metric, ""),
                     r.get("final", {}).get(metric, ""), r.get("train_flops", ""), r.get("train_seconds", ""),
                     " ".join(j.overrides), (j.error.splitlines() or [""])[0], j.note])
    return header, body


def plot(rows: list[Row], columns: list[str], path: Path) -> None:
    """Dev metric against cumulative training FLOPs, mean over seeds, one line per configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r.values["task"], r.metric) for r in rows if r.done})
    varying = [c for c in columns if c != "task" and len({str(r.values[c]) for r in rows}) > 1]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (task, metric) in zip(axes[0], panels):
        for r in rows:
            if r.values["task"] != task or r.metric != metric or not r.done:
                continue
            curves = [_eval_curve(j.run_dir, metric) for j in r.done]
            steps = sorted(set.intersection(*[set(c) for c in curves]))
            if not steps:
                continue
            xs = [statistics.fmean(c[s][0] for c in curves) for s in steps]
            ys = [statistics.fmean(c[s][1] for c in curves) for s in steps]
            label = " ".join(f"{c}={r.values[c]}" for c in varying) + f" (n={len(r.done)})"
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set(title=task, xlabel="cumulative training FLOPs", ylabel=f"dev {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _eval_curve(run_dir: Path, metric: str) -> dict[int, tuple[float, float]]:
    """step -> (train FLOPs so far, dev metric) from a run's metrics.jsonl."""
    curve = {}
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if metric in record.get("eval", {}):
                curve[record["step"]] = (record["train_flops"], record["eval"][metric])
    return curve


# --------------------------------------------------------------------------- command line
def collect(roots: list[Path], out: Path | None = None, with_plot: bool = False) -> str:
    """Write the tables (and the plot) for these sweeps; returns the Markdown that is printed."""
    roots = [Path(r).resolve() for r in roots]
    out = Path(out) if out else roots[0]
    out.mkdir(parents=True, exist_ok=True)
    jobs = read_sweeps(roots)
    rows, columns = make_rows(jobs)
    done = sum(j.status == "completed" for j in jobs)
    parts = [f"# {', '.join(map(str, roots))}",
             f"{len(jobs)} jobs: {done} completed, {len(jobs) - done} failed or unfinished; "
             f"{len(rows)} configurations (mean ± std over seeds, n = completed seeds, * = best per "
             f"task/model/prompt/schedule)",
             markdown(*summary_table(rows, columns)),
             "## Best configuration per (task, model, prompt, schedule)",
             markdown(*best_table(rows, columns))]
    released = released_table(rows, columns)
    if released[1]:
        parts += ["## Ours vs released (x100)", markdown(*released)]
    problems = problems_table(jobs, roots)
    parts += ["## Failed or unfinished jobs", markdown(*problems) if problems[1] else "none"]
    text = "\n\n".join(parts) + "\n"
    (out / "results.md").write_text(text)
    write_csv(out / "results.csv", *results_csv(rows, columns))
    write_csv(out / "best.csv", *best_table(rows, columns))
    write_csv(out / "jobs.csv", *jobs_csv(jobs, roots))
    if with_plot:
        plot(rows, columns, out / "curves.png")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fpt.collect", description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (outputs/multirun/...)")
    parser.add_argument("--out", type=Path, help="where to write the tables (default: the first sweep folder)")
    parser.add_argument("--plot", action="store_true", help="also draw curves.png (needs matplotlib)")
    args = parser.parse_args(argv)
    try:
        print(collect(args.sweeps, args.out, args.plot), end="")
    except FileNotFoundError as err:
        parser.error(str(err))
    out = args.out or args.sweeps[0]
    print(f"\nwrote {out}/results.md, results.csv, best.csv, jobs.csv" + (", curves.png" if args.plot else ""))


if __name__ == "__main__":
    main()
