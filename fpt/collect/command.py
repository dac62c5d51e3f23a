"""`python -m fpt.collect <sweep> [more sweeps] [--plot] [--out DIR]` (fpt/collect/__init__.py says what it writes)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runs.checkpoint import write_text
from . import __doc__ as DOC
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
    parser = argparse.ArgumentParser(prog="python -m fpt.collect", description=DOC.split("\n")[0])
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

