"""Task kinds without training: official-format readers, checks with clear errors, features, heads, scoring."""
import io
import csv
import json
import logging
import re

import pytest
import sentencepiece
import torch
from helpers import compose
from transformers import T5Tokenizer

from fpt.evaluation import check_metric
from fpt.models import load_tokenizer
from fpt.models.heads import MultipleChoiceHead, SpanHead, TokenClassificationHead
from fpt.task_kinds import get_kind
from fpt.task_kinds.record import clean_passage
from fpt.task_kinds.token_classification import spans, tags_from_text
from fpt.batching import collate
from fpt.readers import tabular
from fpt.tasks import TaskDataError, read_rows, training_set_warnings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(compose("model=tiny-bert").model)


def task_cfg(name, tmp_path, *overrides):
    return compose(f"task={name}", f"task.data_dir={tmp_path}", *overrides).task


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- readers
def test_conll_reader_converts_iob1_and_skips_docstart(tmp_path):
    write(tmp_path / "eng.train", "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n"
                                  "German JJ I-NP I-MISC\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n"
                                  "Smith NNP I-NP B-PER\n")
    task = task_cfg("conll03", tmp_path)
    rows = read_rows(task, "train")
    assert [r["tokens"] for r in rows] == [["EU", "rejects", "German"], ["Peter", "Blackburn", "Smith"]]
    assert rows[1]["_source"].endswith("eng.train:7")
    words, tags = get_kind(task).words_and_tags(task, rows[1])
    assert tags == ["B-PER", "I-PER", "B-PER"]  # IOB1 I-PER I-PER B-PER: two entities
    assert get_kind(task).words_and_tags(task, rows[0])[1] == ["B-ORG", "O", "B-MISC"]


def test_conll_unknown_tag_names_file_line_and_tag(tmp_path, tok):
    write(tmp_path / "eng.train", "EU NNP I-NP I-ORGANISATION\n")
    task = task_cfg("conll03", tmp_path)
    with pytest.raises(TaskDataError, match=r"eng.train:1.*B-ORGANISATION"):
        get_kind(task).encode(task, read_rows(task, "train"), tok, seq2seq=False, train=True)


def test_conll_short_line_names_file_line(tmp_path):
    write(tmp_path / "eng.train", "EU NNP I-NP I-ORG\nrejects\n")
    with pytest.raises(TaskDataError, match=r"eng.train:2.*2 column|eng.train:2.*column"):
        read_rows(task_cfg("conll03", tmp_path), "train")


def test_squad_json_reader_v1_and_v2(tmp_path):
    data = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "a", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}],
         "is_impossible": False},
        {"id": "b", "question": "Where is Rome?", "answers": [], "plausible_answers": [{"text": "France",
         "answer_start": 12}], "is_impossible": True}]}]}]}
    write(tmp_path / "dev-v2.0.json", json.dumps(data))
    rows = read_rows(task_cfg("squad_v2", tmp_path), "eval")
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["answers"] == {"text": ["France"], "answer_start": [12]}
    assert rows[1]["answers"] == {"text": [], "answer_start": []}
    write(tmp_path / "dev-v1.1.json", json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "x"}]}]}))
    with pytest.raises(TaskDataError, match=r"dev-v1.1.json: data\[0\].paragraphs\[0\]: missing key 'qas'"):
        read_rows(task_cfg("squad", tmp_path), "eval")


