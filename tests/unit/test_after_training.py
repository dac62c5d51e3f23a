"""After training: eval.py scores a run's trained prompt, init_from continues or transfers it, trained-tensor files
carry metadata and refuse a mismatching model, fpt.export writes PEFT adapters (docs/after-training.md)."""
import json
from pathlib import Path

import pytest
import torch
from helpers import TOY_BERT as BERT, compose, read_predictions, toy_settings as settings, train_toy as _train

from fpt.build import build
from fpt.evaluate_run import evaluate_run, load_run
from fpt.runs.launch import main as run_main
from fpt.runs.trained import TrainedTensorError, read_trained
from fpt.task_kinds import get_kind


# --------------------------------------------------------------------------- eval.py
def test_eval_reproduces_the_runs_best_and_final_metrics_bert(bert_run, tmp_path):
    run, results = bert_run
    # the run must tell best from final for this test to show which prompt was loaded
    assert results["best"] != results["final"], results
    best = evaluate_run(run, tmp_path / "best", checkpoint="best", device="cpu")
    final = evaluate_run(run, tmp_path / "final", checkpoint="final", device="cpu")
    assert best["metrics"] == results["best"] and best["step"] == results["best_step"]
    assert final["metrics"] == results["final"] and final["step"] == results["steps"]
    assert json.loads((tmp_path / "best" / "metrics.json").read_text())["metrics"] == results["best"]
    preds = read_predictions(tmp_path / "best")
    assert [p["id"] for p in preds] == list(range(24))
    assert preds[0]["source"].endswith("dev.tsv:2")
    assert sum(p["prediction"] == p["gold"] for p in preds) / 24 == results["best"]["accuracy"]
    assert all(p["gold"] in ("0", "1") and 0.5 <= p["score"] <= 1.0 for p in preds)


def test_eval_rebuilds_the_partial_model_a_partial_schedule_ends_on(tmp_path, toy):
    from fpt.export import NotRepresentable, export_peft
    # partial_cr keeps 1 of 2 layers and half the FFN neurons for the whole run: the prompt fits that model only
    run, results = _train(tmp_path, toy, *BERT, "schedule=partial_cr", "seed=1")
    for checkpoint in ("best", "final"):
        summary = evaluate_run(run, tmp_path / checkpoint, checkpoint=checkpoint, device="cpu")
        assert summary["metrics"] == results[checkpoint], checkpoint
    with pytest.raises(NotRepresentable, match="partial model"):
        export_peft(load_run(run, "best", "cpu"), tmp_path / "peft", allow_inexact=True)


def test_t5_score_is_the_mean_probability_of_the_greedy_tokens(t5_run):
    from fpt.predict import predict
    from fpt.batching import collate
    from fpt.tasks import read_rows
    loaded = load_run(t5_run[0], "best", "cpu")
    task = loaded.cfg.task
    features = loaded.kind.features(task, read_rows(task, "eval")[:4], loaded.tokenizer, True)
    _, scores = predict(loaded.model, loaded.kind, task, features, seq2seq=True, batch_size=4, device="cpu",
                        pad_id=0)
    batch = collate([features[i] for i in range(4)], 0)
    with torch.no_grad():
        ids = loaded.model.generate(batch)[:, 1:].contiguous()
        eos = loaded.model.backbone.config.eos_token_id
        # greedy decoding picked the most likely token at every step up to the first end of sequence
        n = [row.tolist().index(eos) + 1 if eos in row.tolist() else len(row) for row in ids]
        probs = loaded.model({**batch, "labels": ids})["logits"].softmax(-1)
        for i in range(4):
            top = probs[i, :n[i]].max(-1)
            assert torch.equal(top.indices, ids[i, :n[i]])
            assert scores[i] == pytest.approx(top.values.log().mean().exp().item(), rel=1e-5)


# --------------------------------------------------------------------------- init_from
def test_init_from_continues_a_finished_run(bert_run, tmp_path, toy):
    source, before = bert_run
    results = run_main(compose(*settings(toy, tmp_path, *BERT[:-1], "trainer.max_steps=10", f"init_from={source}")),
                       tmp_path / "run")
    assert results["steps"] == before["steps"] + 10 == 40 and results["total_steps"] == 40
    assert results["init_from"]["continued"] and results["init_from"]["start_step"] == 30
    assert "head.classifier.weight" in results["init_from"]["loaded"] and results["init_from"]["fresh"] == []
    evals = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [30, 35, 40]
    assert evals[0]["eval"] == before["final"]  # it starts exactly where the source ended
    assert results["best"]["accuracy"] >= before["final"]["accuracy"] and results["best_step"] >= 30
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert f"init_from: {source}" in config
    _, meta = read_trained(tmp_path / "run" / "trainable_final.safetensors")
    assert meta["step"] == "40"


