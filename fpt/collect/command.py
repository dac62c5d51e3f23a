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
from pathlib import Path

from ..runs.checkpoint import write_text
from .plot import plot
from .read import SEARCH_FILE, mark_search_failures, read_sweeps
from .report import (best_frame, best_table, jobs_frame, markdown, problems_table, released_table, results_frame,
                     summary_table, write_csv)
from .search import HALVING, search_section
from .table import make_table


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