def test_multirc_reader_flattens_and_groups_questions(tmp_path, tok):
    passage = {"idx": 7, "passage": {"text": "Tom has a cat.", "questions": [
        {"idx": 0, "question": "What does Tom have?", "answers": [{"idx": 0, "text": "A cat", "label": 1},
                                                                  {"idx": 1, "text": "A dog", "label": 0}]},
        {"idx": 1, "question": "Who has a cat?", "answers": [{"idx": 2, "text": "Tom", "label": 1}]}]}}
    write(tmp_path / "val.jsonl", json.dumps(passage) + "\n")
    task = task_cfg("multirc", tmp_path)
    rows = read_rows(task, "eval")
    assert [(r["question"], r["answer"], r["label"]) for r in rows] == [
        ("What does Tom have?", "A cat", 1), ("What does Tom have?", "A dog", 0), ("Who has a cat?", "Tom", 1)]
    feats = get_kind(task).encode(task, rows, tok, seq2seq=False)
    assert [m["question_id"] for m in feats.meta] == ["7-0", "7-0", "7-1"]
    # one wrong answer option makes its whole question wrong for EM
    metrics = get_kind(task).score_bert(task, feats, [1, 1, 1])
    assert metrics["em"] == pytest.approx(0.5) and metrics["f1a"] == pytest.approx(0.8)


def test_record_reader_entities_inclusive_and_passage_cleaning(tmp_path):
    text = "Tom met Ann in Rome.\n@highlight\nAnn is a doctor\n@highlight\nRome is hot"
    obj = {"idx": 3, "passage": {"text": text, "entities": [{"start": 0, "end": 2}, {"start": 8, "end": 10},
                                                            {"start": 15, "end": 18}, {"start": 32, "end": 34}]},
           "qas": [{"idx": 9, "query": "@placeholder is a doctor.", "answers": [{"start": 8, "end": 10,
                                                                                "text": "Ann"}]}]}
    write(tmp_path / "val.jsonl", json.dumps(obj) + "\n")
    rows = read_rows(task_cfg("record", tmp_path), "eval")
    assert rows[0]["entities"] == ["Ann", "Rome", "Tom"] and rows[0]["answers"] == ["Ann"]
    assert clean_passage(text) == "Tom met Ann in Rome. Ann is a doctor. Rome is hot"


def test_spert_and_srl_readers(tmp_path):
    write(tmp_path / "conll04_train.json", json.dumps([{"tokens": ["John", "Smith", "lives", "in", "Boston"],
                                                       "entities": [{"type": "Peop", "start": 0, "end": 2},
                                                                    {"type": "Loc", "start": 4, "end": 5}]}]))
    rows = read_rows(task_cfg("conll04", tmp_path), "train")
    assert rows[0]["tags"] == ["B-Peop", "I-Peop", "O", "O", "B-Loc"]
    write(tmp_path / "conll05.train.txt", "1 The cat sat . ||| B-A0 I-A0 B-V O\n2 bad line ||| O\n")
    with pytest.raises(TaskDataError, match=r"conll05.train.txt:2"):
        read_rows(task_cfg("conll05", tmp_path), "train")


# --------------------------------------------------------------------------- clear errors at start-up
def test_wrong_label_and_column_fail_with_file_and_line(tmp_path, tok):
    write(tmp_path / "train.jsonl", '{"question": "q?", "passage": "p.", "label": "true"}\n'
                                    '{"question": "q?", "passage": "p.", "label": "maybe"}\n')
    task = task_cfg("boolq", tmp_path)
    with pytest.raises(TaskDataError, match=r"train.jsonl:2: label 'maybe'.*\['false', 'true'\]"):
        get_kind(task).features(task, read_rows(task, "train"), tok, seq2seq=False, train=True)
    write(tmp_path / "train.jsonl", '{"question": "q?", "passage": "p.", "label": "true"}\n')
    task = task_cfg("boolq", tmp_path, "task.text_fields=[question,pasage]")
    with pytest.raises(TaskDataError, match=r"train.jsonl:1.*'pasage'.*columns"):
        get_kind(task).features(task, read_rows(task, "train"), tok, seq2seq=False, train=True)


def test_config_checks_name_the_problem():
    with pytest.raises(ValueError, match="task.metric='acc'.*accuracy"):
        check_metric(compose("task=boolq", "task.metric=acc").task)
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        check_metric(compose("task=xsum", "task.metrics=[bleu]").task)
    task = compose("task=xsum").task
    with pytest.raises(ValueError, match="text-to-text only"):
        get_kind(task).check_config(task, seq2seq=False)
    task = compose("task=rte", "task.verbalizers=[yes]").task
    with pytest.raises(ValueError, match="one target text per label"):
        get_kind(task).check_config(task, seq2seq=True)


