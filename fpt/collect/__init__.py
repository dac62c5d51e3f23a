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

The package: read.py (job folders), table.py (configurations, mean ± std), report.py (Markdown and CSV),
search.py (a search's trials; `search_summary`), plot.py (curves.png), command.py (`collect`, the command line).
"""
from __future__ import annotations

from ..extras import require

require("pandas", "python -m fpt.collect")  # every table is a pandas frame: name the extra before anything else

from .command import collect, main  # noqa: E402
from .read import Job, read_sweeps  # noqa: E402
from .search import search_summary  # noqa: E402
from .table import make_table  # noqa: E402

__all__ = ["Job", "collect", "main", "make_table", "read_sweeps", "search_summary"]
