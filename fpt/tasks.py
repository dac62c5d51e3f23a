"""Tasks: a task's rows (local files through fpt/readers/, or the hub), checked; fpt/task_kinds/ turns them into
features (`fpt.task_kinds.encode`).

Local files are read by the reader of task.format (fpt/readers/); `datasets` (hub) is imported where used.
Features and their padding (`Features`, `collate`) live in fpt/batching.py.

Everything about a task (source, columns, template, labels, verbalizers, metrics) lives in its
YAML file in conf/task/; this module only interprets those fields.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

from .readers import OFFICIAL, READERS, FormatError, derive, not_utf8

BUNDLED_DATA = Path(__file__).parent / "data"
log = logging.getLogger("fpt")


class TaskDataError(ValueError):
    """A task's data is missing or malformed; the message names the file, row and field."""


# --------------------------------------------------------------------------- reading rows
def resolve_data_dir(data_dir: str) -> Path:
    if data_dir.startswith("bundled:"):
        return BUNDLED_DATA / data_dir.split(":", 1)[1]
    return Path(data_dir).expanduser()


def _read_local(task, split: str) -> list[dict]:
    if split not in task.files:
        raise TaskDataError(f"task {task.name}: no file for split {split!r} in task.files {dict(task.files)}")
    path = resolve_data_dir(task.data_dir) / task.files[split]
    if not path.is_file():
        raise TaskDataError(f"task {task.name}: data file not found: {path} "
                            f"(task.data_dir={task.data_dir!r}, task.files.{split}={task.files[split]!r}); the "
                            f"benchmark folders are looked up under paths.data_root: set FPT_DATA_ROOT=DIR (now "
                            f"{os.environ.get('FPT_DATA_ROOT', 'unset: ./data')}) or task.data_dir=DIR")
    if path.stat().st_size == 0:
        raise TaskDataError(f"task {task.name}: data file is empty: {path} (task.files.{split}); "
                            f"expected {task.format} rows")
    if task.format not in READERS:
        raise TaskDataError(f"task {task.name}: task.format={task.format!r}, expected tsv, csv, jsonl or one "
                            f"of {sorted(OFFICIAL)}")
    try:
        rows = READERS[task.format](path, task)
    except FormatError as err:
        raise TaskDataError(f"task {task.name}: {err}") from None
    except UnicodeDecodeError:
        raise TaskDataError(f"task {task.name}: {not_utf8(path)}") from None
    if not rows:
        raise TaskDataError(f"task {task.name}: {path} (task.files.{split}) has no data rows"
                            f"{' (a header only)' if task.format in ('tsv', 'csv') and task.header else ''}")
    return _finish_local(task, rows)


def _finish_local(task, rows: list[dict]) -> list[dict]:
    """Apply task.rename (local column name -> the task's name for it)."""
    if task.rename:
        for row in rows:
            for old, new in task.rename.items():
                if old in row:
                    row[new] = row.pop(old)
    return rows


def _read_hub(task, split: str) -> list[dict]:
    if not task.hub:
        raise TaskDataError(f"task {task.name}: no Hugging Face hub copy (task.hub) for this task: give local files "
                            f"with task.data_dir=<folder holding {dict(task.files)}> (format {task.format})")
    import datasets  # lazy: a heavy import, needed only for a task read from the hub (task.hub)
    hub_split = task.hub_splits.get(split, split)
    try:
        ds = datasets.load_dataset(*task.hub, split=hub_split)
    except Exception as err:
        raise TaskDataError(f"task {task.name}: cannot load {'/'.join(task.hub)} split {hub_split!r} from the "
                            f"Hugging Face hub ({type(err).__name__}: {err}). Offline? Give local files with "
                            f"task.data_dir=...") from err
    rows = ds.to_list()
    for i, row in enumerate(rows):
        row["_source"] = f"{'/'.join(task.hub)}[{hub_split}] row {i}"
    return rows


_PRELOADED: dict[tuple, list[dict]] = {}


def _preload_key(task, split: str):
    from omegaconf import OmegaConf
    path = resolve_data_dir(task.data_dir) / task.files.get(split, "")
    stat = path.stat()
    return split, OmegaConf.to_yaml(task, resolve=True), str(path), stat.st_mtime_ns, stat.st_size