# --------------------------------------------------------------------------- features and heads
def test_copa_features_pair_each_choice_and_head_softmaxes_over_them(tmp_path, tok):
    rows = [{"premise": "The man fell.", "choice1": "He slipped.", "choice2": "He laughed.", "question": "cause",
             "label": 0, "idx": 0},
            {"premise": "It rained.", "choice1": "We got wet.", "choice2": "We got dry.", "question": "effect",
             "label": 0, "idx": 1}]
    write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    task = task_cfg("copa", tmp_path)
    feats = get_kind(task).encode(task, read_rows(task, "train"), tok, seq2seq=False, train=True)
    first = [tok.decode(ids, skip_special_tokens=True) for ids in feats[0]["input_ids"]]
    assert first == ["the man fell. because he slipped.", "the man fell. because he laughed."]
    assert tok.decode(feats[1]["input_ids"][0]) == "[CLS] it rained. so [SEP] we got wet. [SEP]"
    batch = collate([feats[0], {**feats[1], **{k: v[:1] for k, v in feats[1].items() if k != "label"}}], 0)
    assert batch["input_ids"].shape[0] == 4 and batch["choice_mask"].tolist() == [[True, True], [True, False]]
    head = MultipleChoiceHead(hidden=8, dropout=0.0, pooler=None, pooling="cls")
    logits = head(torch.randn(4, batch["input_ids"].shape[1], 8), batch)
    assert logits.shape == (2, 2) and logits[1, 1] < -1e30  # the padded choice can never win
    assert torch.isfinite(head.loss(logits, batch))


def test_token_features_label_first_subword_and_srl_predicate_segment(tmp_path, tok):
    write(tmp_path / "conll05.train.txt", "1 Kozlowski resigned today ||| B-A0 B-V B-AM-TMP\n")
    task = task_cfg("conll05", tmp_path)
    feats = get_kind(task).encode(task, read_rows(task, "train"), tok, seq2seq=False, train=True)
    ids, tags = feats[0]["input_ids"], feats[0]["tag_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    labels = get_kind(task).num_labels(task)
    kept = [(p, t) for p, t in zip(pieces, tags) if t != -100]
    assert [p for p, _ in kept] == [pieces[1], "resigned", "today"]  # first sub-word of each sentence word
    assert pieces.count("resigned") == 2 and pieces.index("[SEP]") < len(pieces) - 1  # predicate after [SEP]
    assert all(0 <= t < labels for _, t in kept)
    head = TokenClassificationHead(hidden=8, num_labels=labels, dropout=0.0)
    batch = collate([feats[0]], 0)
    logits = head(torch.randn(1, len(ids), 8))
    expected = torch.nn.functional.cross_entropy(logits[0][torch.tensor(tags) != -100],
                                                 torch.tensor([t for t in tags if t != -100]))
    assert torch.allclose(head.loss(logits, batch), expected)


# words that tokenize to nothing: soft hyphen, zero-width space / joiner, BOM, word joiner; one inside an entity,
# one first, one last (IOB1 as CoNLL-2003's eng.train)
EMPTY_WORDS_CONLL = ("\ufeff NN I-NP O\nEU NNP I-NP I-ORG\n\u00ad NN I-NP O\nrejects VBZ I-VP O\nEuro NNP I-NP I-ORG\n"
                     "\u200b NN I-NP I-ORG\nDisney NNP I-NP I-ORG\nand CC O O\nPeter NNP I-NP I-PER\n"
                     "\u200d NN I-NP O\nSmith NNP I-NP I-PER\n\u2060 NN I-NP O\n\n"
                     "German JJ I-NP I-MISC\n\u00ad NN I-NP O\ncall NN I-NP O\n")


@pytest.fixture(scope="module")
def spm_tok(tmp_path_factory):
    """A SentencePiece T5 tokenizer trained here (no SentencePiece model offline); it drops zero-width chars."""
    text = ["EU rejects German call to boycott British lamb .", "Peter Blackburn and Euro Disney",
            "The European Commission said on Thursday it disagreed with German advice",
            "ner sentence: Euro Disney: ORG; Peter Smith: PER; German: MISC; Brussels: LOC; none"] * 20
    model, folder = io.BytesIO(), tmp_path_factory.mktemp("spm")
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=model, vocab_size=80,
                                             hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                             minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    return T5Tokenizer.from_pretrained(folder)


def _empty_words_task(tmp_path):
    write(tmp_path / "eng.testa", EMPTY_WORDS_CONLL)
    task = task_cfg("conll03", tmp_path)
    return task, read_rows(task, "eval"), get_kind(task)


PERFECT_TAGS = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}


