"""Turn a sweep into a results table: `python -m fpt.collect outputs/multirun/<sweep> [more sweeps] [--plot]`.

A folder may also be a single run (`python -m fpt.collect outputs/2026-01-01/12-00-00`).

Reads every job folder's results.json and config.yaml (following run_link.json when a re-run skipped or
resumed an earlier run), groups the jobs by every value of their run identity (fpt/runs/identity.py: the config less
where and how it runs, e.g. paths.*, logger.*, trainer.device) that differs between them except the seed,
and writes next to the sweep (or to --out):

  results.md   the tables printed on stdout: one row per configuration (mean ± std over seeds and the
               count), the best configuration per (task, model, prompt, schedule), failed/unfinished jobs
  results.csv  one row per configuration: numbers only in number columns (<x>_mean and <x>_std separate,
               empty when undefined), e.g. pandas.read_csv(...).sort_values("best_mean")
  best.csv     the best configuration per (task, model, prompt, schedule), numeric as results.csv
  jobs.csv     one row per job, with its status and error
  curves.png   (--plot) dev metric against cumulative training FLOPs, one panel per (task, model): per
               configuration the mean over seeds and a band of ± one standard deviation; the legend, outside
               the axes, names only the keys that vary in that panel

A successive-halving search (hparams_search=ptv2_halving; its sweep folder holds search.json) also gets a table of
its trials: the rung (stop step) each reached, its dev metric there, its best, its train FLOPs, and the total
training FLOPs of the search (the sum of the trials' cumulative train_flops). Its pruned trials' jobs have
status "stopped": they count in no configuration's mean and are not listed as failed. A trial the search (halving
or Optuna: search.json) recorded as FAIL is a failed job whatever its folder holds (e.g. a job refused because
another process held its folder), with the search's error.

"best" is the best dev value of the task's selection metric during a run (the one train.py returns),
"final" its value at the last step. std is the sample standard deviation (n - 1); blank when n = 1. A NaN
value of a completed seed makes its configuration's mean NaN (shown "nan", never the best), not a mean of the rest.
FLOPs and time are relative to the vanilla prompt-tuning row (schedule=none, everything else equal)
when the sweep has one.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from .runs.checkpoint import write_text
from .config import flatten
from .extras import require
from .runs.identity import ADDED_KEYS, RUNTIME_GROUPS, RUNTIME_KEYS

pd = require("pandas", "python -m fpt.collect")

IDENTITY = {"task": "task.name", "model": "model.name", "prompt": "prompt.type", "schedule": "schedule.name"}
# not part of a run's identity (fpt/runs/identity.py: where and how it runs), or the repeat axis (seed)
IGNORED = {"seed", *RUNTIME_KEYS, *RUNTIME_GROUPS}
IGNORED_GROUPS = tuple(f"{group}." for group in RUNTIME_GROUPS)
JOB_MARKERS = ("results.json", "run_state.json", "run_link.json", ".hydra")
SEARCH_FILE = "search.json"  # written by the sweepers (hydra_plugins/fpt_plugins/study.py)
HALVING = "successive_halving"  # its "kind" for hparams_search=*_halving (optuna: "optuna")


# --------------------------------------------------------------------------- reading jobs
@dataclass
class Job:
    folder: Path                    # the job's folder in the sweep
    run_dir: Path                   # where its outputs are (an earlier run's folder if it was skipped/resumed)
    status: str                     # completed | stopped (trainer.stop_at_step: a search's rung) | failed | unfinished
    config: dict                    # flattened "a.b" -> value
    results: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    note: str = ""                  # e.g. "skipped: completed in <dir>"

    @property
    def error(self) -> str:
        return self.results.get("error", "")


def is_job_folder(path: Path) -> bool:
    return any((path / m).exists() for m in JOB_MARKERS)


def find_job_folders(root: Path) -> list[Path]:
    """Root itself if it is a job's folder (a single run), else the folders under it holding a job
    (results, run state, a link to an earlier run, or Hydra's .hydra/)."""
    if is_job_folder(root):
        return [root]
    found = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        if is_job_folder(path):
            found.append(path)
        else:
            found += find_job_folders(path)
    return found


def flatten_config(node) -> dict:
    """Flattened "a.b" keys; list and dict values as JSON text, so they compare and group as values."""
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in flatten(node).items()}


