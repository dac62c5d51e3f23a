"""Tabular files: TSV (no quoting, as GLUE's files) and CSV with a header or task.column_names, and JSONL.

Read with the standard library (every value a string, or JSON's own types), so that a bad file is named
with its line.
"""
from __future__ import annotations

import csv
from contextlib import contextmanager
from pathlib import Path

from .common import FormatError, json_lines

# a field may be as long as a line of text can be (the csv module stops at 128 KiB; a document or a passage
# of a benchmark file can be longer); 2**31 - 1 fits a C long everywhere
FIELD_LIMIT = 2**31 - 1


@contextmanager
def field_limit(limit: int):
    """The csv module's field size limit (process-wide) set while reading, restored after."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_table(path: Path, task) -> list[dict]:
    """A TSV (no quoting, as GLUE's files) or CSV file -> rows of strings keyed by the header or task.column_names.

    Blank lines are skipped; a line with more or fewer fields than there are columns is an error."""
    if not task.header and not task.column_names:
        raise FormatError(f"{path}: task.header=false needs task.column_names (the names of the columns)")
    tsv = task.format == "tsv"
    names = list(task.column_names) if task.column_names else None
    skip_header = bool(task.header)
    rows, end = [], 0
    with open(path, encoding="utf-8-sig", newline="") as f, field_limit(FIELD_LIMIT):
        reader = csv.reader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:  # a field longer than FIELD_LIMIT
                raise FormatError(f"{path}:{end + 1}: not readable as {task.format.upper()} ({err})") from None
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