@pytest.mark.parametrize("tokenizer", ["tok", "spm_tok"])
def test_token_oracle_scores_one_with_words_that_tokenize_to_nothing(tmp_path, tokenizer, request):
    tokenizer = request.getfixturevalue(tokenizer)
    task, rows, kind = _empty_words_task(tmp_path)
    words = [kind.words_and_tags(task, r)[0] for r in rows]
    lone = tokenizer([w for s in words for w in s], add_special_tokens=False)["input_ids"]
    assert sum(not ids for ids in lone) >= 2  # the case at hand: words with no token of their own
    feats = kind.encode(task, rows, tokenizer, seq2seq=False)
    # an oracle model: the gold tag at every position the head is read at (predict_bert's argmax there)
    outputs = [[t for t in f["tag_ids"] if t != -100] for f in feats]
    assert [len(o) for o in outputs] == [len(w) for w in words]  # one position per word, empty ones included
    assert kind.score(task, feats, outputs, seq2seq=False) == PERFECT_TAGS
    predictions, golds, _ = kind.bert_records(task, rows, feats, outputs, [None] * len(rows))
    assert predictions == golds and golds[0][4:7] == ["B-ORG", "I-ORG", "I-ORG"]  # Euro <ZWSP> Disney


@pytest.mark.parametrize("tokenizer", ["tok", "spm_tok"])
def test_t5_tagging_oracle_with_words_that_tokenize_to_nothing(tmp_path, tokenizer, request):
    # a T5 model generating exactly the target ids: the decoded text has lost the invisible words
    tokenizer = request.getfixturevalue(tokenizer)
    task, rows, kind = _empty_words_task(tmp_path)
    feats = kind.encode(task, rows, tokenizer, seq2seq=True)
    outputs = tokenizer.batch_decode([f["labels"] for f in feats], skip_special_tokens=True)
    assert "\u200b" not in outputs[0] and "disney" in outputs[0].lower()
    assert kind.score(task, feats, outputs, seq2seq=True) == PERFECT_TAGS


def test_token_word_without_a_position_is_an_error_not_a_shift(tmp_path, tok, monkeypatch):
    monkeypatch.setattr("fpt.task_kinds.token_classification.visible_words", lambda tokenizer, sentences: sentences)
    task, rows, kind = _empty_words_task(tmp_path)
    with pytest.raises(TaskDataError, match=r"eng.testa:1: word 0 '\\ufeff' has no token of its own"):
        kind.encode(task, rows, tok, seq2seq=False)


def _squad_task(tmp_path, *overrides):
    context = "The cat sat on the mat. " * 6 + "Alice was born in Paris in 1990."
    data = {"data": [{"title": "T", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Where was Alice born?",
         "answers": [{"text": "Paris", "answer_start": context.index("Paris")}]},
        {"id": "q2", "question": "What is the dog called?", "answers": [], "is_impossible": True}]}]}]}
    write(tmp_path / "dev-v2.0.json", json.dumps(data))
    task = task_cfg("squad_v2", tmp_path, "task.max_length=32", "task.doc_stride=8", *overrides)
    return task, read_rows(task, "eval"), context


