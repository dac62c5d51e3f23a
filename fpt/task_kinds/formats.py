"""Official file formats -> flat rows (the Hugging Face hub's column names), and derived columns.

Each reader takes (path, task) and returns a list of dicts, each with "_source" = "file:line" (or a JSON
path) so that a bad row can be named. Tabular TSV/CSV/JSONL files are read in fpt/tasks.py.
"""
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


def _json_file(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not a JSON file ({err.msg} at line {err.lineno})") from None


def _get(obj, key, where):
    if not isinstance(obj, dict) or key not in obj:
        raise FormatError(f"{where}: missing key {key!r}")
    return obj[key]


# --------------------------------------------------------------------------- SQuAD (1.1 and 2.0)
def read_squad_json(path: Path, task) -> list[dict]:
    """SQuAD JSON {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]} -> one row per question."""
    rows = []
    for a, article in enumerate(_get(_json_file(path), "data", str(path))):
        for p, para in enumerate(_get(article, "paragraphs", f"{path}: data[{a}]")):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = _get(para, "context", where)
            for q, qa in enumerate(_get(para, "qas", where)):
                src = f"{where}.qas[{q}]"
                answers = [] if qa.get("is_impossible") else _get(qa, "answers", src)
                rows.append({"id": _get(qa, "id", src), "title": article.get("title", ""), "context": context,
                             "question": _get(qa, "question", src),
                             "answers": {"text": [x["text"] for x in answers],
                                         "answer_start": [x["answer_start"] for x in answers]},
                             "_source": f"{src} (id {qa['id']})"})
    return rows


# --------------------------------------------------------------------------- CoNLL column files (NER)
def read_conll(path: Path, task) -> list[dict]:
    """Whitespace-separated columns, one token a line, blank line between sentences, -DOCSTART- skipped."""
    tok_col, tag_col = task.conll_columns
    rows, tokens, tags, first = [], [], [], None

    def flush():
        if tokens:
            rows.append({task.tokens_field: list(tokens), task.tags_field: list(tags), "_source": f"{path}:{first}"})
        tokens.clear(), tags.clear()

    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                flush()
                continue
            try:
                token, tag = cols[tok_col], cols[tag_col]
            except IndexError:
                raise FormatError(f"{path}:{n}: expected columns {task.conll_columns} (token, tag), "
                                  f"got {len(cols)} column(s): {line.strip()!r}") from None
            first = n if not tokens else first
            tokens.append(token), tags.append(tag)
    flush()
    return rows


def read_spert_json(path: Path, task) -> list[dict]:
    """CoNLL04 as distributed with SpERT: [{"tokens", "entities": [{"type", "start", "end"}]}] -> BIO tags."""
    data = _json_file(path)
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of sentences")
    rows = []
    for i, doc in enumerate(data):
        where = f"{path}: [{i}]"
        tokens = _get(doc, "tokens", where)
        tags = ["O"] * len(tokens)
        for e in _get(doc, "entities", where):
            start, end, kind = _get(e, "start", where), _get(e, "end", where), _get(e, "type", where)
            if not 0 <= start < end <= len(tokens):
                raise FormatError(f"{where}: entity span [{start}, {end}) outside the {len(tokens)} tokens")
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        rows.append({task.tokens_field: tokens, task.tags_field: tags, "_source": where})
    return rows


def read_srl(path: Path, task) -> list[dict]:
    """One predicate a line, as the CoNLL-2005/2012 SRL releases prepared by He et al. (2017):
    "<predicate index> <word> <word> ... ||| <tag> <tag> ..." (BIO tags, B-V on the predicate)."""
    rows, field = [], task.predicate_field or "index"
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            left, sep, right = line.partition("|||")
            words, tags = left.split(), right.split()
            if not sep or len(words) < 2 or len(words) - 1 != len(tags) or not words[0].isdigit():
                raise FormatError(f"{path}:{n}: expected '<predicate index> <words> ||| <one tag per word>'")
            index = int(words[0])
            if index >= len(tags):
                raise FormatError(f"{path}:{n}: predicate index {index} is past the {len(tags)} words")
            rows.append({task.tokens_field: words[1:], task.tags_field: tags, field: index, "_source": f"{path}:{n}"})
    return rows


# --------------------------------------------------------------------------- SuperGLUE nested JSONL
def read_multirc_jsonl(path: Path, task) -> list[dict]:
    """SuperGLUE MultiRC (one passage a line, nested questions/answers) -> one row per answer option."""
    rows = []
    for n, obj in json_lines(path):
        where = f"{path}:{n}"
        passage = _get(obj, "passage", where)
        text = _get(passage, "text", where)
        for q in _get(passage, "questions", where):
            for a in _get(q, "answers", where):
                rows.append({"paragraph": text, "question": _get(q, "question", where), "answer": _get(a, "text", where),
                             "idx": {"paragraph": obj.get("idx", n), "question": q.get("idx"), "answer": a.get("idx")},
                             "label": a.get("label"), "_source": f"{where} (question {q.get('idx')})"})
    return rows


def read_record_jsonl(path: Path, task) -> list[dict]:
    """SuperGLUE ReCoRD (one passage a line; entities as inclusive character spans) -> one row per query."""
    rows = []
    for n, obj in json_lines(path):
        where = f"{path}:{n}"
        passage = _get(obj, "passage", where)
        text = _get(passage, "text", where)
        entities = sorted({text[e["start"]:e["end"] + 1] for e in _get(passage, "entities", where)})
        for qa in _get(obj, "qas", where):
            answers = sorted({a["text"] for a in qa.get("answers", [])})
            rows.append({"passage": text, "query": _get(qa, "query", where), "entities": entities, "answers": answers,
                         "idx": {"passage": obj.get("idx", n), "query": qa.get("idx")},
                         "_source": f"{where} (query {qa.get('idx')})"})
    return rows


READERS = {"squad_json": read_squad_json, "conll": read_conll, "spert_json": read_spert_json, "srl": read_srl,
           "multirc_jsonl": read_multirc_jsonl, "record_jsonl": read_record_jsonl}


# --------------------------------------------------------------------------- derived columns (task.derive)
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