def read_config(*candidates: Path) -> dict:
    """The flattened config; a key added after runs existed, at the value that reproduces them, is left out (as
    in the run identity: fpt/runs/identity.py ADDED_KEYS), so an older run groups with a new one."""
    for path in candidates:
        if path.is_file():
            cfg = OmegaConf.load(path)
            cfg.pop("hydra", None)
            flat = flatten_config(OmegaConf.to_container(cfg, resolve=False))
            return {k: v for k, v in flat.items() if not (k in ADDED_KEYS and v == ADDED_KEYS[k])}
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
        status = results.get("status") if results.get("status") in ("completed", "stopped") else "failed"
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


def mark_search_failures(jobs: list[Job], roots: list[Path]) -> None:
    """A trial a search recorded as FAIL (search.json of either sweeper) is a failed job, whatever its folder
    holds: a job refused because another process held its folder leaves that process's results there."""
    by_folder = {job.folder.resolve(): job for job in jobs}
    for root in roots:
        if not (root / SEARCH_FILE).is_file():
            continue
        for number, trial in json.loads((root / SEARCH_FILE).read_text())["trials"].items():
            job = by_folder.get((root / number).resolve())
            if trial["state"] != "FAIL" or trial.get("interrupted") or job is None:
                continue  # (an interrupted Optuna trial is run again by a later trial, in this folder)
            job.status = "failed"
            job.note = f"the search recorded trial {number} as failed: {trial.get('error') or 'no error recorded'}"


# --------------------------------------------------------------------------- grouping
def _sortable(value):
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def group_keys(jobs: list[Job]) -> tuple[list[str], list[str]]:
    """(keys the jobs are grouped by, the subset shown as columns besides task/model/prompt/schedule)."""
    keys = []
    for job in jobs:
        keys += [k for k in job.config if k not in keys]
    differing = [k for k in keys if k not in IGNORED and not k.startswith(IGNORED_GROUPS)
                 and len({json.dumps(j.config.get(k), default=str) for j in jobs}) > 1]
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


