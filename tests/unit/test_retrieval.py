"""Retrieval (task.type=retrieval, docs/retrieval.md): BEIR/DPR readers, data preparation, exact chunked search,
ranking metrics and ECE, the contrastive loss, BitFit, separate encoders, FLOPs and a tiny run end to end."""
import json
import math

import pytest
import torch
from helpers import compose, jsonl, need, write

from fpt.readers.beir import read_beir, read_dpr_json
from fpt.readers.common import FormatError
from fpt.retrieval.measures import expected_calibration_error, ranking_metrics
from fpt.retrieval.search import dense_topk, late_topk, maxsim
from fpt.tasks import TaskDataError

HEADER = "query-id\tcorpus-id\tscore\n"


def beir_folder(folder, n=24, qrels=None):
    """A BEIR folder whose query i is about passage i (shared words), split train 0..15, dev 16..19, test 20..23."""
    words = ("apple banana cherry dog eagle fish goat house island jungle kite lemon moon nest ocean piano queen "
             "river sun tree umbrella violin wolf yak").split()
    corpus = [{"_id": f"d{i}", "title": words[i], "text": f"{words[i]} {words[(i + 7) % n]} passage {i}"}
              for i in range(n)]
    queries = [{"_id": f"q{i}", "text": f"about {words[i]} and {words[(i + 7) % n]}"} for i in range(n)]
    splits = {"train": range(0, 16), "dev": range(16, 20), "test": range(20, n)}
    files = {"corpus.jsonl": jsonl(corpus), "queries.jsonl": jsonl(queries)}
    for split, ids in splits.items():
        files[f"qrels/{split}.tsv"] = HEADER + "".join(f"q{i}\td{i}\t1\n" for i in ids)
    files.update(qrels or {})
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    write(folder, files)
    return folder


def task_cfg(folder, *more):
    return compose("task=beir", f"task.data_dir={folder}", "model=tiny-bert", *more).task


# --------------------------------------------------------------------------- readers
def test_beir_reader_rows(tmp_path):
    beir_folder(tmp_path)
    rows = read_beir(tmp_path / "qrels" / "dev.tsv", None)
    assert [r["id"] for r in rows] == ["q16", "q17", "q18", "q19"]
    assert rows[0]["qrels"] == {"d16": 1} and rows[0]["query"].startswith("about ")
    assert rows[0]["_source"] == f"{tmp_path / 'qrels' / 'dev.tsv'}:2"


@pytest.mark.parametrize("files, message", [
    ({"qrels/dev.tsv": HEADER + "q16\td16\t1\nq99\td1\t1\n"}, "dev.tsv:3: query id 'q99' is not in queries.jsonl"),
    ({"qrels/dev.tsv": HEADER + "q16\tnope\t1\n"}, "dev.tsv:2: corpus id 'nope' is not in corpus.jsonl"),
    ({"qrels/dev.tsv": "qid\tdid\tscore\nq16\td16\t1\n"}, "dev.tsv:1: expected the header"),
    ({"qrels/dev.tsv": HEADER + "q16\td16\tyes\n"}, "dev.tsv:2: score 'yes' is not an integer"),
    ({"qrels/dev.tsv": HEADER + "q16\td16\n"}, "dev.tsv:2: expected 3 tab-separated columns"),
    ({"queries.jsonl": '{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n'}, "queries.jsonl:2: duplicate query"),
    ({"corpus.jsonl": '{"_id": "d1", "title": "", "text": "x"}\nnot json\n'}, "corpus.jsonl:2: not a JSON object"),
    ({"corpus.jsonl": '{"title": "", "text": "x"}\n'}, "corpus.jsonl:1: missing key '_id'"),
])
def test_beir_reader_refuses_bad_files_naming_the_line(tmp_path, files, message):
    beir_folder(tmp_path, qrels=files)
    with pytest.raises(FormatError, match=message.replace("(", r"\(")):
        read_beir(tmp_path / "qrels" / "dev.tsv", None)


def test_bad_qrels_fail_at_start_up_as_task_data_errors(tmp_path):
    from fpt.validate import check_config
    beir_folder(tmp_path, qrels={"qrels/train.tsv": HEADER + "q1\td404\t1\n"})
    with pytest.raises(TaskDataError, match=r"train.tsv:2: corpus id 'd404' is not in corpus.jsonl"):
        check_config(compose("task=beir", f"task.data_dir={tmp_path}", "model=tiny-bert"))


