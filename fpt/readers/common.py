"""What every reader shares: the error a bad file raises, and JSON / UTF-8 helpers that name the line."""
from __future__ import annotations

import json
from pathlib import Path


class FormatError(ValueError):
    """A file is not in the format its task says; the message names the file and line."""


def not_utf8(path: Path) -> str:
    """Where a file stops being UTF-8: "<path>:<line>: byte 0x.. is not UTF-8 text"."""
    for n, line in enumerate(Path(path).read_bytes().splitlines(), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            return (f"{path}:{n}: byte 0x{line[err.start]:02x} at column {err.start + 1} is not UTF-8 text; "
                    f"expected a UTF-8 file (convert it, e.g. iconv -f latin1 -t utf-8)")
    return f"{path}: not UTF-8 text; expected a UTF-8 file"


def json_lines(path: Path):
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as err:
                raise FormatError(f"{path}:{n}: not a JSON object ({err.msg})") from None


def json_file(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not a JSON file ({err.msg} at line {err.lineno})") from None


def get(obj, key, where):
    if not isinstance(obj, dict) or key not in obj:
        raise FormatError(f"{where}: missing key {key!r}")
    return obj[key]