def job_frame(jobs: list[Job], keys: list[str], shown: list[str]) -> pd.DataFrame:
    """One row per job: its group (the values of `keys`), the shown columns, seed, status and its numbers."""
    records = []
    for j in jobs:
        r, done = j.results, j.status == "completed"
        metric = r.get("metric") or j.config.get("task.metric", "")
        rec = {"group": tuple(json.dumps(j.config.get(k), default=str) for k in keys),
               **{name: j.config.get(key, r.get(name)) for name, key in IDENTITY.items()},
               **{k: j.config.get(k) for k in shown},
               "seed": j.config.get("seed", r.get("seed")), "done": done, "metric": metric, "run_dir": j.run_dir,
               "released": {k[len("released."):]: v for k, v in j.config.items() if k.startswith("released.")}}
        if done:
            rec.update({"best": r.get("best", {}).get(metric), "final": r.get("final", {}).get(metric),
                        "train_flops": r.get("train_flops"), "train_seconds": r.get("train_seconds"),
                        "best_epoch": r.get("best_epoch")})
            rec.update({f"best_{m}": v for m, v in r.get("best", {}).items()})
        records.append(rec)
    frame = pd.DataFrame(records, dtype=object)  # config values as they are (None stays None)
    for col in frame.columns:
        if col in ("best", "final", "train_flops", "train_seconds") or col.startswith("best_"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def make_table(jobs: list[Job]) -> tuple[pd.DataFrame, list[str]]:
    """One row per configuration (jobs grouped by every differing config value but the seed), sorted by its
    columns: the shown columns, n (completed seeds), jobs, seeds, metric, <x>_mean and <x>_std over the
    completed seeds (pandas' std: the sample standard deviation, NaN when n = 1), the completed run folders,
    and cost relative to vanilla prompt tuning."""
    keys, shown = group_keys(jobs)
    columns = list(IDENTITY) + shown
    frame = job_frame(jobs, keys, shown)
    numbers = [c for c in frame.columns if c in ("best", "final", "train_flops", "train_seconds")
               or c.startswith("best_")]
    # done first, so a configuration's metric and run folders come from its completed jobs
    grouped = frame.sort_values("done", ascending=False, kind="stable").groupby("group", sort=False)
    table = grouped[columns + ["metric", "released"]].nth(0).set_index(grouped["group"].nth(0))
    table["n"] = grouped["done"].sum().astype(int)
    table["jobs"] = grouped.size()
    done = frame[frame["done"].astype(bool)].groupby("group", sort=False)
    table["seeds"] = done["seed"].agg(lambda s: " ".join(map(str, s)))
    table["run_dirs"] = done["run_dir"].agg(list)
    if numbers:
        # a NaN of a completed seed (or a missing value) makes the mean NaN: never a mean of the other seeds
        stats = done[numbers].agg([_mean, _std])
        stats.columns = [f"{c}{s}" for c, s in stats.columns]
        table = table.join(stats)
    for col in [f"{c}_{s}" for c in ("best", "final", "train_flops", "train_seconds") for s in ("mean", "std")]:
        if col not in table:
            table[col] = math.nan
    table["seeds"] = table["seeds"].fillna("")
    table["run_dirs"] = table["run_dirs"].apply(lambda x: x if isinstance(x, list) else [])
    order = sorted(table.index, key=lambda g: [_sortable(table.at[g, c]) for c in columns])
    table = table.loc[order].reset_index(drop=True)
    ref = [vanilla_of(table.loc[i], table, columns) for i in table.index]
    table["flops_vs_vanilla"] = [table.at[i, "train_flops_mean"] / table.at[k, "train_flops_mean"]
                                 if k is not None else math.nan for i, k in enumerate(ref)]
    table["seconds_vs_vanilla"] = [table.at[i, "train_seconds_mean"] / table.at[k, "train_seconds_mean"]
                                   if k is not None else math.nan for i, k in enumerate(ref)]
    table["has_reference"] = [k is not None and k != i for i, k in enumerate(ref)]
    return table, columns


def _mean(values: pd.Series) -> float:
    return values.mean(skipna=False)


def _std(values: pd.Series) -> float:
    return values.std(skipna=False)


def vanilla_of(row: pd.Series, table: pd.DataFrame, columns: list[str]):
    """The index of the vanilla prompt-tuning row with everything else equal (schedule.* aside), if completed."""
    same = [c for c in columns if c != "schedule" and not c.startswith("schedule.")]
    for k in table.index:
        other = table.loc[k]
        if other["schedule"] == "none" and other["n"] and row["n"] and all(other[c] == row[c] for c in same):
            return k
    return None


def best_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model, prompt, schedule): the configuration with the highest mean best metric (the first on ties)."""
    ranked = table.dropna(subset=["best_mean"]).sort_values("best_mean", ascending=False, kind="stable")
    winners = ranked.drop_duplicates(subset=list(IDENTITY)).index
    return table.loc[table.index.isin(winners)]


# --------------------------------------------------------------------------- tables
def _pm(mean: float, std: float, n: int = 0) -> str:
    """mean ± std; "nan" when completed seeds (n) have no number, blank when there are none."""
    if math.isnan(mean):
        return "nan" if n else ""
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _num(x: float, fmt: str) -> str:
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
            _pm(r["final_mean"], r["final_std"], r["n"]), _num(r["train_flops_mean"], ".3g"),
            _num(r["train_seconds_mean"], ".1f")]
        if with_ref:
            line += [_num(r["flops_vs_vanilla"], ".2f") + "x", _num(r["seconds_vs_vanilla"], ".2f") + "x"] \
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
                         f"{_num(epoch, '.0f') or '?'} / {released.get('best_epoch') or '?'}",
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


# --------------------------------------------------------------------------- a successive-halving search


def search_trials(root: Path) -> tuple[dict, list[dict]]:
    """(search.json, one record per trial: params, state, rung reached, stop step, metric there, best, FLOPs)."""
    search = json.loads((root / SEARCH_FILE).read_text())
    steps = search["rung_steps"]
    rows = []
    for number, trial in sorted(search["trials"].items(), key=lambda kv: int(kv[0])):
        folder = root / number
        results = read_job(folder).results if folder.is_dir() else {}
        metric = results.get("metric", "")
        reached = max((int(s) for s in trial["rung_values"]), default=None)
        rows.append({"trial": int(number), **trial["params"], "state": trial["state"],
                     "rung": f"{steps.index(reached)}/{len(steps) - 1}" if reached in steps else "",
                     "stop step": reached, "steps run": results.get("steps"), "metric": metric,
                     "value at stop step": _nan_if_none(trial["rung_values"].get(str(reached))) if reached else None,
                     "best": results.get("best", {}).get(metric), "train_flops": results.get("train_flops"),
                     "total_steps": results.get("total_steps")})
    return search, rows


def _nan_if_none(value):
    return math.nan if value is None else value  # search.json writes a NaN metric as null


def _value(value) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else _num(value, ".4f")


def search_section(root: Path) -> list[str]:
    search, rows = search_trials(root)
    params = [k for k in rows[0] if k not in ("trial", "state", "rung", "stop step", "steps run", "metric",
                                               "value at stop step", "best", "train_flops", "total_steps")] \
        if rows else []
    header = ["trial", *params, "state", "rung", "stop step", "metric", "at stop step", "best", "train FLOPs"]
    body = [[str(r["trial"]), *(str(r[p]) for p in params), r["state"], r["rung"], _num(r["stop step"], "d"),
             r["metric"], _value(r["value at stop step"]), _num(r["best"], ".4f"), _num(r["train_flops"], ".4g")]
            for r in rows]
    total = sum(r["train_flops"] or 0 for r in rows)
    # what running every configuration to the full length would cost, from each trial's FLOPs per step so far
    full = sum(r["train_flops"] / r["steps run"] * r["total_steps"] for r in rows
               if r["train_flops"] and r["steps run"] and r["total_steps"])
    lines = [f"## Successive halving: {len(rows)} configurations, rungs at steps {search['rung_steps']} with "
             f"{search['rung_sizes']} trials (eta {search['reduction_factor']})",
             markdown(header, body),
             f"total training FLOPs of the search: {total:.4g} (the {len(rows)} trials' cumulative train_flops "
             f"summed)" + (f"; every configuration to the full length: about {full:.4g} (each trial's FLOPs per "
                           f"step so far x its total steps), so the search cost {total / full:.2f} of that"
                           if full else "")]
    return lines


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


def panels(table: pd.DataFrame, columns: list[str]) -> dict[tuple, list[tuple[int, str]]]:
    """The plot's panels: per (task, model, metric) with a completed configuration, its rows and their legend
    labels, which name only the columns whose value varies within that panel (and the seed count)."""
    done = table[table["n"] > 0]
    out = {}
    for key, rows in done.groupby(["task", "model", "metric"], sort=True):
        varying = [c for c in columns if c not in ("task", "model") and rows[c].astype(str).nunique() > 1]
        out[key] = [(i, ", ".join(f"{c}={rows.at[i, c]}" for c in varying) + f" (n={rows.at[i, 'n']})")
                    for i in rows.index]
    return out


def plot(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    """Dev metric against cumulative training FLOPs, one panel per (task, model): per configuration the mean
    over seeds and a band of ± one standard deviation (where two or more seeds reached a step); each panel's
    legend, to the right of it, names only what varies in that panel."""
    matplotlib = require("matplotlib", "python -m fpt.collect --plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = panels(table, columns)
    fig, axes = plt.subplots(max(len(found), 1), 1, figsize=(10, 3.6 * max(len(found), 1)), squeeze=False)
    for ax, ((task, model, metric), rows) in zip(axes[:, 0], found.items()):
        for i, label in rows:
            curve = seed_curve([_eval_curve(run_dir, metric) for run_dir in table.at[i, "run_dirs"]])
            if curve.empty:
                continue
            line, = ax.plot(curve["flops"], curve["mean"], marker="o", markersize=3, label=label)
            band = curve.dropna(subset=["std"])
            ax.fill_between(band["flops"], band["mean"] - band["std"], band["mean"] + band["std"],
                            color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set(title=f"{task} · {model}", xlabel="cumulative training FLOPs", ylabel=f"dev {metric}\n(mean ± std)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def seed_curve(curves: list[pd.DataFrame]) -> pd.DataFrame:
    """Per evaluation step every seed reached: mean FLOPs, mean and sample std of the metric (std NaN for one seed)."""
    if not curves or any(c.empty for c in curves):
        return pd.DataFrame(columns=["step", "flops", "mean", "std"])
    steps = set.intersection(*[set(c["step"]) for c in curves])
    both = pd.concat([c[c["step"].isin(steps)] for c in curves])
    out = both.groupby("step").agg(flops=("flops", "mean"), mean=("value", "mean"), std=("value", "std"))
    return out.reset_index().sort_values("step")


def _eval_curve(run_dir: Path, metric: str) -> pd.DataFrame:
    """step, train FLOPs so far, dev metric: from a run's metrics.jsonl."""
    rows = []
    path = Path(run_dir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if metric in record.get("eval", {}):
                rows.append({"step": record["step"], "flops": record["train_flops"], "value": record["eval"][metric]})
    return pd.DataFrame(rows, columns=["step", "flops", "value"]).drop_duplicates("step", keep="last")


# --------------------------------------------------------------------------- command line
def collect(roots: list[Path], out: Path | None = None, with_plot: bool = False) -> str:
    """Write the tables (and the plot) for these sweeps; returns the Markdown that is printed."""
    roots = [Path(r).resolve() for r in roots]
    out = Path(out) if out else roots[0]
    out.mkdir(parents=True, exist_ok=True)
    jobs = read_sweeps(roots)
    mark_search_failures(jobs, roots)
    table, columns = make_table(jobs)
    done = sum(j.status == "completed" for j in jobs)
    stopped = sum(j.status == "stopped" for j in jobs)
    parts = [f"# {', '.join(map(str, roots))}",
             f"{len(jobs)} jobs: {done} completed, " + (f"{stopped} stopped at a search rung, " if stopped else "")
             + f"{len(jobs) - done - stopped} failed or unfinished; "
             f"{len(table)} configurations (mean ± std over seeds, n = completed seeds, * = best per "
             f"task/model/prompt/schedule)",
             markdown(*summary_table(table, columns)),
             "## Best configuration per (task, model, prompt, schedule)",
             markdown(*best_table(table, columns))]
    released = released_table(table, columns)
    if released[1]:
        parts += ["## Ours vs released (x100)", markdown(*released)]
    for root in roots:
        if (root / SEARCH_FILE).is_file() and json.loads((root / SEARCH_FILE).read_text())["kind"] == HALVING:
            parts += search_section(root)
    problems = problems_table(jobs, roots)
    parts += ["## Failed or unfinished jobs", markdown(*problems) if problems[1] else "none"]
    text = "\n\n".join(parts) + "\n"
    write_text(out / "results.md", text)
    write_csv(out / "results.csv", results_frame(table, columns))
    write_csv(out / "best.csv", best_frame(table, columns))
    write_csv(out / "jobs.csv", jobs_frame(jobs, roots))
    if with_plot:
        plot(table, columns, out / "curves.png")
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