def test_init_from_transfers_the_prompt_but_not_a_head_of_other_labels(bert_run, tmp_path, toy):
    from fpt.trainer import Trainer
    source, _ = bert_run
    tensors, _ = read_trained(source / "trainable_final.safetensors")
    # the same data with the classes in the other order: the head's rows would mean the opposite classes
    cfg = compose(*settings(toy, tmp_path, *BERT, f"init_from={source}", "task.labels=[1,0]"))
    trainer = Trainer(cfg, tmp_path / "run")
    own = trainer.model.trainable_state_dict()
    prompt = [k for k in tensors if k.startswith("deep.")]  # however DeepPrompt names its parameters
    assert prompt and all(torch.equal(own[k], tensors[k]) for k in prompt)
    assert not torch.equal(own["head.classifier.weight"], tensors["head.classifier.weight"])
    info = trainer.init_from
    assert not info["continued"] and info["start_step"] == 0 and trainer.step_offset == 0
    assert info["fresh"] == ["head.classifier.bias", "head.classifier.weight"]


# --------------------------------------------------------------------------- metadata
def test_trained_tensor_files_carry_metadata_and_refuse_a_mismatching_model(bert_run, t5_run):
    run, results = bert_run
    _, meta = read_trained(run / "trainable_best.safetensors")
    assert {k: meta[k] for k in ("model_name", "model_name_or_path", "family", "prompt_type", "prompt_length",
                                 "prompt_projection", "task", "task_type", "checkpoint", "step")} == {
        "model_name": "tiny-bert", "model_name_or_path": "tiny-bert", "family": "bert", "prompt_type": "deep",
        "prompt_length": "4", "prompt_projection": "false", "task": "sample_sentiment",
        "task_type": "classification", "checkpoint": "best", "step": str(results["best_step"])}
    assert json.loads(meta["labels"]) == ["0", "1"] and meta["fpt_version"] and len(meta["backbone_digest"]) == 16
    assert json.loads(meta["model_from_config"])["hidden_size"] == 32

    with pytest.raises(TrainedTensorError, match="backbone_digest"):  # another random backbone (seed) of that name
        load_run(run, "best", "cpu", overrides={"seed": 7})
    with pytest.raises(TrainedTensorError, match="prompt_length: file has '4', the model has '5'"):
        load_run(run, "best", "cpu", overrides={"prompt.length": 5})
    with pytest.raises(TrainedTensorError, match="task: file has 'sample_sentiment'"):
        load_run(run, "best", "cpu", overrides={"task.name": "other"})

    t5, _ = t5_run
    from fpt.runs.init_from import apply_init_from
    from fpt.models import build_model, load_tokenizer
    cfg = compose("model=tiny-bert", "prompt=deep", "prompt.length=4", f"init_from={t5}")
    model = build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2,
                        kind=get_kind(cfg.task))
    with pytest.raises(TrainedTensorError, match="family: file has 't5', the model has 'bert'"):
        apply_init_from(cfg, model)


# --------------------------------------------------------------------------- PEFT export
def test_peft_export_of_a_t5_shallow_prompt_gives_the_same_logits(tmp_path, toy):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForSeq2SeqLM

    from fpt.export import main as export_main
    from fpt.batching import collate
    from fpt.tasks import read_rows
    run, _ = _train(tmp_path, toy, "model=tiny-t5", "prompt=shallow", "optim.lr=0.3", "trainer.max_steps=5")
    export_main([str(run), "--format", "peft", "--out", str(tmp_path / "peft")])
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_transformer_submodules"] == 1
    assert json.loads((tmp_path / "peft" / "fpt_export.json").read_text())["exact"] is True

    loaded = load_run(run, "best", "cpu")
    base = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "peft" / "base_model")
    adapted = peft.PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    rows = read_rows(loaded.cfg.task, "eval")[:6]
    features = loaded.kind.features(loaded.cfg.task, rows, loaded.tokenizer, True)
    batch = collate([features[i] for i in range(6)], loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        ours = loaded.model(batch)["logits"]
        theirs = adapted(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).logits
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0), (ours - theirs).abs().max()