def test_span_features_doc_stride_and_answer_positions(tmp_path, tok):
    task, rows, context = _squad_task(tmp_path)
    kind = get_kind(task)
    train = kind.encode(task, rows, tok, seq2seq=False, train=True)
    assert len(train) > 2  # the long context is split into overlapping windows
    inside = [f for f in train.items if f["start_positions"] > 0]
    assert inside, "some window holds the answer"
    for f in inside:
        assert tok.decode(f["input_ids"][f["start_positions"]:f["end_positions"] + 1]) == "paris"
    assert all(f["start_positions"] == 0 for f, m in zip(train.items, train.meta) if m["example"] == 1)


def test_span_scoring_picks_best_span_over_windows_and_null(tmp_path, tok):
    task, rows, context = _squad_task(tmp_path)
    kind = get_kind(task)
    feats = kind.encode(task, rows, tok, seq2seq=False)
    outputs = []
    for f, meta in zip(feats.items, feats.meta):
        start = end = torch.full((len(f["input_ids"]),), -5.0)
        start, end = start.clone(), end.clone()
        if meta["example"] == 0:
            spans = [i for i, o in enumerate(meta["offsets"]) if o and context[o[0]:o[1]] == "Paris"]
            if spans:
                start[spans[0]], end[spans[0]] = 6.0, 6.0
        else:
            start[0], end[0] = 4.0, 4.0  # [CLS]: no answer
        logits = torch.stack([start, end], -1)[None]
        outputs += kind.predict_bert(_Fixed(logits), {}, task)
    metrics = kind.score_bert(task, feats, outputs)
    assert metrics["exact"] == 1.0 and metrics["HasAns_exact"] == 1.0 and metrics["NoAns_exact"] == 1.0
    loose = compose("task=squad_v2", "task.null_threshold=100").task
    assert kind.score_bert(loose, feats, outputs)["NoAns_exact"] == 0.0  # a high threshold never says "no answer"