def test_dpr_json_reader(tmp_path):
    data = [{"question": "who?", "positive_ctxs": [{"title": "A", "text": "a text", "passage_id": "1"}],
             "hard_negative_ctxs": [{"title": "B", "text": "b text", "passage_id": "2"},
                                    {"title": "A", "text": "a text", "passage_id": "1"}]},
            {"question": "what?", "positive_ctxs": [{"title": "B", "text": "b text", "psg_id": 2}]}]
    (tmp_path / "train.json").write_text(json.dumps(data))
    rows = read_dpr_json(tmp_path / "train.json", None)
    assert [r["qrels"] for r in rows] == [{"1": 1}, {"2": 1}]
    assert rows[0]["negatives"] == ["2"]  # a hard negative that is a positive is no negative
    assert rows[1]["passages"] == {"1": {"title": "A", "text": "a text"}, "2": {"title": "B", "text": "b text"}}
    data[1]["positive_ctxs"][0]["text"] = "other"
    (tmp_path / "train.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match=r"\[1\].positive_ctxs\[0\]: passage id '2' has another title/text"):
        read_dpr_json(tmp_path / "train.json", None)


# --------------------------------------------------------------------------- data preparation
def test_make_beir_reads_the_data_root_of_a_run(shared_data, tmp_path, monkeypatch):
    """No path to the benchmark files is written in: $FPT_DATA_ROOT (paths.data_root), else ./data, else an error
    naming both."""
    from fpt.data.make_beir import main
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FPT_DATA_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match=r"data/SQuAD: no such benchmark folder.*FPT_DATA_ROOT \(now unset"):
        main(["--source", "squad", "--out", "beir"])
    assert not (tmp_path / "beir").exists()
    monkeypatch.setenv("FPT_DATA_ROOT", str(shared_data))
    counts = main(["--source", "squad", "--max-eval", "5", "--out", "beir"])
    assert counts["test"] == 5 and (tmp_path / "beir" / "corpus.jsonl").is_file()


def test_make_beir_squad_splits_by_article(shared_data, tmp_path):
    from fpt.data.make_beir import squad_folder
    counts = squad_folder(shared_data / "SQuAD" / "dev-v1.1.json", tmp_path)
    assert counts["corpus"] == 2067 and counts["train"] + counts["dev"] + counts["test"] == 10570
    splits = {s: read_beir(tmp_path / "qrels" / f"{s}.tsv", None) for s in ("train", "dev", "test")}
    paragraphs = {s: {p for r in rows for p in r["qrels"]} for s, rows in splits.items()}
    articles = {s: {p.rsplit("-", 1)[0] for p in ps} for s, ps in paragraphs.items()}
    assert not paragraphs["train"] & paragraphs["test"] and not paragraphs["dev"] & paragraphs["test"]
    assert not articles["train"] & articles["test"] and len(articles["train"]) == 29  # 60% of 48 articles


