"""Retrieval data: the BEIR folder format (task.format=beir) and DPR's JSON (task.format=dpr_json).

A BEIR folder holds `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}) and
`qrels/<split>.tsv` (header `query-id corpus-id score`). A split's rows are its judged queries, one row each:
{"id", "query", "qrels": {corpus id: score}, "negatives": [], "_source": "<qrels file>:<line>"}. The corpus
is read by `read_corpus(folder)`. A qrels line naming a query or passage the folder does not have is an error.

DPR's JSON (a list of {"question", "positive_ctxs", "hard_negative_ctxs", ...}; each ctx {"title", "text",
"passage_id" or "psg_id"}) gives rows in the same form, with "negatives" = the hard negatives' ids and the
passages of the file in "passages" ({id: {"title", "text"}}): its corpus is the union of the file's passages.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .common import FormatError, get, json_file, json_lines

QRELS_HEADER = ("query-id", "corpus-id", "score")


def _text_field(obj, key: str, where: str) -> str:
    value = get(obj, key, where)
    if not isinstance(value, str):
        raise FormatError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def _id(obj, key: str, where: str) -> str:
    value = get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise FormatError(f"{where}: {key!r} must be a non-empty string or integer id, got {value!r}")
    return str(value)


def _objects(folder: Path, name: str):
    """(file:line, object) of a BEIR JSONL file (corpus.jsonl, queries.jsonl); a missing file names the layout."""
    path = Path(folder) / name
    if not path.is_file():
        raise FormatError(f"{path}: no such file; a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/")
    for n, obj in json_lines(path):
        yield f"{path}:{n}", obj


def read_corpus(folder: Path) -> dict[str, dict]:
    """corpus.jsonl -> {id: {"title", "text"}} in file order; duplicate ids and empty passages are errors."""
    corpus: dict[str, dict] = {}
    for where, obj in _objects(folder, "corpus.jsonl"):
        pid = _id(obj, "_id", where)
        title = obj.get("title") or ""
        text = _text_field(obj, "text", where)
        if not isinstance(title, str):
            raise FormatError(f"{where}: 'title' must be a string, got {type(title).__name__}")
        if not (title + text).strip():
            raise FormatError(f"{where}: passage {pid!r} has neither title nor text")
        if pid in corpus:
            raise FormatError(f"{where}: duplicate passage id {pid!r}")
        corpus[pid] = {"title": title, "text": text}
    if not corpus:
        raise FormatError(f"{Path(folder) / 'corpus.jsonl'}: no passages")
    return corpus


_CORPORA: dict = {}  # (corpus.jsonl path, mtime, size) -> corpus: the last folder's, read once per process


def load_corpus(folder: Path) -> dict[str, dict]:
    """read_corpus, read again only when corpus.jsonl changed (every split and the task kind share one read)."""
    path = Path(folder) / "corpus.jsonl"
    try:
        stat = path.stat()
    except OSError:
        return read_corpus(folder)  # its error names the file
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _CORPORA:
        _CORPORA.clear()
        _CORPORA[key] = read_corpus(folder)
    return _CORPORA[key]


def read_queries(folder: Path) -> dict[str, str]:
    """queries.jsonl -> {id: text}."""
    queries: dict[str, str] = {}
    for where, obj in _objects(folder, "queries.jsonl"):
        qid, text = _id(obj, "_id", where), _text_field(obj, "text", where)
        if not text.strip():
            raise FormatError(f"{where}: query {qid!r} has no text")
        if qid in queries:
            raise FormatError(f"{where}: duplicate query id {qid!r}")
        queries[qid] = text
    return queries


def read_qrels(path: Path, queries: dict, corpus: dict) -> dict[str, tuple[dict[str, int], int]]:
    """qrels/<split>.tsv -> {query id: ({corpus id: score}, first line)}; unknown ids are errors, naming the line."""
    judged: dict[str, tuple[dict[str, int], int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:3]) != QRELS_HEADER:
            raise FormatError(f"{path}:1: expected the header {' '.join(QRELS_HEADER)!r} (tab-separated), "
                              f"got {header!r}")
        for n, cols in enumerate(reader, 2):
            if not cols or not "".join(cols).strip():
                continue
            if len(cols) != 3:
                raise FormatError(f"{path}:{n}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                                  f"got {len(cols)}")
            qid, pid, score = (c.strip() for c in cols)
            try:
                value = int(score)
            except ValueError:
                raise FormatError(f"{path}:{n}: score {score!r} is not an integer") from None
            if qid not in queries:
                raise FormatError(f"{path}:{n}: query id {qid!r} is not in queries.jsonl")
            if pid not in corpus:
                raise FormatError(f"{path}:{n}: corpus id {pid!r} is not in corpus.jsonl")
            rels, first = judged.get(qid, ({}, n))
            if pid in rels:
                raise FormatError(f"{path}:{n}: query {qid!r} judges passage {pid!r} twice")
            rels[pid] = value
            judged[qid] = (rels, first)
    return judged


def read_beir(path: Path, task) -> list[dict]:
    """A BEIR split (its qrels file, `path`, in <folder>/qrels/) -> one row per query with a positive judgement."""
    folder = Path(path).parent.parent
    corpus, queries = load_corpus(folder), read_queries(folder)
    rows = []
    for qid, (rels, line) in read_qrels(path, queries, corpus).items():
        if not any(score > 0 for score in rels.values()):
            continue  # a query judged only non-relevant: no positive to train on or to find (as BEIR's evaluation)
        rows.append({"id": qid, "query": queries[qid], "qrels": rels, "negatives": [],
                     "_source": f"{path}:{line}"})
    return rows


def _ctx_id(ctx: dict, where: str) -> str:
    for key in ("passage_id", "psg_id", "id"):
        if key in ctx:
            return _id(ctx, key, where)
    raise FormatError(f"{where}: a context needs an id ('passage_id' or 'psg_id')")


def read_dpr_json(path: Path, task) -> list[dict]:
    """DPR's training/dev JSON -> rows with inline passages; a passage id with two different texts is an error."""
    data = json_file(Path(path))
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of questions, got {type(data).__name__}")
    passages: dict[str, dict] = {}
    rows = []
    for i, item in enumerate(data):
        where = f"{path}: [{i}]"
        question = _text_field(item, "question", where)
        ids = {}
        for key in ("positive_ctxs", "hard_negative_ctxs"):
            ctxs = item.get(key, [])
            if not isinstance(ctxs, list):
                raise FormatError(f"{where}.{key}: expected a list of contexts")
            ids[key] = []
            for j, ctx in enumerate(ctxs):
                at = f"{where}.{key}[{j}]"
                pid = _ctx_id(ctx, at)
                passage = {"title": ctx.get("title") or "", "text": _text_field(ctx, "text", at)}
                if passages.setdefault(pid, passage) != passage:
                    raise FormatError(f"{at}: passage id {pid!r} has another title/text than where it first appears")
                ids[key].append(pid)
        if not ids["positive_ctxs"]:
            raise FormatError(f"{where}: no positive_ctxs")
        rows.append({"id": str(item.get("id", i)), "query": question,
                     "qrels": {pid: 1 for pid in ids["positive_ctxs"]},
                     "negatives": [p for p in ids["hard_negative_ctxs"] if p not in ids["positive_ctxs"]],
                     "passages": passages, "_source": where})
    return rows


RETRIEVAL = {"beir": read_beir, "dpr_json": read_dpr_json}
