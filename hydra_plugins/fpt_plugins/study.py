"""What fpt's two sweepers share, on Optuna's public API: the search space from Hydra's sweep syntax, the study's
storage, the lock on the study's folder, and how a job's return value becomes an Optuna value.

- `search_space(params, arguments)`: `choice(...)` / `a,b,c` are categorical, `range(...)` is categorical over the
  values Hydra's range gives, `interval(a, b)` is uniform (integers: `int(interval(a, b))`), `tag(log, interval(...))`
  log-uniform; any other value is a fixed override passed to every job.
- `lock_study(sweep_dir, storage)`: the sweep folder (and a sqlite storage's folder) is locked with the run folders'
  lock (fpt/runs/folder.py), so a second sweep on the same study is refused at once, naming the process holding it.
- `objective(value, maximize)`: NaN is a finished job's worst value (-inf when maximizing, +inf when minimizing,
  user attribute `fpt_value_nan`), never the best and never a failure.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, Transformer
from omegaconf import DictConfig

# optuna and fpt.runs.folder (torch) are imported inside the functions: Hydra imports every module under
# hydra_plugins/ when any command starts, and the sweeps extra (optuna) may not be installed

NAN_ATTR = "fpt_value_nan"     # user attr: the job returned NaN, recorded as the worst value
ERROR_ATTR = "fpt_error"       # user attr: why a trial FAILed (the job's exception, first line)
SEARCH_FILE = "search.json"    # a sweep's summary for `python -m fpt.collect` (read in fpt/collect/read.py)


class StudyLockError(RuntimeError):
    """Another sweep drives this study (its folder is locked)."""


# --------------------------------------------------------------------------- the search space
def distribution(override: Override):
    """The Optuna distribution of a sweep override, or None for a plain value."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    if not override.is_sweep_override():
        return None
    key = override.get_key_element()
    if override.is_choice_sweep() or override.is_range_sweep():
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for value in choices:
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise ValueError(f"{override.input_line}: {value!r} is a {type(value).__name__}; a searched value "
                                 f"must be a string, number, bool or null")
        return CategoricalDistribution(choices)
    if override.is_interval_sweep():
        value = override.value()
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{override.input_line}: {key} has a sweep Optuna cannot search; expected choice(...), a,b,c, "
                     f"range(...), interval(a, b) or tag(log, interval(a, b))")


def search_space(params: dict | None, arguments: list[str]) -> tuple[dict, list[str]]:
    """({name: Optuna distribution}, [fixed overrides]) from the sweeper's params and the command line (which
    replaces a params entry of the same key)."""
    given = {line.split("=", 1)[0].lstrip("+~") for line in arguments}
    lines = [f"{k}={v}" for k, v in (params or {}).items() if k not in given] + list(arguments)
    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(lines):
        dist = distribution(override)
        if dist is None:
            fixed.append(override.input_line)
        else:
            space[override.get_key_element()] = dist
    return space, fixed


def grid_points(space: dict) -> list[dict]:
    """Every combination of the categorical space, in the grid's order: the keys as written (params, then the
    command line), the last key varying fastest."""
    from optuna.distributions import CategoricalDistribution
    for name, dist in space.items():
        if not isinstance(dist, CategoricalDistribution):
            raise ValueError(f"hydra.sweeper.sampler=grid: {name} is {dist}; a grid needs choice(...) values")
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n].choices for n in names))]


def check_same_space(study, space: dict, where: str) -> None:
    """Refuse a study whose trials searched other parameters (another search in the same study)."""
    for t in study.get_trials(deepcopy=False):
        if t.distributions and set(t.distributions) != set(space):
            raise ValueError(f"{where}: trial {t.number} of study {study.study_name} searched "
                             f"{sorted(t.distributions)}, this command searches {sorted(space)}; use another "
                             f"hydra.sweep.dir (or hydra.sweeper.study_name) for another search")


def make_sampler(conf, expected: str):
    """An Optuna sampler from hydra.sweeper.sampler: already instantiated by Hydra, or a {_target_: ...} config."""
    import optuna
    from hydra.utils import instantiate

    if isinstance(conf, optuna.samplers.BaseSampler):
        return conf
    if isinstance(conf, (dict, DictConfig)):
        return instantiate(conf)
    raise ValueError(f"hydra.sweeper.sampler={conf!r}: expected {expected} "
                     f"({{_target_: optuna.samplers.TPESampler, seed: 1}})")


# --------------------------------------------------------------------------- storage and lock
def sqlite_folder(storage) -> Path | None:
    """The folder of a `sqlite:///path` storage (SQLite does not create it)."""
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        return Path(storage[len("sqlite:///"):]).parent
    return None


def open_storage(url: str | None):
    """Optuna storage for hydra.sweeper.storage: an RDB URL (sqlite:///<file>: its folder is created) or, for
    null, an in-memory study (nothing to resume)."""
    import optuna
    if url is None:
        return optuna.storages.InMemoryStorage()
    folder = sqlite_folder(url)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def lock_study(sweep_dir: Path, storage: str | None) -> list:
    """Lock the sweep folder and a sqlite storage's folder (FolderLocks); raises StudyLockError naming the holder."""
    from fpt.runs.folder import FolderLock, RunFolderError
    folders = [Path(sweep_dir)]
    db = sqlite_folder(storage)
    if db is not None and db.resolve() != Path(sweep_dir).resolve():
        folders.append(db)
    locks = []
    try:
        for folder in folders:
            lock = FolderLock(folder)
            try:
                locks.append(lock.acquire())
            except RunFolderError:
                raise StudyLockError(
                    f"{folder} is in use by another sweep: {lock.holder()}. Two sweeps driving one study would "
                    f"run the same trials twice and overwrite each other's job folders; wait for it to finish or "
                    f"stop it, or give this search its own hydra.sweep.dir") from None
    except BaseException:
        for lock in reversed(locks):
            lock.release()
        raise
    return locks


def trial_id(storage, study, number: int) -> int:
    """The storage's id of trial `number` (for the storage's public setters)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


# --------------------------------------------------------------------------- values
def objective(value, maximize: bool) -> tuple[float, bool]:
    """(the value to tell Optuna, whether the job returned NaN): NaN becomes the worst value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the job returned {value!r}; expected a number (train.py returns the run's best dev "
                         f"value of the task's selection metric)") from None
    if math.isnan(number):
        return (-math.inf if maximize else math.inf), True
    return number, False


def reported_value(trial) -> float | None:
    """A finished trial's value as the job returned it (None for NaN or no value): for summaries."""
    if trial.user_attrs.get(NAN_ATTR) or trial.value is None:
        return None
    return trial.value


def first_line(error) -> str:
    return (str(error).splitlines() or [""])[0][:500] or type(error).__name__
