"""The results table: jobs grouped into configurations (every differing config value but the seed), mean and
std over seeds, the best configuration per (task, model, prompt, schedule), cost relative to vanilla prompt tuning."""
from __future__ import annotations

import json
import math

from ..extras import require
from ..runs.identity import RUNTIME_GROUPS, RUNTIME_KEYS
from .read import Job

pd = require("pandas", "python -m fpt.collect")

IDENTITY = {"task": "task.name", "model": "model.name", "prompt": "prompt.type", "schedule": "schedule.name"}
# not part of a run's identity (fpt/runs/identity.py: where and how it runs), or the repeat axis (seed)
IGNORED = {"seed", *RUNTIME_KEYS, *RUNTIME_GROUPS}
IGNORED_GROUPS = tuple(f"{group}." for group in RUNTIME_GROUPS)


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

