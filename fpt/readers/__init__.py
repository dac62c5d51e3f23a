"""File readers: a task's data file -> rows (dicts with "_source" naming the file and line), by task.format.

`READERS` maps each task.format to its reader `(path, task) -> rows`: tsv/csv/jsonl (tabular.py) and the
official formats of the benchmarks (official.py), and the retrieval formats (beir.py: BEIR folders, DPR JSON). `derive` adds the derived columns task.derive names
(derived.py). A bad file raises `FormatError` naming the file and line.
"""
from __future__ import annotations

from .beir import RETRIEVAL
from .common import FormatError, not_utf8
from .derived import DERIVED, derive
from .official import OFFICIAL
from .tabular import read_jsonl, read_table

TABULAR = {"tsv": read_table, "csv": read_table, "jsonl": read_jsonl}
READERS = {**TABULAR, **OFFICIAL, **RETRIEVAL}

__all__ = ["DERIVED", "OFFICIAL", "READERS", "RETRIEVAL", "TABULAR", "FormatError", "derive", "not_utf8", "read_jsonl",
           "read_table"]