def test_make_beir_boolq_dev_test_split_by_passage(shared_data, tmp_path):
    from fpt.data.make_beir import boolq_folder
    with pytest.raises(FileNotFoundError, match="--boolq-train test.jsonl"):
        boolq_folder(shared_data / "SuperGLUE" / "BoolQ", tmp_path / "x")  # no train.jsonl in the shared data
    counts = boolq_folder(shared_data / "SuperGLUE" / "BoolQ", tmp_path, "test.jsonl", max_train=50, max_eval=20)
    assert (counts["train"], counts["dev"], counts["test"]) == (50, 20, 20)
    rows = {s: read_beir(tmp_path / "qrels" / f"{s}.tsv", None) for s in ("train", "dev", "test")}
    positives = {s: {p for r in rs for p in r["qrels"]} for s, rs in rows.items()}
    assert not positives["dev"] & positives["test"]
    corpus = [json.loads(line)["_id"] for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    assert set(corpus) == positives["train"] | positives["dev"] | positives["test"]  # capped: the kept passages


# --------------------------------------------------------------------------- search, metrics, calibration
def test_chunked_search_equals_the_full_matrix():
    g = torch.Generator().manual_seed(0)
    q, p = torch.randn(7, 16, generator=g), torch.randn(50, 16, generator=g)
    full_s, full_i = (q @ p.T).topk(10, dim=1)
    s, i = dense_topk(q, p, 10, chunk=6)
    assert torch.equal(i, full_i) and torch.allclose(s, full_s)
    s, i = dense_topk(q, p, 80, chunk=6)  # k beyond the corpus: every passage, ranked
    assert i.shape == (7, 50) and torch.equal(i, (q @ p.T).argsort(1, descending=True))


def test_faiss_search_equals_torch():
    need("faiss")
    g = torch.Generator().manual_seed(1)
    q, p = torch.randn(5, 8, generator=g), torch.randn(40, 8, generator=g)
    s_t, i_t = dense_topk(q, p, 7, chunk=9, backend_name="torch")
    s_f, i_f = dense_topk(q, p, 7, chunk=9, backend_name="faiss")
    assert torch.equal(i_t, i_f) and torch.allclose(s_t, s_f, atol=1e-5)


def test_maxsim_and_late_search():
    q = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0]])]
    d = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])]
    s, i = late_topk(q, d, 2, chunk=1, query_chunk=1)
    # q0: d0 = 1 + 0, d1 = 1 + 1; q1: d0 = 1, d1 = 1 (tie: the first)
    assert i.tolist() == [[1, 0], [0, 1]] and s.tolist() == [[2.0, 1.0], [1.0, 1.0]]
    padded = maxsim(torch.tensor([[[1.0, 0.0], [5.0, 5.0]]]), torch.tensor([[True, False]]),
                    torch.tensor([[[0.0, 1.0], [9.0, 9.0]]]), torch.tensor([[True, False]]))
    assert padded.item() == 0.0  # padding on either side never counts


def test_ranking_metrics_by_hand():
    need("ir_measures")
    qrels = [{"a": 1}, {"b": 1, "c": 1}]
    runs = [{"x": 3.0, "a": 2.0}, {"b": 0.5, "y": 0.9, "c": 0.1}]
    m = ranking_metrics(runs, qrels)
    ndcg0 = 1 / math.log2(3)
    ndcg1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["recall@20"] == m["recall@100"] == 1.0
    assert ranking_metrics([{}, {"b": 1.0}], qrels)["recall@100"] == pytest.approx(0.25)  # empty ranking: 0


def test_ece_by_hand():
    scores = torch.tensor([[0.0, -math.log(3)], [0.0, 0.0]])  # top-1 softmax: 0.75 and 0.5 (temperature 1)
    assert expected_calibration_error(scores, torch.tensor([True, True]), 1.0) == pytest.approx(0.5 * 0.25 + 0.5 * 0.5)
    assert expected_calibration_error(scores, torch.tensor([True, False]), 1.0) == pytest.approx(0.5 * 0.25 + 0.5 * 0.5)
    assert expected_calibration_error(scores * 2, torch.tensor([True, True]), 2.0) == pytest.approx(0.375)


# --------------------------------------------------------------------------- model and loss
def build(folder, *more):
    from fpt.models import build_model, load_tokenizer
    from fpt.task_kinds import get_kind
    cfg = compose("task=beir", f"task.data_dir={folder}", "model=tiny-bert", *more)
    torch.manual_seed(0)
    tok = load_tokenizer(cfg.model)
    return cfg, build_model(cfg.model, cfg.prompt, cfg.task, tok, kind=get_kind(cfg.task)), tok, get_kind(cfg.task)


