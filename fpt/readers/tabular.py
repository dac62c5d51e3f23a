"""Tabular files: TSV (no quoting, as GLUE's files) and CSV with a header or task.column_names, and JSONL.

Read with the standard library (every value a string, or JSON's own types), so that a bad file is named
with its line.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .common import FormatError, json_lines


def read_table(path: Path, task) -> list[dict]:
    """A TSV (no quoting, as GLUE's files) or CSV file -> rows of strings keyed by the header or task.column_names.

    Blank lines are skipped; a line with more or fewer fields than there are columns is an error."""
    if not task.header and not task.column_names:
        raise FormatError(f"{path}: task.header=false needs task.column_names (the names of the columns)")
    tsv = task.format == "tsv"
    names = list(task.column_names) if task.column_names else None
    skip_header = bool(task.header)
    rows, end = [], 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        for fields in reader:
            line, end = end + 1, reader.line_num
            if not fields or fields == [""]:
                continue
            if skip_header:
                skip_header = False
                names = names or fields
                continue
            if len(fields) != len(names):
                raise FormatError(f"{path}:{line}: {len(fields)} {'tab' if tsv else 'comma'}-separated field(s), "
                                  f"expected {len(names)}: {names}")
            rows.append({**dict(zip(names, fields)), "_source": f"{path}:{line}"})
    return rows


def read_jsonl(path: Path, task) -> list[dict]:
    """One JSON object a line (blank lines skipped)."""
    rows = []
    for n, obj in json_lines(path):
        if not isinstance(obj, dict):
            raise FormatError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        rows.append({**obj, "_source": f"{path}:{n}"})
    return rows
