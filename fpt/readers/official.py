"""Official file formats -> flat rows (the Hugging Face hub's column names).

Each reader takes (path, task) and returns a list of dicts, each with "_source" = "file:line" (or a JSON
path) so that a bad row can be named.
"""
from __future__ import annotations

from pathlib import Path

from .common import FormatError, get, json_file, json_lines


# --------------------------------------------------------------------------- SQuAD (1.1 and 2.0)
def read_squad_json(path: Path, task) -> list[dict]:
    """SQuAD JSON {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]} -> one row per question."""
    rows = []
    for a, article in enumerate(get(json_file(path), "data", str(path))):
        for p, para in enumerate(get(article, "paragraphs", f"{path}: data[{a}]")):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = get(para, "context", where)
            for q, qa in enumerate(get(para, "qas", where)):
                src = f"{where}.qas[{q}]"
                answers = [] if qa.get("is_impossible") else get(qa, "answers", src)
                rows.append({"id": get(qa, "id", src), "title": article.get("title", ""), "context": context,
                             "question": get(qa, "question", src),
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
    data = json_file(path)
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of sentences")
    rows = []
    for i, doc in enumerate(data):
        where = f"{path}: [{i}]"
        tokens = get(doc, "tokens", where)
        tags = ["O"] * len(tokens)
        for e in get(doc, "entities", where):
            start, end, kind = get(e, "start", where), get(e, "end", where), get(e, "type", where)
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
        passage = get(obj, "passage", where)
        text = get(passage, "text", where)
        for q in get(passage, "questions", where):
            for a in get(q, "answers", where):
                rows.append({"paragraph": text, "question": get(q, "question", where), "answer": get(a, "text", where),
                             "idx": {"paragraph": obj.get("idx", n), "question": q.get("idx"), "answer": a.get("idx")},
                             "label": a.get("label"), "_source": f"{where} (question {q.get('idx')})"})
    return rows


def read_record_jsonl(path: Path, task) -> list[dict]:
    """SuperGLUE ReCoRD (one passage a line; entities as inclusive character spans) -> one row per query."""
    rows = []
    for n, obj in json_lines(path):
        where = f"{path}:{n}"
        passage = get(obj, "passage", where)
        text = get(passage, "text", where)
        entities = sorted({text[e["start"]:e["end"] + 1] for e in get(passage, "entities", where)})
        for qa in get(obj, "qas", where):
            answers = sorted({a["text"] for a in qa.get("answers", [])})
            rows.append({"passage": text, "query": get(qa, "query", where), "entities": entities, "answers": answers,
                         "idx": {"passage": obj.get("idx", n), "query": qa.get("idx")},
                         "_source": f"{where} (query {qa.get('idx')})"})
    return rows


OFFICIAL = {"squad_json": read_squad_json, "conll": read_conll, "spert_json": read_spert_json, "srl": read_srl,
           "multirc_jsonl": read_multirc_jsonl, "record_jsonl": read_record_jsonl}
