"""Reading a sweep: its job folders (following run_link.json to the run a job skipped or resumed), each job's
config, results and status, and the trials a search (search.json) recorded as failed."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ..config import flatten
from ..runs.identity import ADDED_KEYS

JOB_MARKERS = ("results.json", "run_state.json", "run_link.json", ".hydra")
SEARCH_FILE = "search.json"  # written by the sweepers (hydra_plugins/fpt_plugins/study.py)


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