def test_contrastive_loss_masks_other_queries_positives(tmp_path):
    from fpt.batching import collate
    from fpt.tasks import read_rows
    # q0 and q1 both judge d0 relevant: in a batch, each one's copy of d0 is no negative of the other
    beir_folder(tmp_path, qrels={"qrels/train.tsv": HEADER + "q0\td0\t1\nq1\td0\t1\nq1\td1\t1\nq2\td2\t1\n"})
    cfg, model, tok, kind = build(tmp_path, "task.hard_negatives=1", "prompt=none")
    feats = kind.features(cfg.task, read_rows(cfg.task, "train"), tok, False, train=True)
    assert len(feats) == 4  # one per (query, positive)
    batch = collate([feats[i] for i in range(4)], tok.pad_token_id)
    model.eval()
    out = model(batch)
    q = model.embed(batch["input_ids"], batch["attention_mask"], False)[0]
    p = model.embed(batch["p_input_ids"], batch["p_attention_mask"], True)[0]
    logits = (q @ p.T) / cfg.task.retriever.temperature
    index = batch["p_index"].reshape(-1).tolist()
    for i in range(4):
        positives = set(batch["q_positives"][i].tolist()) - {0}
        for j in range(8):
            if j != 2 * i and index[j] in positives:
                logits[i, j] = float("-inf")
    assert torch.isinf(logits).sum() >= 3  # q0's and q1's d0 / d1 in each other's rows
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(4) * 2)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(index[2 * i + 1] not in set(batch["q_positives"][i].tolist()) for i in range(4))  # negatives


def test_bitfit_trains_biases_only(tmp_path):
    beir_folder(tmp_path)
    _, model, _, _ = build(tmp_path, "prompt=bitfit")
    names = [n for n, _ in model.trainable_parameters()]
    assert names and all(n.endswith(".bias") for n in names)
    assert any(n.startswith("backbone.encoder") for n in names)


@pytest.mark.parametrize("prompt", ["deep", "shallow", "none"])
def test_separate_encoders_give_passages_their_own_weights(tmp_path, prompt):
    beir_folder(tmp_path)
    _, model, tok, _ = build(tmp_path, f"prompt={prompt}", "task.retriever.shared=false")
    own = {"deep": "passage_deep.", "shallow": "passage_shallow.", "none": "passage_backbone."}[prompt]
    assert any(n.startswith(own) for n, _ in model.trainable_parameters())
    enc = tok(["some text here"], return_tensors="pt")
    model.eval()
    as_query = model.embed(enc["input_ids"], enc["attention_mask"], False)[0]
    as_passage = model.embed(enc["input_ids"], enc["attention_mask"], True)[0]
    if prompt == "none":  # a copy: the same until training moves one of them
        assert torch.allclose(as_query, as_passage)
    else:
        assert not torch.allclose(as_query, as_passage)


def test_retrieval_step_flops_count_queries_and_passages(tmp_path):
    from fpt.flops import step_flops
    from fpt.trainer import Trainer
    beir_folder(tmp_path)
    cfg = compose("task=beir", f"task.data_dir={tmp_path}", "model=tiny-bert", "task.hard_negatives=1",
                  "trainer.batch_size=4", "trainer.max_steps=1", "trainer.eval_every=1", "trainer.threads=1",
                  "trainer.progress=false", f"output_root={tmp_path / 'out'}", "logger=none")
    trainer = Trainer(cfg, tmp_path / "run")
    from fpt.batching import collate
    batch = collate([trainer.train_set[i] for i in range(4)], 0)
    dims = trainer.family.dims(trainer.model.backbone.config)
    expected = sum(step_flops(dims, *batch[k].shape, deep=cfg.prompt.length) for k in ("input_ids", "p_input_ids"))
    assert batch["p_input_ids"].shape[0] == 8 and trainer._flops(batch) == expected


def test_identity_of_other_tasks_keeps_no_retrieval_keys():
    from fpt.runs.identity import run_identity
    keys = run_identity(compose("model=tiny-bert"))
    assert not [k for k in keys if k.startswith(("task.retriever", "task.hard_negatives", "task.shared_files"))]


def test_a_beir_run_identity_holds_its_corpus(tmp_path):
    from fpt.runs.identity import run_identity
    beir_folder(tmp_path)
    before = run_identity(compose("task=beir", f"task.data_dir={tmp_path}", "model=tiny-bert"))
    (tmp_path / "corpus.jsonl").write_text((tmp_path / "corpus.jsonl").read_text().replace("passage 3", "passage x"))
    after = run_identity(compose("task=beir", f"task.data_dir={tmp_path}", "model=tiny-bert"))
    assert before["data.corpus.jsonl"] != after["data.corpus.jsonl"]