def test_peft_export_of_a_bert_deep_prompt_layout_and_its_position_shift(bert_run, tmp_path):
    peft = pytest.importorskip("peft")
    from peft.utils import get_peft_model_state_dict
    from transformers import AutoModel

    from fpt.export import NotRepresentable, export_peft
    from fpt.batching import collate
    from fpt.tasks import read_rows
    run, _ = bert_run
    loaded = load_run(run, "best", "cpu")
    with pytest.raises(NotRepresentable, match="positions P..P\\+L-1"):
        export_peft(loaded, tmp_path / "refused")
    config = export_peft(loaded, tmp_path / "peft", allow_inexact=True)
    assert json.loads((tmp_path / "peft" / "fpt_export.json").read_text())["exact"] is False
    weights, _ = read_trained(tmp_path / "peft" / "adapter_model.safetensors")

    # the layout PEFT's own code builds for this config: key names and shapes
    base = AutoModel.from_pretrained(tmp_path / "peft" / "base_model")
    fields = {k: v for k, v in config.items() if k not in ("peft_type", "base_model_name_or_path", "revision")}
    fresh = peft.get_peft_model(base, peft.PrefixTuningConfig(**{**fields, "inference_mode": False}))
    expected = get_peft_model_state_dict(fresh)
    assert {k: v.shape for k, v in weights.items()} == {k: v.shape for k, v in expected.items()}

    # loaded by PEFT, its per-layer (key, value) prefixes are fpt's per-site prefixes, in order
    base = AutoModel.from_pretrained(tmp_path / "peft" / "base_model")
    adapted = peft.PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    cache = adapted.get_prompt(1)
    with torch.no_grad():
        prefixes = torch.stack(loaded.model.deep())  # [sites, 2, H, P, D]
    assert len(cache.layers) == prefixes.shape[0] == 2
    for site, layer in enumerate(cache.layers):
        assert torch.equal(layer.keys[0], prefixes[site, 0]) and torch.equal(layer.values[0], prefixes[site, 1])

    rows = read_rows(loaded.cfg.task, "eval")[:4]
    batch = collate([loaded.kind.features(loaded.cfg.task, rows, loaded.tokenizer, False)[i] for i in range(4)], 0)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    try:
        with torch.no_grad():
            theirs = adapted(**inputs).last_hidden_state
    except Exception as err:  # noqa: BLE001  (PEFT versions whose BERT prefix path does not run)
        pytest.skip(f"layout checked; this PEFT cannot run PrefixTuning on BERT: {type(err).__name__}: {err}")
    length, seq = prefixes.shape[3], inputs["input_ids"].shape[1]
    with torch.no_grad(), loaded.model.deep_prompt():
        positions = torch.arange(length, length + seq)[None]
        shifted = loaded.model.backbone(**inputs, position_ids=positions).last_hidden_state
    ours = loaded.model.encode(batch)
    # PEFT computes fpt's prefixes with the real tokens at positions P..P+L-1: exactly, and so not fpt's output
    assert torch.allclose(theirs, shifted, atol=1e-5, rtol=0), (theirs - shifted).abs().max()
    assert not torch.allclose(theirs, ours, atol=1e-3)


def test_peft_export_refuses_what_peft_cannot_represent():
    from fpt.export import NotRepresentable, peft_adapter
    from fpt.models import build_model, load_tokenizer
    for model, prompt, reason in [("tiny-bert", "shallow", "shifts the real tokens' positions"),
                                  ("tiny-t5", "deep", "decoder's self-attention a prefix only"),
                                  ("tiny-bert", "none", "full fine-tuning")]:
        cfg = compose(f"model={model}", f"prompt={prompt}", "prompt.length=2")
        built = build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2,
                            kind=get_kind(cfg.task))
        with pytest.raises(NotRepresentable, match=reason):
            peft_adapter(cfg, built, "base")


# --------------------------------------------------------------------------- predictions of every BERT head
def test_prediction_records_line_up_with_each_kinds_metrics(tmp_path):
    """Per-example predictions (one per row, in order) re-scored by the task's metric give eval's metrics."""
    from helpers import CONLL, COPA, RECORD, SQUAD, jsonl, write

    from fpt.evaluate_run import LoadedRun, score
    from fpt.evaluation import evaluate
    from fpt.metrics import compute_metrics
    from fpt.tasks import read_rows
    cases = [("copa", {"val.jsonl": jsonl(COPA)}, []),
             ("record", {"val.jsonl": jsonl([RECORD])}, []),
             ("squad_v2", {"dev-v2.0.json": json.dumps(SQUAD)}, ["task.max_length=24", "task.doc_stride=8"]),
             ("conll03", {"eng.testa": CONLL}, [])]
    for task, files, overrides in cases:
        cfg = compose(f"task={task}", "model=tiny-bert", "prompt=deep", "prompt.length=2", "seed=0",
                      f"task.data_dir={write(tmp_path / task, files)}", *overrides)
        parts = build(cfg, "cpu", training=False)  # an untrained run's model (fpt/build.py)
        kind, tokenizer, model = parts.kind, parts.tokenizer, parts.model.eval()
        loaded = LoadedRun(cfg, model, tokenizer, kind, False, parts.device, {}, Path("none"))
        metrics, preds = score(loaded, batch_size=3)
        features = kind.features(cfg.task, read_rows(cfg.task, "eval"), tokenizer, False)
        assert metrics == evaluate(model, kind, cfg.task, features, seq2seq=False, batch_size=5,
                                   device="cpu", pad_id=0), task
        assert len(preds) == len(read_rows(cfg.task, "eval")), task
        rescored = compute_metrics(list(cfg.task.metrics), [p["prediction"] for p in preds],
                                   [p["gold"] for p in preds])
        assert rescored == {k: v for k, v in metrics.items() if k in rescored}, task
        assert any(v > 0 for v in rescored.values()), (task, rescored)  # seed 0: some right, so order matters
        assert all(p["score"] is not None for p in preds), task


