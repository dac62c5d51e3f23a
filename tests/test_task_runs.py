"""Every task kind end to end through the Trainer, from small files in each task's official format.

tiny-t5 runs every text-to-text task of FPT (squad_v2, record, xsum, mnli, qqp) with generation and the
official metric, and CoNLL NER as text; tiny-bert runs every BERT head (classification with per-question MultiRC metrics, COPA
multiple choice, ReCoRD ranking, CoNLL NER and SRL with test splits, SQuAD 2.0 spans). The models are
tiny random ones: to show that targets, decoding and scoring line up, each run fully fine-tunes on a
handful of examples and is scored on those same examples, which it must then get (almost) all right.
"""
import json

import torch
from conftest import compose

from fpt.trainer import Trainer

torch.set_num_threads(1)

CONTEXT = "Alice was born in Paris in 1990. Bob lives in Rome. The cat is black."
SQUAD = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": [
    {"id": "1", "question": "Where was Alice born?", "answers": [{"text": "Paris", "answer_start": 18}]},
    {"id": "2", "question": "Where does Bob live?", "answers": [{"text": "Rome", "answer_start": 46}]},
    {"id": "3", "question": "What colour is the dog?", "answers": [], "is_impossible": True},
    {"id": "4", "question": "When was Alice born?", "answers": [{"text": "1990", "answer_start": 27}]}]}]}]}
RECORD = {"idx": 0, "source": "x", "passage": {
    "text": "Tom met Ann in Rome.\n@highlight\nAnn is a doctor", "entities": [
        {"start": 0, "end": 2}, {"start": 8, "end": 10}, {"start": 15, "end": 18}]}, "qas": [
    {"idx": 0, "query": "@placeholder met a doctor in Rome.", "answers": [{"start": 0, "end": 2, "text": "Tom"}]},
    {"idx": 1, "query": "The doctor was in @placeholder.", "answers": [{"start": 15, "end": 18, "text": "Rome"}]},
    {"idx": 2, "query": "Tom met @placeholder.", "answers": [{"start": 8, "end": 10, "text": "Ann"}]}]}
XSUM = [{"document": "The council approved a new park in the town centre on Monday.", "summary": "New park approved.",
         "id": "1"},
        {"document": "Heavy rain flooded several roads across the county overnight.", "summary": "Rain floods roads.",
         "id": "2"}]
MNLI_TRAIN = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n")
MNLI_DEV = MNLI_TRAIN.replace("label1\tgold_label", "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
MNLI_ROWS = [("A man plays a guitar.", "A man plays music.", "entailment"),
             ("A dog runs in a park.", "A cat sleeps at home.", "contradiction"),
             ("A woman reads a book.", "The woman is a teacher.", "neutral")]
QQP = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n" + "".join(
    f"{i}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate([
        ("How do I learn Python?", "What is the best way to learn Python?", 1),
        ("How tall is Everest?", "Who wrote Hamlet?", 0),
        ("Why is the sky blue?", "What makes the sky look blue?", 1),
        ("Is coffee healthy?", "How far is the Moon?", 0)]))
MULTIRC = {"idx": 0, "passage": {"text": "Tom has a red cat and a dog.", "questions": [
    {"idx": 0, "question": "What pets does Tom have?", "answers": [
        {"idx": 0, "text": "A cat", "label": 1}, {"idx": 1, "text": "A fish", "label": 0},
        {"idx": 2, "text": "A dog", "label": 1}]},
    {"idx": 1, "question": "What colour is the cat?", "answers": [
        {"idx": 3, "text": "Red", "label": 1}, {"idx": 4, "text": "Blue", "label": 0}]}]}}
COPA = [{"premise": "The man fell.", "choice1": "He slipped.", "choice2": "He laughed.", "question": "cause",
         "label": 0, "idx": 0},
        {"premise": "It rained.", "choice1": "We got dry.", "choice2": "We got wet.", "question": "effect",
         "label": 1, "idx": 1},
        {"premise": "The glass broke.", "choice1": "I dropped it.", "choice2": "I washed it.", "question": "cause",
         "label": 0, "idx": 2},
        {"premise": "She was hungry.", "choice1": "She slept.", "choice2": "She ate.", "question": "effect",
         "label": 1, "idx": 3}]