# --------------------------------------------------------------------------- a tiny run end to end
@pytest.mark.parametrize("arch", ["dpr", "colbert"])
def test_tiny_run_trains_and_rescores(tmp_path, arch):
    need("ir_measures")
    from fpt.evaluate_run import evaluate_run
    from fpt.runs.launch import main
    beir_folder(tmp_path / "data")
    cfg = compose("task=beir", f"task.data_dir={tmp_path / 'data'}", "model=tiny-bert", "prompt.length=4",
                  f"task.retriever.arch={arch}", "task.retriever.search=torch", "task.hard_negatives=1",
                  "trainer.batch_size=4", "trainer.max_steps=4", "trainer.eval_every=2", "trainer.threads=1",
                  "trainer.progress=false", f"output_root={tmp_path}", "logger=none", "optim.lr=0.05")
    results = main(cfg, tmp_path / "run")
    assert results["status"] == "completed"
    assert set(results["best"]) == {"ndcg@10", "mrr@10", "recall@20", "recall@100", "ece"}
    summary = evaluate_run(tmp_path / "run", tmp_path / "eval", split="eval", device="cpu")
    assert summary["metrics"] == pytest.approx(results["best"])  # the dev-selected prompt, re-scored
    preds = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["q16", "q17", "q18", "q19"] and len(preds[0]["prediction"]) == 24
    lines = (tmp_path / "eval" / "run.trec").read_text().splitlines()
    assert len(lines) == 4 * 24 and lines[0].split()[:4] == ["q16", "Q0", preds[0]["prediction"][0][0], "1"]
    # out of domain: the same run on another folder (here: the test split of a copy with another corpus order)
    other = beir_folder(tmp_path / "other")
    summary = evaluate_run(tmp_path / "run", tmp_path / "ood", split="test", device="cpu",
                           overrides={"task.data_dir": str(other)})
    assert summary["overrides"] == {"task.data_dir": str(other)} and summary["examples"] == 4


@pytest.mark.parametrize("override, allowed", [
    ("task.retriever.arch=bert", "[dpr, colbert]"),
    ("task.retriever.pooling=pooler", "[cls, mean]"),
    ("task.retriever.similarity=l2", "[dot, cosine]"),
    ("task.negatives=random", "[qrels, bm25]"),
    ("task.retriever.search=annoy", "[torch, faiss, auto]"),
])
def test_retrieval_choices_fail_at_composition(override, allowed):
    key, value = override.split("=")
    with pytest.raises(Exception) as caught:  # enums in the schema (fpt/config.py): Hydra refuses the override
        compose("task=beir", "model=tiny-bert", override)
    message = str(caught.value.__cause__)
    assert f"Invalid value '{value}', expected one of {allowed}" in message and f"full_key: {key}" in message


@pytest.mark.parametrize("override, message", [
    ("task.retriever.top_k=0", "task.retriever.top_k=0: expected a positive whole number"),
    ("task.hard_negatives=-1", "task.hard_negatives=-1: expected a whole number >= 0"),
    ("task.retriever.temperature=0", "task.retriever.temperature=0.0: expected > 0"),
    ("task.metric=ece", "task.metric='ece': expected one of ['ndcg@10', 'mrr@10', 'recall@20', 'recall@100']"),
    ("task.metrics=[accuracy]", "a retrieval task is scored by [retrieval]"),
])
def test_retrieval_config_errors_at_start_up(tmp_path, override, message):
    from fpt.validate import check_config
    beir_folder(tmp_path)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        check_config(compose("task=beir", f"task.data_dir={tmp_path}", "model=tiny-bert", override))


def test_growth_refuses_bitfit(tmp_path):
    from fpt.runs.launch import main
    beir_folder(tmp_path / "data")
    cfg = compose("task=beir", f"task.data_dir={tmp_path / 'data'}", "model=tiny-bert", "prompt=bitfit",
                  "schedule=fpt", "trainer.max_steps=2", "trainer.threads=1", "trainer.progress=false", "logger=none",
                  f"output_root={tmp_path}")
    with pytest.raises(ValueError, match="prompt.type='bitfit' trains the backbone's own weights"):
        main(cfg, tmp_path / "run")  # refused at start-up (fpt/prompt_methods.py: BitFit has no frozen backbone)


