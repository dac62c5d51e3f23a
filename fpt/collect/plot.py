"""curves.png (--plot): dev metric against cumulative training FLOPs, one panel per (task, model)."""
from __future__ import annotations

import json
from pathlib import Path

from ..extras import require

pd = require("pandas", "python -m fpt.collect")


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
    import matplotlib.pyplot as plt  # here: an optional extra, and pyplot only after its backend is chosen

    found = panels(table, columns)
    fig, axes = plt.subplots(max(len(found), 1), 1, figsize=(10, 3.6 * max(len(found), 1)), squeeze=False)
    for ax, ((task, model, metric), rows) in zip(axes[:, 0], found.items()):
        for i, label in rows:
            curve = seed_curve([eval_curve(run_dir, metric) for run_dir in table.at[i, "run_dirs"]])
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


def eval_curve(run_dir: Path, metric: str) -> pd.DataFrame:
    """step, train FLOPs so far, dev metric: from a run's metrics.jsonl."""
    rows = []
    path = Path(run_dir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if metric in record.get("eval", {}):
                rows.append({"step": record["step"], "flops": record["train_flops"], "value": record["eval"][metric]})
    return pd.DataFrame(rows, columns=["step", "flops", "value"]).drop_duplicates("step", keep="last")