CONLL = ("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\ncall NN I-NP O\n\n"
         "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\nvisited VBD I-VP O\nLondon NNP I-NP I-LOC\n\n"
         "Smith NNP I-NP I-PER\nmet VBD I-VP O\nJones NNP I-NP I-PER\nin IN I-PP O\nParis NNP I-NP I-LOC\n")
SRL = ("1 The cat sat on the mat ||| B-A0 I-A0 B-V B-AM-LOC I-AM-LOC I-AM-LOC\n"
       "0 Kozlowski resigned yesterday ||| B-A0 B-V B-AM-TMP\n"
       "2 Investors quickly sold shares ||| B-A0 B-AM-MNR B-V B-A1\n")


def write(folder, files: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def run(tmp_path, task, model, data_dir, *overrides, steps=60, lr=3e-3):
    """Fully fine-tune `model` on the task's tiny train file; evaluate on the same examples."""
    cfg = compose(f"task={task}", f"model={model}", "prompt=none", f"task.data_dir={data_dir}",
                  f"optim.lr={lr}", "optim.schedule=constant", f"trainer.max_steps={steps}",
                  f"trainer.eval_every={steps}", "trainer.batch_size=4", "trainer.eval_batch_size=4",
                  "trainer.threads=1", "trainer.progress=false", "model.head_dropout=0", "model.dropout=0", *overrides)
    return Trainer(cfg, tmp_path / "run").run()


# --------------------------------------------------------------------------- T5, text-to-text
def test_t5_squad_v2_generates_answers_and_no_answer(tmp_path):
    data = write(tmp_path / "d", {"train-v2.0.json": json.dumps(SQUAD), "dev-v2.0.json": json.dumps(SQUAD)})
    r = run(tmp_path, "squad_v2", "tiny-t5", data, "task.max_length=48", "task.generate_max_tokens=6", steps=150)
    best = r["best"]
    assert best["HasAns_total"] == 3 and best["NoAns_total"] == 1
    assert best["exact"] == 1.0 and best["f1"] == 1.0, best  # "no answer" decoded and scored as the empty answer


def test_t5_record_one_example_per_answer_and_max_over_answers(tmp_path):
    data = write(tmp_path / "d", {"train.jsonl": jsonl([RECORD]), "val.jsonl": jsonl([RECORD])})
    r = run(tmp_path, "record", "tiny-t5", data, "task.generate_max_tokens=4", steps=120)
    assert r["best"]["exact_match"] == 1.0 and r["best"]["f1"] == 1.0, r["best"]


def test_t5_xsum_rouge(tmp_path):
    data = write(tmp_path / "d", {"train.jsonl": jsonl(XSUM), "validation.jsonl": jsonl(XSUM)})
    r = run(tmp_path, "xsum", "tiny-t5", data, "task.generate_max_tokens=8", steps=120)
    assert set(r["best"]) == {"rouge1", "rouge2", "rougeL"}
    assert r["best"]["rougeL"] > 0.9, r["best"]


def test_t5_mnli_from_glue_tsv_with_target_prefix(tmp_path):
    train = MNLI_TRAIN + "".join(f"{i}\t0\t0\tfiction\t-\t-\t-\t-\t{p}\t{h}\t{y}\t{y}\n"
                                 for i, (p, h, y) in enumerate(MNLI_ROWS))
    dev = MNLI_DEV + "".join(f"{i}\t0\t0\tfiction\t-\t-\t-\t-\t{p}\t{h}\t{y}\t{y}\t{y}\t{y}\t{y}\t{y}\n"
                             for i, (p, h, y) in enumerate(MNLI_ROWS))
    data = write(tmp_path / "d", {"train.tsv": train, "dev_matched.tsv": dev})
    r = run(tmp_path, "mnli", "tiny-t5", data, "model.target_prefix=label", "task.generate_max_tokens=5", steps=80)
    assert r["best"]["accuracy"] == 1.0, r["best"]


def test_t5_qqp_accuracy_and_f1(tmp_path):
    data = write(tmp_path / "d", {"train.tsv": QQP, "dev.tsv": QQP})
    r = run(tmp_path, "qqp", "tiny-t5", data, "task.generate_max_tokens=5", steps=80)
    assert r["best"]["accuracy"] == 1.0 and r["best"]["f1"] == 1.0, r["best"]


def test_t5_conll03_spans_as_text_scored_by_seqeval(tmp_path):
    data = write(tmp_path / "d", {"eng.train": CONLL, "eng.testa": CONLL, "eng.testb": CONLL})
    r = run(tmp_path, "conll03", "tiny-t5", data, "task.generate_max_tokens=16", steps=150)
    assert r["best"]["f1"] == 1.0 and r["best"]["test_f1"] == 1.0, r["best"]


# --------------------------------------------------------------------------- BERT heads
def test_bert_multirc_classification_per_question(tmp_path):
    data = write(tmp_path / "d", {"train.jsonl": jsonl([MULTIRC]), "val.jsonl": jsonl([MULTIRC])})
    r = run(tmp_path, "multirc", "tiny-bert", data, steps=40)
    assert r["best"]["f1a"] == 1.0 and r["best"]["em"] == 1.0, r["best"]


def test_bert_copa_multiple_choice(tmp_path):
    data = write(tmp_path / "d", {"train.jsonl": jsonl(COPA), "val.jsonl": jsonl(COPA)})
    r = run(tmp_path, "copa", "tiny-bert", data, steps=40)
    assert r["best"]["accuracy"] == 1.0, r["best"]


def test_bert_record_candidate_ranking(tmp_path):
    data = write(tmp_path / "d", {"train.jsonl": jsonl([RECORD]), "val.jsonl": jsonl([RECORD])})
    # 200 steps: with length-grouped batches (trainer.group_by_length) seed 42 ranks 2 of 3 queries right at 160
    r = run(tmp_path, "record", "tiny-bert", data, steps=200)
    assert r["best"]["exact_match"] == 1.0, r["best"]


def test_bert_conll03_ner_reports_test_at_best_dev_step(tmp_path):
    data = write(tmp_path / "d", {"eng.train": CONLL, "eng.testa": CONLL, "eng.testb": CONLL.split("\n\n", 2)[2]})
    r = run(tmp_path, "conll03", "tiny-bert", data, "trainer.eval_every=20", steps=60)
    assert r["best"]["f1"] == 1.0, r["best"]
    assert r["best"]["test_f1"] == 1.0  # the test file (last sentence) scored with the same prompt
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    at_best = [x["eval"] for x in log if x["step"] == r["best_step"]][0]
    assert at_best["test_f1"] == r["best"]["test_f1"]


def test_bert_conll05_srl_with_two_test_sets(tmp_path):
    data = write(tmp_path / "d", {"conll05.train.txt": SRL, "conll05.devel.txt": SRL,
                                  "conll05.test.wsj.txt": SRL, "conll05.test.brown.txt": SRL.splitlines()[1]})
    r = run(tmp_path, "conll05", "tiny-bert", data, steps=60)
    assert r["best"]["f1"] == 1.0 and r["best"]["test_brown_f1"] == 1.0, r["best"]
    assert "test_wsj_f1" in r["best"]


def test_bert_squad_v2_span_head(tmp_path):
    data = write(tmp_path / "d", {"train-v2.0.json": json.dumps(SQUAD), "dev-v2.0.json": json.dumps(SQUAD)})
    r = run(tmp_path, "squad_v2", "tiny-bert", data, "task.max_length=24", "task.doc_stride=8", steps=160)
    assert r["best"]["exact"] == 1.0, r["best"]  # answers found across windows, and the unanswerable one