def test_bm25_negatives_are_the_best_ranked_non_positives(tmp_path):
    need("bm25s")
    from fpt.retrieval.negatives import bm25_negatives
    passages = ["red apple pie", "green apple tree", "blue sky", "apple apple apple red"]
    got = bm25_negatives(["red apple"], ["a", "b", "c", "d"], passages, [{"d"}], 2)
    assert got == {0: ["a", "b"]}  # d (the positive) ranks first and is left out; c shares no word
    from fpt.tasks import read_rows
    beir_folder(tmp_path)
    cfg, _, tok, kind = build(tmp_path, "task.hard_negatives=1", "task.negatives=bm25")
    rows = read_rows(cfg.task, "train")
    feats = kind.features(cfg.task, rows, tok, False, train=True)
    # query i is "about <word i> and <word i+7>": BM25's best non-positive shares one of those words
    corpus = {f"d{i}": i for i in range(24)}
    for row, item in zip(rows, feats.items):
        i = corpus[next(iter(row["qrels"]))]
        negative = item["p_index"][1] - 1
        assert negative != i and negative in {(i + 7) % 24, (i - 7) % 24}


def test_eval_caches_passage_embeddings_per_checkpoint(tmp_path):
    need("ir_measures")
    from fpt.evaluate_run import evaluate_run
    from fpt.runs.launch import main
    beir_folder(tmp_path / "data")
    cfg = compose("task=beir", f"task.data_dir={tmp_path / 'data'}", "model=tiny-bert", "prompt.length=4",
                  "trainer.batch_size=4", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.threads=1",
                  "trainer.progress=false", f"output_root={tmp_path}", "logger=none", "optim.lr=0.05")
    main(cfg, tmp_path / "run")
    first = evaluate_run(tmp_path / "run", tmp_path / "e1", split="test", device="cpu")
    files = list((tmp_path / "run" / "embedding_cache").glob("trainable_best-*.pt"))
    assert first["cached_passages"] == 0 and len(files) == 1
    vectors = torch.load(files[0])
    assert len(vectors) == 24  # every corpus passage
    second = evaluate_run(tmp_path / "run", tmp_path / "e2", split="eval", device="cpu")
    assert second["cached_passages"] == 24 and files[0].stat().st_size > 0
    # the cache is what scoring uses: reversed vectors reverse the ranking
    torch.save({k: -v for k, v in vectors.items()}, files[0])
    flipped = evaluate_run(tmp_path / "run", tmp_path / "e3", split="test", device="cpu")
    assert flipped["metrics"]["ndcg@10"] != first["metrics"]["ndcg@10"]
    final = evaluate_run(tmp_path / "run", tmp_path / "e4", split="test", device="cpu", checkpoint="final")
    assert final["cached_passages"] == 0  # another checkpoint file: its own cache
    assert len(list((tmp_path / "run" / "embedding_cache").glob("*.pt"))) == 2


def test_a_run_on_dpr_json(tmp_path):
    need("ir_measures")
    from fpt.runs.launch import main
    words = "apple banana cherry dog eagle fish goat house".split()
    data = [{"question": f"about {w}", "positive_ctxs": [{"title": w, "text": f"{w} text", "passage_id": str(i)}],
             "hard_negative_ctxs": [{"title": words[i - 1], "text": f"{words[i - 1]} text", "passage_id": str(i - 1)}]}
            for i, w in enumerate(words) if i]
    (tmp_path / "train.json").write_text(json.dumps(data[:5]))
    (tmp_path / "dev.json").write_text(json.dumps(data[5:]))
    cfg = compose("task=beir", f"task.data_dir={tmp_path}", "task.format=dpr_json", "task.shared_files=[]",
                  "task.files={train: train.json, eval: dev.json}", "model=tiny-bert", "task.hard_negatives=1",
                  "trainer.batch_size=2", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.threads=1",
                  "trainer.progress=false", f"output_root={tmp_path}", "logger=none")
    results = main(cfg, tmp_path / "run")
    assert results["status"] == "completed" and 0 < results["best"]["ndcg@10"] <= 1