class _Fixed:
    """A stand-in model that returns fixed logits."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, batch):
        return {"logits": self.logits}


def test_span_head_masks_padding():
    head = SpanHead(hidden=4)
    batch = {"attention_mask": torch.tensor([[1, 1, 0]])}
    logits = head(torch.randn(1, 3, 4), batch)
    assert (logits[0, 2] < -1e30).all() and torch.isfinite(logits[0, :2]).all()


def test_text_to_text_targets_record_and_squad_v2(tmp_path, tok):
    obj = {"idx": 0, "passage": {"text": "Tom met Ann.", "entities": [{"start": 0, "end": 2}, {"start": 8, "end": 10}]},
           "qas": [{"idx": 0, "query": "@placeholder met Ann.", "answers": [{"text": "Tom"}, {"text": "Tom"}]},
                   {"idx": 1, "query": "Tom met @placeholder.", "answers": [{"text": "Ann"}, {"text": "Ann."}]}]}
    write(tmp_path / "train.jsonl", json.dumps(obj) + "\n")
    task = task_cfg("record", tmp_path)
    kind = get_kind(task)
    train = kind.encode(task, read_rows(task, "train"), tok, seq2seq=True, target_prefix="<x>", train=True)
    targets = [tok.decode([t for t in f["labels"] if t >= 0], skip_special_tokens=True) for f in train.items]
    assert len(train) == 3  # one example per distinct gold answer: Tom | Ann, Ann.
    assert targets[0] == "< x > tom"
    source = tok.decode(train[0]["input_ids"], skip_special_tokens=True)
    assert source == "record query : @ placeholder met ann. entities : ann, tom passage : tom met ann."
    evals = kind.encode(task, read_rows(task, "train"), tok, seq2seq=True)
    assert len(evals) == 2 and evals.meta == [["Tom"], ["Ann", "Ann."]]
    squad_task, rows, _ = _squad_task(tmp_path)
    squad = get_kind(squad_task)
    assert [squad.targets(squad_task, r) for r in rows] == [["Paris"], ["no answer"]]
    assert squad.from_text(squad_task, " No answer ") == "" and squad.from_text(squad_task, "Paris") == "Paris"


def test_text_variants_select_templates(tmp_path, tok):
    row = {"word": "bank", "sentence1": "A river bank.", "sentence2": "A bank loan.", "label": "false",
           "idx": 0, "_source": "x:1"}
    write(tmp_path / "train.jsonl", json.dumps({k: v for k, v in row.items() if k != "_source"}) + "\n")
    for variant, expected in [("1", "[CLS] bank : a river bank. [SEP] bank : a bank loan. [SEP]"),
                              ("0", "[CLS] a river bank. a bank loan. does bank have the same meaning in both "
                                    "sentences? [SEP]")]:
        task = task_cfg("wic", tmp_path, f"task.text_variant={variant}")
        feats = get_kind(task).encode(task, read_rows(task, "train"), tok, seq2seq=False)
        assert tok.decode(feats[0]["input_ids"]) == expected


# --------------------------------------------------------------------------- the real files in ../shared/data
def test_real_conll2003_counts_and_iob2(shared_data, tok):
    task = compose("task=conll03", f"task.data_dir={shared_data / 'conll2003'}").task
    rows = read_rows(task, "eval")  # eng.testa
    assert len(rows) == 3250 and sum(len(r["tokens"]) for r in rows) == 51362
    kind = get_kind(task)
    tags = [kind.words_and_tags(task, r)[1] for r in rows]
    for seq in tags:  # valid IOB2: every I-X continues an X
        for prev, tag in zip(["O"] + seq, seq):
            assert not tag.startswith("I-") or prev[2:] == tag[2:], seq
    assert sum(t.startswith("B-") for seq in tags for t in seq) == 5942  # CoNLL-2003 dev entity count


def test_real_squad_multirc_and_superglue_labels(shared_data, tok):
    squad = read_rows(compose("task=squad", f"task.data_dir={shared_data / 'SQuAD'}").task, "eval")
    assert len(squad) == 10570 and len({r["title"] for r in squad}) == 48
    assert all(r["context"][s:s + len(t)] == t for r in squad[:500]
               for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"]))
    multirc = read_rows(compose("task=multirc", f"task.data_dir={shared_data / 'SuperGLUE/MultiRC'}").task, "eval")
    assert len(multirc) == 4848 and len({(r["idx"]["paragraph"], r["idx"]["question"]) for r in multirc}) == 953
    for name, folder, n in [("boolq", "BoolQ", 3270), ("wic", "WiC", 638), ("copa", "COPA", 100), ("wsc", "WSC", 104)]:
        task = compose(f"task={name}", f"task.data_dir={shared_data / 'SuperGLUE' / folder}").task
        feats = get_kind(task).encode(task, read_rows(task, "eval"), tok, seq2seq=False)
        assert len(feats) == n and set(feats.meta) == {0, 1}, name


def test_t5_tagging_spans_round_trip():
    words = ["Peter", "Blackburn", "visited", "New", "York", "Boston", "and", "the", "EU"]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-LOC", "O", "O", "I-ORG"]  # a stray I- starts a span
    assert spans(tags) == [(0, 2, "PER"), (3, 5, "LOC"), (5, 6, "LOC"), (8, 9, "ORG")]
    # as a WordPiece model decodes: lower case, spaces around ":"; unknown types and unmatched words are dropped
    generated = "peter blackburn : per; new york : loc; boston : loc; eu : org; paris : loc; and : date"
    assert tags_from_text(generated, words, ["PER", "LOC", "ORG"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-LOC", "O", "O", "B-ORG"]
    assert tags_from_text("none", words, ["PER"]) == ["O"] * len(words)


def test_ontonotes_and_conll12_files_encode(tmp_path, tok):
    write(tmp_path / "train.txt", "Obama B-PERSON\nvisited O\nNew B-GPE\nYork I-GPE\nin O\n2009 B-DATE\n\n"
                                  "Apple B-ORG\nsold O\nphones O\n")
    task = task_cfg("ontonotes", tmp_path)
    feats = get_kind(task).encode(task, read_rows(task, "train"), tok, seq2seq=False, train=True)
    assert feats.meta == [["B-PERSON", "O", "B-GPE", "I-GPE", "O", "B-DATE"], ["B-ORG", "O", "O"]]
    assert get_kind(task).num_labels(task) == 37  # O + B-/I- of 18 types
    write(tmp_path / "conll2012.train.txt", "1 He bought a car ||| B-ARG0 B-V B-ARG1 I-ARG1\n")
    task = task_cfg("conll12", tmp_path)
    rows = read_rows(task, "train")
    assert get_kind(task).targets(task, rows[0]) == ["He: ARG0; bought: V; a car: ARG1"]
    assert get_kind(task).source(task, rows[0]) == "srl predicate: bought sentence: He bought a car"


def test_real_glue_tsv_rows_equal_pandas(shared_data):
    """The standard-library TSV reader gives GLUE's rows exactly as pandas reads them (as strings, unquoted)."""
    import pandas as pd

    for name, folder, split, file in [("rte", "RTE", "train", "train.tsv"), ("cola", "CoLA/glue", "eval", "dev.tsv")]:
        task = compose(f"task={name}", f"task.data_dir={shared_data / 'GLUE' / folder}").task
        frame = pd.read_csv(shared_data / "GLUE" / folder / file, sep="\t", quoting=3, na_filter=False, dtype=str,
                            header=0 if task.header else None, names=list(task.column_names or []) or None)
        ours = read_rows(task, split)
        if split == "train":
            ours = sorted(ours, key=lambda r: int(r["_source"].rsplit(":", 1)[1]))
        assert [{k: v for k, v in r.items() if k != "_source"} for r in ours] == frame.to_dict("records"), name


