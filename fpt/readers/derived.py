"""Derived columns (task.derive): computed from a row's own columns after reading, in the order listed."""
from __future__ import annotations

from .common import FormatError


def _wsc_spans(row):
    """WSC: the jiant/SuperGLUE files nest span fields under "target"; the hub has them at the top."""
    return dict(row.get("target") or {})


def _span2_marked(row):
    """WSC template 1 (P-tuning v2): the pronoun marked with asterisks in the text."""
    words = row["text"].split()
    i = int(row["span2_index"])
    words[i] = f"*{words[i]}*"
    return {"span2_marked": " ".join(words)}


def _copa_connective(row):
    """COPA (P-tuning v2): premise + "because" (cause) or "so" (effect)."""
    return {"connective": "because" if row["question"] == "cause" else "so"}


DERIVED = {"wsc_spans": _wsc_spans, "span2_marked": _span2_marked, "copa_connective": _copa_connective}


def derive(task, rows: list[dict]) -> None:
    """Add the columns named in task.derive to every row, in order."""
    for name in task.derive:
        if name not in DERIVED:
            raise ValueError(f"task {task.name}: task.derive has {name!r}; known: {sorted(DERIVED)}")
        for row in rows:
            try:
                row.update(DERIVED[name](row))
            except (KeyError, IndexError, ValueError, TypeError) as err:
                raise FormatError(f"task {task.name}: {row['_source']}: cannot derive {name!r} "
                                  f"({type(err).__name__}: {err})") from None