# PT-Retrieval's released settings (the paper's scripts): prompt type, prompt length, lr
RELEASED_DPR = {"dpr_finetune": ("none", None, 1e-5), "dpr_ptv2": ("deep", 64, 1e-2),
                "dpr_prompt": ("shallow", 100, 1e-2), "dpr_bitfit": ("bitfit", None, 1e-2)}


@pytest.mark.parametrize("name", sorted(RELEASED_DPR))
def test_released_dpr_recipes(name):
    prompt, length, lr = RELEASED_DPR[name]
    cfg = compose(f"experiment=pt_retrieval/{name}", "task.data_dir=X")
    assert (cfg.model.name_or_path, cfg.prompt.type, cfg.optim.lr) == ("bert-base-uncased", prompt, lr)
    assert length is None or cfg.prompt.length == length
    t, o = cfg.trainer, cfg.optim
    assert (t.batch_size, t.epochs, t.max_steps, cfg.task.max_length, o.warmup_ratio, o.max_grad_norm, cfg.seed) == \
        (128, 40, None, 256, 0.05, 2.0, 12345)
    r = cfg.task.retriever
    assert (cfg.task.hard_negatives, r.arch, r.shared, r.pooling, r.similarity) == (1, "dpr", False, "cls", "dot")
    cpu = compose(f"experiment=pt_retrieval/{name}_minilm_cpu")
    assert (cpu.model.name, cpu.prompt.type, cpu.optim.lr) == ("minilm", prompt, lr)
    assert length is None or cpu.prompt.length == (length if prompt == "deep" else 32)  # shallow: scaled to 96 tokens


def test_released_colbert_recipe():
    cfg = compose("experiment=pt_retrieval/colbert_ptv2", "task.data_dir=X")
    r = cfg.task.retriever
    assert (cfg.prompt.type, cfg.prompt.length, cfg.optim.lr, cfg.trainer.batch_size, cfg.task.max_length) == \
        ("deep", 180, 1e-3, 32, 300)
    assert (r.arch, r.similarity, r.query_max_length, r.dim) == ("colbert", "cosine", 32, 128)
    cpu = compose("experiment=pt_retrieval/colbert_ptv2_minilm_cpu")
    assert (cpu.task.retriever.arch, cpu.prompt.length, cpu.optim.lr) == ("colbert", 180, 1e-3)
    assert compose("experiment=pt_retrieval/dpr_ptv2_fpt_minilm_cpu").schedule.name == "fpt"


def test_zero_shot_overrides_compose_the_training_config():
    from helpers import compose_hydra

    from fpt.zero_shot import train_overrides
    given = ["model=minilm", "task=beir", "task.data_dir=F", "prompt=deep", "prompt.length=8", "seed=3", "split=test",
             "trainer.device=cpu"]
    compose_hydra(*given, config_name="eval")  # eval.py takes them
    kept = train_overrides(given)
    assert kept == given[:6]
    cfg = compose(*kept)
    assert (cfg.prompt.type, cfg.prompt.length, cfg.seed, cfg.task.data_dir) == ("deep", 8, 3, "F")
    assert train_overrides(["model=minilm", "task=beir"])[-1] == "prompt=none"  # the pretrained model as it is


def test_growth_composes_with_retrieval(tmp_path):
    """schedule stages on a retriever: the prompt trains on a partial encoder, is grown, and costs fewer FLOPs."""
    need("ir_measures")
    from helpers import GROWTH_STAGES

    from fpt.runs.launch import main
    beir_folder(tmp_path / "data")
    base = ["task=beir", f"task.data_dir={tmp_path / 'data'}", "model=tiny-bert", "model.from_config.num_hidden_layers=4",
            "prompt.length=4", "trainer.batch_size=4", "trainer.max_steps=12", "trainer.eval_every=4",
            "trainer.threads=1", "trainer.progress=false", "logger=none", f"output_root={tmp_path}"]
    grown = main(compose(*base, "schedule=fpt", GROWTH_STAGES, "schedule.num_score_examples=20"), tmp_path / "grown")
    plain = main(compose(*base), tmp_path / "plain")
    assert grown["status"] == plain["status"] == "completed"
    assert [s["layers"]["encoder"] for s in grown["growth"]["stages"]] == [2, 3, 4]
    assert grown["train_flops"] < plain["train_flops"] and "ndcg@10" in grown["best"]