# --------------------------------------------------------------------------- long fields, thin training sets
def test_a_tsv_field_of_a_megabyte_is_read_whole_and_an_unreadable_one_names_file_and_line(tmp_path, monkeypatch):
    long = "word " * 200_000  # 1 MB: past the csv module's own field limit (128 KiB)
    write(tmp_path / "train.tsv", f"sentence\tlabel\nshort\t0\n{long}\t1\n")
    task = task_cfg("sst2", tmp_path)
    limit = csv.field_size_limit()
    rows = read_rows(task, "train")
    assert sorted((r["sentence"], r["label"]) for r in rows) == [("short", "0"), (long, "1")]
    assert csv.field_size_limit() == limit  # the process-wide limit is the caller's again
    monkeypatch.setattr(tabular, "FIELD_LIMIT", 1000)
    with pytest.raises(TaskDataError, match=re.escape(f"{tmp_path / 'train.tsv'}:3: not readable as TSV (field "
                                                      f"larger than field limit (1000))")):
        read_rows(task, "train")


def test_training_set_warnings_name_the_batch_the_rows_and_the_one_class(tmp_path, caplog):
    write(tmp_path / "train.tsv", "sentence\tlabel\n" + "a fine film\t1\n" * 3)
    task = task_cfg("sst2", tmp_path)
    with caplog.at_level(logging.WARNING, logger="fpt"):
        warnings = training_set_warnings(task, read_rows(task, "train"), batch_size=100_000)
    assert [r.getMessage() for r in caplog.records] == warnings and len(warnings) == 2
    assert warnings[0].startswith("trainer.batch_size=100000 is larger than the training set of task sst2 (3 rows)")
    assert "holds one class only: label='1' of task.labels ['0', '1']" in warnings[1]
    write(tmp_path / "train.tsv", "sentence\tlabel\na fine film\t1\na dull film\t0\n")
    assert training_set_warnings(task, read_rows(task, "train"), batch_size=2) == []