def test_regression_kind_scores_predicts_and_fills_unlabeled_rows(tmp_path):
    """STS-B (task.type=regression): one score from the BERT head, records carry the raw scores (no confidence),
    unlabeled rows get the placeholder 0.0 and the same predictions; T5 targets are the score rounded to 0.2."""
    from helpers import jsonl, write

    from fpt.evaluate_run import LoadedRun, score
    from fpt.evaluation import evaluate
    from fpt.metrics import compute_metrics
    from fpt.models.heads import RegressionHead
    from fpt.tasks import TaskDataError, read_rows

    pairs = [("A man plays a guitar.", "A man plays music.", "3.8"), ("A dog runs.", "A cat sleeps.", "0.4"),
             ("Rain falls.", "It is raining.", "4.6"), ("He eats.", "Someone reads.", "1.13")]
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tlabel\n"
    dev = header + "".join(f"{i}\tg\tf\t2012\t{i}\ts\ts\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(pairs))
    unlabeled = jsonl([{"sentence1": a, "sentence2": b} for a, b, _ in pairs])
    folder = write(tmp_path / "stsb", {"dev.tsv": dev, "unlabeled.jsonl": unlabeled})
    cfg = compose("task=stsb", "model=tiny-bert", "prompt=deep", "prompt.length=2", f"task.data_dir={folder}",
                  "seed=0")
    parts = build(cfg, "cpu", training=False)  # an untrained run's model (fpt/build.py)
    kind, tokenizer, model = parts.kind, parts.tokenizer, parts.model.eval()
    assert isinstance(model.head, RegressionHead)
    loaded = LoadedRun(cfg, model, tokenizer, kind, False, parts.device, {}, Path("none"))
    metrics, preds = score(loaded, batch_size=4)  # the same padding as below
    features = kind.features(cfg.task, read_rows(cfg.task, "eval"), tokenizer, False)
    assert metrics == evaluate(model, kind, cfg.task, features, seq2seq=False, batch_size=4, device="cpu", pad_id=0)
    assert [p["gold"] for p in preds] == [float(y) for _, _, y in pairs]
    assert all(isinstance(p["prediction"], float) and p["score"] is None for p in preds)
    assert compute_metrics(list(cfg.task.metrics), [p["prediction"] for p in preds],
                           [p["gold"] for p in preds]) == metrics
    none, unlabeled_preds = score(loaded, data=str(folder / "unlabeled.jsonl"), data_format="jsonl",
                                  batch_size=4)
    assert none == {} and all("gold" not in p for p in unlabeled_preds)
    assert [p["prediction"] for p in unlabeled_preds] == pytest.approx([p["prediction"] for p in preds], abs=1e-6)
    rows = read_rows(cfg.task, "eval")
    assert [kind.targets(cfg.task, r) for r in rows] == [["3.8"], ["0.4"], ["4.6"], ["1.2"]]
    with pytest.raises(TaskDataError, match="label 'high' is not a number"):
        kind.reference(cfg.task, {**rows[0], "label": "high"})


def test_init_from_a_job_folder_that_skipped_means_the_run_it_links_to(tmp_path):
    """`python train.py ... hydra.run.dir=outputs/demo` run again after the same config completed elsewhere leaves
    outputs/demo with run_link.json only; init_from=outputs/demo follows it, as eval.py does."""
    from fpt.runs.init_from import resolve
    earlier = tmp_path / "2026-01-01" / "12-00-00"
    earlier.mkdir(parents=True)
    (earlier / "config.yaml").write_text("seed: 42\n")
    (earlier / "trainable_final.safetensors").write_bytes(b"x")
    job = tmp_path / "demo"
    job.mkdir()
    (job / "run_link.json").write_text(json.dumps({"run_dir": str(earlier), "earlier_status": "completed"}))
    assert resolve(str(job)) == earlier / "trainable_final.safetensors"
    with pytest.raises(FileNotFoundError, match="the folder has no trainable_final.safetensors"):
        resolve(str(tmp_path))
