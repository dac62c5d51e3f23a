"""BEIR folders (corpus.jsonl, queries.jsonl, qrels/{train,dev,test}.tsv) built from the shared benchmark files.

    python -m fpt.data.make_beir --source squad --out /tmp/beir-squad        # from SQuAD/dev-v1.1.json
    python -m fpt.data.make_beir --source boolq --out /tmp/beir-boolq --boolq-train test.jsonl

- SQuAD 1.1 dev: question -> its paragraph. The 48 articles are shuffled (`--seed`) and split 60/20/20 into
  train/dev/test, so no paragraph's questions are in two splits; the corpus is every paragraph of the file.
- BoolQ: question -> its passage. Training queries come from `--boolq-train` (train.jsonl, BoolQ's train split; the
  shared data has none, so the unlabeled test.jsonl can stand in: retrieval uses no label), dev and test from
  val.jsonl, split in halves by passage (no passage's questions in both). The corpus is every passage of the files
  read (identical passages are one passage).
- `--max-train N` / `--max-eval N` keep N queries (a seeded sample) of train / of dev and test each; with either,
  the corpus is the passages of the queries kept (a smaller, quicker folder; every split's positives are in it).
Files are written atomically; the folder is generated data (under the output root or /tmp), never committed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

from omegaconf import OmegaConf

from .. import CONF_DIR
from ..runs.checkpoint import write_text
from ..readers.common import get, json_file, json_lines

SPLITS = ("train", "dev", "test")
SQUAD_SHARES = (0.6, 0.2, 0.2)  # of the articles: train, dev, test


def write_folder(out: Path, corpus: dict[str, dict], queries: dict[str, str], qrels: dict[str, list[tuple]]) -> None:
    """Write a BEIR folder: corpus and queries as JSONL, one qrels TSV per split (header query-id corpus-id score)."""
    out = Path(out)
    write_text(out / "corpus.jsonl", "".join(json.dumps({"_id": pid, "title": p["title"], "text": p["text"]},
                                                        ensure_ascii=False) + "\n" for pid, p in corpus.items()))
    write_text(out / "queries.jsonl", "".join(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n"
                                              for qid, text in queries.items()))
    for split, pairs in qrels.items():
        write_text(out / "qrels" / f"{split}.tsv",
                   "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{p}\t1\n" for q, p in pairs))


def _cap(pairs: list[tuple], n: int | None, rng: random.Random) -> list[tuple]:
    if n is None or n >= len(pairs):
        return pairs
    return sorted(rng.sample(pairs, n), key=pairs.index)


def _shrink(corpus: dict, qrels: dict) -> dict:
    """The corpus restricted to the passages the kept queries judge (in corpus order)."""
    used = {p for pairs in qrels.values() for _, p in pairs}
    return {pid: p for pid, p in corpus.items() if pid in used}


def squad_folder(squad_json: Path, out: Path, seed: int = 0, max_train: int | None = None,
                 max_eval: int | None = None) -> dict:
    """SQuAD 1.1 -> BEIR folder split by article; returns {split: queries} counts and the corpus size."""
    articles = get(json_file(Path(squad_json)), "data", str(squad_json))
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    cut1 = round(SQUAD_SHARES[0] * len(order))
    cut2 = cut1 + round(SQUAD_SHARES[1] * len(order))
    split_of = {a: ("train" if k < cut1 else "dev" if k < cut2 else "test") for k, a in enumerate(order)}
    corpus, queries, qrels = {}, {}, {s: [] for s in SPLITS}
    for a, article in enumerate(articles):
        title = article.get("title", "").replace("_", " ")
        for p, para in enumerate(get(article, "paragraphs", f"{squad_json}: data[{a}]")):
            pid = f"squad-{a}-{p}"
            corpus[pid] = {"title": title, "text": get(para, "context", f"{squad_json}: data[{a}].paragraphs[{p}]")}
            for qa in para["qas"]:
                queries[qa["id"]] = qa["question"]
                qrels[split_of[a]].append((qa["id"], pid))
    return _finish(out, corpus, queries, qrels, seed, max_train, max_eval)


def boolq_folder(boolq_dir: Path, out: Path, train_file: str = "train.jsonl", seed: int = 0,
                 max_train: int | None = None, max_eval: int | None = None) -> dict:
    """BoolQ -> BEIR folder: train from `train_file`, dev/test from val.jsonl split by passage."""
    boolq_dir = Path(boolq_dir)
    corpus, by_text, queries = {}, {}, {}

    def read(name: str) -> list[tuple]:
        path = boolq_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (BoolQ's {name}); the shared data has no BoolQ train "
                                    f"split: give --boolq-train test.jsonl to train on the test split's questions")
        pairs = []
        for n, row in json_lines(path):
            where = f"{path}:{n}"
            passage, question = get(row, "passage", where), get(row, "question", where)
            title, _, text = passage.partition(" -- ")  # BoolQ passages start with "<title> -- "
            if not text:
                title, text = "", passage
            pid = by_text.setdefault(passage, f"boolq-{len(by_text)}")
            corpus[pid] = {"title": title, "text": text}
            qid = f"{Path(name).stem}-{row.get('idx', n)}"
            queries[qid] = question
            pairs.append((qid, pid))
        return pairs

    train = read(train_file)
    val = read("val.jsonl")
    passages = sorted({p for _, p in val}, key=lambda p: int(p.split("-")[1]))
    random.Random(seed).shuffle(passages)
    dev_passages = set(passages[:len(passages) // 2])
    qrels = {"train": train, "dev": [x for x in val if x[1] in dev_passages],
             "test": [x for x in val if x[1] not in dev_passages]}
    return _finish(out, corpus, queries, qrels, seed, max_train, max_eval)


def _finish(out, corpus, queries, qrels, seed, max_train, max_eval) -> dict:
    rng = random.Random(seed)
    capped = {s: _cap(pairs, max_train if s == "train" else max_eval, rng) for s, pairs in qrels.items()}
    if max_train is not None or max_eval is not None:
        corpus = _shrink(corpus, capped)
    kept = {q for pairs in capped.values() for q, _ in pairs}
    write_folder(out, corpus, {q: t for q, t in queries.items() if q in kept}, capped)
    return {"corpus": len(corpus), **{s: len({q for q, _ in pairs}) for s, pairs in capped.items()}}


def default_data_root() -> str:
    """paths.data_root as a run resolves it (conf/paths/default.yaml: $FPT_DATA_ROOT, else ./data)."""
    return OmegaConf.load(CONF_DIR / "paths" / "default.yaml").data_root


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m fpt.data.make_beir", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("squad", "boolq"), required=True)
    parser.add_argument("--out", required=True, help="the BEIR folder to write")
    parser.add_argument("--data-root", default=None,
                        help="the benchmark files' root (default: paths.data_root, i.e. $FPT_DATA_ROOT, else ./data)")
    parser.add_argument("--boolq-train", default="train.jsonl", help="BoolQ file of the training queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--max-eval", type=int, default=None)
    args = parser.parse_args(argv)
    root = Path(args.data_root or default_data_root())
    source = root / ("SQuAD" if args.source == "squad" else "SuperGLUE/BoolQ")
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such benchmark folder; the data root {root} comes from --data-root, "
                                f"else FPT_DATA_ROOT (now {os.environ.get('FPT_DATA_ROOT', 'unset: ./data')})")
    if args.source == "squad":
        counts = squad_folder(root / "SQuAD" / "dev-v1.1.json", Path(args.out), args.seed, args.max_train,
                              args.max_eval)
    else:
        counts = boolq_folder(root / "SuperGLUE" / "BoolQ", Path(args.out), args.boolq_train, args.seed,
                              args.max_train, args.max_eval)
    print(f"{args.out}: {counts['corpus']} passages; queries " +
          ", ".join(f"{s} {counts[s]}" for s in SPLITS))
    return counts


if __name__ == "__main__":
    main()