def preload_rows(task, split: str) -> list[dict]:
    """read_rows for a start-up check; the next read_rows of the same split and unchanged file takes these rows."""
    rows = read_rows(task, split)
    if task.data_dir:
        key = _preload_key(task, split)
        for other in [k for k in _PRELOADED if k[1] != key[1]]:
            del _PRELOADED[other]  # another task config's rows, never taken (e.g. a sweep job skipped as completed)
        _PRELOADED[key] = rows
    return rows


def read_rows(task, split: str) -> list[dict]:
    """Rows of a split, shuffled and capped for train as task.shuffle_seed / task.max_train_samples say."""
    if task.data_dir and _PRELOADED:
        try:
            rows = _PRELOADED.pop(_preload_key(task, split), None)
        except OSError:
            rows = None
        if rows is not None:
            return rows
    rows = _read_local(task, split) if task.data_dir else _read_hub(task, split)
    try:
        derive(task, rows)
    except FormatError as err:
        raise TaskDataError(str(err)) from None
    cap = task.max_train_samples if split == "train" else task.max_eval_samples
    if split == "train":
        random.Random(task.shuffle_seed).shuffle(rows)
    if cap is not None:
        rows = rows[:cap]
    return rows


# --------------------------------------------------------------------------- checking rows
def training_set_warnings(task, rows: list[dict], batch_size: int) -> list[str]:
    """What a training set that trains, but not as meant, deserves a word about (logged, and returned): a batch
    larger than the set (each batch repeats its rows), and a classification set holding one class only."""
    cap = f", task.max_train_samples={task.max_train_samples}" if task.max_train_samples is not None else ""
    warnings = []
    if batch_size > len(rows):
        warnings.append(f"trainer.batch_size={batch_size} is larger than the training set of task {task.name} "
                        f"({len(rows)} rows{cap}): every batch holds each row about {batch_size / len(rows):.0f} "
                        f"times; expected a batch size of at most {len(rows)}")
    if task.type == "classification" and len(task.labels) > 1:
        seen = {str(row.get(task.label_field)).strip().lower() for row in rows}
        if len(seen) == 1:
            warnings.append(f"the training set of task {task.name} ({len(rows)} rows{cap}) holds one class only: "
                            f"{task.label_field}={rows[0].get(task.label_field)!r} of task.labels "
                            f"{list(task.labels)}; the model can only learn to predict it")
    for warning in warnings:
        log.warning(warning)
    return warnings


def columns(row: dict) -> list[str]:
    return sorted(k for k in row if k != "_source")


def render(field: str, row: dict) -> str:
    """A text field is a column name or a template such as "{word}: {sentence1}"."""
    if "{" in field:
        return field.format(**row)
    return row[field]


def text(task, row: dict, field: str) -> str:
    """A rendered text field, or a TaskDataError naming the row and the missing column."""
    try:
        value = render(field, row)
    except (KeyError, IndexError, AttributeError, TypeError) as err:
        raise TaskDataError(f"task {task.name}: {row['_source']}: cannot fill {field!r}: no column {err} "
                            f"(columns: {columns(row)}); check task.text_fields/template") from None
    if not isinstance(value, str) or not value.strip():
        raise TaskDataError(f"task {task.name}: {row['_source']}: empty or missing text in {field!r}: {value!r}")
    return value



def column(task, row: dict, name: str, what: str):
    """row[name], or a TaskDataError naming the row, the task key (`what`) and the columns there are."""
    if name not in row:
        raise TaskDataError(f"task {task.name}: {row['_source']}: no column {name!r} (task.{what}); "
                            f"columns: {columns(row)}")
    return row[name]


def text_fields(task) -> list[str]:
    """The BERT input fields: task.text_fields, or the variant task.text_variant names."""
    if task.text_variant is None:
        return list(task.text_fields)
    if task.text_variant not in task.text_variants:
        raise TaskDataError(f"task {task.name}: task.text_variant={task.text_variant!r} is not one of "
                            f"{sorted(task.text_variants)}")
    return list(task.text_variants[task.text_variant])


def label_index(task, row: dict) -> int:
    """The class index of the row's label (task.label_field), a raw value in task.labels or the hub's index."""
    raw = column(task, row, task.label_field, "label_field")
    key = str(raw).strip().lower()
    names = [str(x).lower() for x in task.labels]
    if key in names:
        return names.index(key)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(names):
        return raw  # hub datasets store the class index
    raise TaskDataError(f"task {task.name}: {row['_source']}: label {raw!r} (column {task.label_field!r}) is not "
                        f"one of task.labels {list(task.labels)}")
