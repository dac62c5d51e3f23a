"""Tasks: read a task's rows (hub or local official-format files), check them, turn them into features.

Everything about a task (source, columns, template, labels, verbalizers, metrics) lives in its
YAML file in conf/task/; this module only interprets those fields.
"""
from __future__ import annotations

import random
from pathlib import Path

import datasets
import torch

BUNDLED_DATA = Path(__file__).parent / "data"


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
                            f"(task.data_dir={task.data_dir!r}, task.files.{split}={task.files[split]!r})")
    try:
        if task.format in ("tsv", "csv"):
            names = list(task.column_names) if task.column_names else None
            kwargs = dict(delimiter="\t" if task.format == "tsv" else ",", na_filter=False)
            if task.format == "tsv":
                kwargs["quoting"] = 3  # GLUE TSVs contain bare quotes
            if names:
                kwargs.update(column_names=names, skiprows=1 if task.header else 0)
            ds = datasets.load_dataset("csv", data_files=str(path), split="train", **kwargs)
        elif task.format == "jsonl":
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        else:
            raise TaskDataError(f"task {task.name}: task.format={task.format!r}, expected tsv, csv or jsonl")
    except TaskDataError:
        raise
    except Exception as err:  # pandas / arrow parse errors: say which file
        cause = err.__cause__ or err
        raise TaskDataError(f"task {task.name}: cannot parse {path} as {task.format}: {cause}") from err
    rows = ds.to_list()
    for i, row in enumerate(rows):
        row["_source"] = f"{path}:{i + 2 if task.header and task.format != 'jsonl' else i + 1}"
    return rows


def _read_hub(task, split: str) -> list[dict]:
    if not task.hub:
        raise TaskDataError(f"task {task.name}: neither task.data_dir nor task.hub is set")
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


def read_rows(task, split: str) -> list[dict]:
    """Rows of a split, shuffled and capped for train as task.shuffle_seed / task.max_train_samples say."""
    rows = _read_local(task, split) if task.data_dir else _read_hub(task, split)
    cap = task.max_train_samples if split == "train" else task.max_eval_samples
    if split == "train":
        random.Random(task.shuffle_seed).shuffle(rows)
    if cap is not None:
        rows = rows[:cap]
    return rows


# --------------------------------------------------------------------------- checking rows
def render(field: str, row: dict) -> str:
    """A text field is a column name or a template such as "{word}: {sentence1}"."""
    if "{" in field:
        return field.format(**row)
    return row[field]


def _text(task, row: dict, field: str) -> str:
    try:
        value = render(field, row)
    except KeyError as err:
        raise TaskDataError(f"task {task.name}: {row['_source']}: no column {err} (columns: "
                            f"{sorted(k for k in row if k != '_source')}); check task.text_fields/template") from None
    if not isinstance(value, str) or not value.strip():
        raise TaskDataError(f"task {task.name}: {row['_source']}: empty or missing text in {field!r}: {value!r}")
    return value


def label_index(task, row: dict) -> int | float:
    if task.label_field not in row:
        raise TaskDataError(f"task {task.name}: {row['_source']}: missing label column {task.label_field!r} "
                            f"(columns: {sorted(k for k in row if k != '_source')})")
    raw = row[task.label_field]
    if task.type == "regression":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise TaskDataError(f"task {task.name}: {row['_source']}: label {raw!r} is not a number") from None
    key = str(raw).strip().lower()
    names = [str(x).lower() for x in task.labels]
    if key in names:
        return names.index(key)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(names):
        return raw  # hub datasets store the class index
    raise TaskDataError(f"task {task.name}: {row['_source']}: label {raw!r} is not one of {list(task.labels)}")


# --------------------------------------------------------------------------- features
class Features(torch.utils.data.Dataset):
    """Tokenized examples: a list of dicts of lists/ints, padded later by `collate`."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def verbalize(task, label) -> str:
    if task.type == "regression":
        return f"{round(float(label) * 5) / 5:.1f}"  # T5 practice: STS-B scores rounded to 0.2
    return task.verbalizers[label]


def encode(task, rows: list[dict], tokenizer, seq2seq: bool, target_prefix: str = "",
           max_target_length: int = 16) -> Features:
    labels = [label_index(task, r) for r in rows]
    if seq2seq:
        sources = [_text(task, r, task.template) for r in rows]
        enc = tokenizer(sources, truncation=True, max_length=task.max_length)
        targets = [(target_prefix + " " + verbalize(task, y)).strip() for y in labels]
        tgt = tokenizer(text_target=targets, truncation=True, max_length=max_target_length)
        items = [{"input_ids": ids, "attention_mask": m, "labels": t, "label": y}
                 for ids, m, t, y in zip(enc["input_ids"], enc["attention_mask"], tgt["input_ids"], labels)]
    else:
        fields = list(task.text_fields)
        if not 1 <= len(fields) <= 2:
            raise TaskDataError(f"task {task.name}: task.text_fields must name one or two fields, got {fields}")
        columns = [[_text(task, r, f) for r in rows] for f in fields]
        enc = tokenizer(*columns, truncation=True, max_length=task.max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        items = [{**{k: enc[k][i] for k in keys}, "label": labels[i]} for i in range(len(rows))]
    return Features(items)


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest example in the batch; labels of seq2seq targets are padded with -100."""
    out = {}
    for key in batch[0]:
        values = [ex[key] for ex in batch]
        if isinstance(values[0], list):
            width = max(len(v) for v in values)
            fill = -100 if key == "labels" else (pad_id if key == "input_ids" else 0)
            out[key] = torch.tensor([v + [fill] * (width - len(v)) for v in values])
        else:
            out[key] = torch.tensor(values)
    return out
