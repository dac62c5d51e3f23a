"""Tests for fpt.metrics against hand-computed and library reference values."""

import math

import numpy as np
import pytest
from helpers import compose
from scipy.stats import pearsonr, spearmanr
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import f1_score, matthews_corrcoef

from fpt.batching import Features
from fpt.metrics import (
    METRICS,
    UNREADABLE,
    as_wrong,
    compute_metrics,
    iob1_to_iob2,
    normalize_answer,
    pearson_spearman,
    seqeval_f1,
    squad_exact,
    squad_f1,
    squad_v2_best_thresh,
)
from fpt.task_kinds import get_kind
from fpt.tasks import read_rows

approx = pytest.approx

# -----------------------------------------------------------------------------
# registry

def test_registry_names():
    assert set(METRICS) == {
        "accuracy", "f1", "f1_macro", "matthews", "pearson_spearman", "accuracy_f1",
        "accuracy_macro_f1", "squad", "squad_v2", "record", "multirc", "seqeval", "rouge", "retrieval",
    }

def test_unknown_metric_names_it_and_lists_known():
    with pytest.raises(ValueError) as err:
        compute_metrics(["accuracy", "bleurt"], [1], [1])
    message = str(err.value)
    assert "'bleurt'" in message
    assert "accuracy" in message and "squad_v2" in message and "rouge" in message

def test_compute_metrics_merges_outputs():
    out = compute_metrics(["accuracy", "matthews"], [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1])
    assert out == approx({"accuracy": 4 / 6, "matthews": 1 / 3})

def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        compute_metrics(["accuracy"], [1, 0], [1])

# -----------------------------------------------------------------------------
# classification

def test_matthews_by_hand():
    # TP=2 FP=1 TN=2 FN=1 -> (2*2 - 1*1) / sqrt(3*3*3*3) = 3/9
    out = METRICS["matthews"]([1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1])
    assert out == {"matthews": approx(1 / 3)}

def test_pearson_spearman_by_hand_and_scipy():
    # values are their own ranks: d = [-1, 1, -1, 1, 0], rho = 1 - 6*4 / (5*24) = 0.8 (= pearson here)
    out = pearson_spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert out == approx({"pearson": 0.8, "spearman": 0.8, "corr": 0.8})
    preds, refs = [0.1, 2.5, 2.0, 4.8, 3.3, 1.0], [0.0, 3.0, 1.5, 5.0, 4.0, 0.5]
    out = pearson_spearman(preds, refs)
    pearson, spearman = pearsonr(preds, refs)[0], spearmanr(preds, refs)[0]
    assert out == approx({"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2})
    assert out["pearson"] != approx(out["spearman"])

def test_accuracy_f1_by_hand():
    # acc 3/4; TP=2 FP=1 FN=0 -> F1 = 2*2 / (2*2 + 1 + 0) = 0.8
    out = METRICS["accuracy_f1"]([1, 0, 1, 1], [1, 0, 0, 1])
    assert out == approx({"accuracy": 0.75, "f1": 0.8, "mean": 0.775})

def test_f1_positive_label_is_one():
    # swapping the labels swaps which class is scored: TP=0 for label 1 here
    assert METRICS["f1"]([0, 0, 1], [0, 0, 0]) == {"f1": 0.0}
    assert METRICS["f1"]([1, 1, 0], [1, 0, 0]) == {"f1": approx(2 / 3)}

def test_accuracy_macro_f1_cb_by_hand():
    # class 0: TP1 FP1 FN1 -> 0.5; class 1: TP2 FP0 FN1 -> 0.8; class 2: TP1 FP1 FN0 -> 2/3
    preds, refs = [0, 1, 2, 0, 1, 2], [0, 1, 2, 1, 1, 0]
    macro = (0.5 + 0.8 + 2 / 3) / 3
    out = METRICS["accuracy_macro_f1"](preds, refs)
    assert out == approx({"accuracy": 4 / 6, "f1_macro": macro, "mean": (4 / 6 + macro) / 2})

# -----------------------------------------------------------------------------
# SQuAD

@pytest.mark.parametrize("raw, normalized", [
    ("The  Cat!", "cat"),
    ("an apple, a pear", "apple pear"),
    ("Theatre of the Absurd", "theatre of absurd"),  # articles only as whole words
    ("  U.S.-led\tcoalition ", "usled coalition"),   # punctuation removed, not split on
    ("A", ""),
])
def test_normalize_answer_official_cases(raw, normalized):
    assert normalize_answer(raw) == normalized

def test_squad_f1_partial_overlap_by_hand():
    # pred tokens [cat, sat, on, mat] (4), gold [black, cat, sat] (3), common 2
    # P = 2/4, R = 2/3, F1 = 2*(1/2)*(2/3) / (1/2 + 2/3) = (2/3) / (7/6) = 4/7
    assert squad_f1("The cat sat on the mat.", "a black cat sat") == approx(4 / 7)
    assert squad_exact("The cat sat on the mat.", "cat sat on mat") == 1.0
    assert squad_exact("cat sat", "cat sat down") == 0.0

def test_squad_f1_no_answer_rule():
    assert squad_f1("", "") == 1.0
    assert squad_f1("", "Paris") == 0.0
    assert squad_f1("Paris", "") == 0.0
    assert squad_f1("the", "") == 1.0  # "the" normalizes to no tokens

def test_squad_v1_gold_that_normalizes_to_nothing_as_official_script():
    # SQuAD 1.1 has golds "." : the official v1.1 script gives F1 0 when no token is shared, also when both
    # sides normalize to nothing, while its exact match compares the normalized strings ("" == "": 1)
    assert METRICS["squad"]([""], [["."]]) == {"exact_match": 1.0, "f1": 0.0}
    assert METRICS["squad"](["the"], [["."]]) == {"exact_match": 1.0, "f1": 0.0}
    assert METRICS["squad"](["."], [[".", "a dot"]]) == {"exact_match": 1.0, "f1": 0.0}
    assert METRICS["record"]([""], [["."]]) == {"exact_match": 1.0, "f1": 0.0}  # ReCoRD's script: v1.1's F1
    # SQuAD 2.0's script differs: an empty answer to a question without (readable) gold scores 1
    assert METRICS["squad_v2"]([""], [["."]])["f1"] == 1.0

def test_real_squad_v1_dev_golds_that_normalize_to_nothing(shared_data):
    rows = read_rows(compose("task=squad", f"task.data_dir={shared_data / 'SQuAD'}").task, "eval")
    golds = [r["answers"]["text"] for r in rows if any(not normalize_answer(t) for t in r["answers"]["text"])]
    assert sum(not normalize_answer(t) for g in golds for t in g) == 3  # the three "." golds
    # an empty answer to those questions: EM 1 (the "." gold normalizes to ""), F1 0 (no shared token)
    assert METRICS["squad"]([""] * len(golds), golds) == {"exact_match": 1.0, "f1": 0.0}

def test_squad_v1_max_over_golds():
    # ex1: exact hit. ex2: vs "black cat sat" F1 4/7; vs "a mat" P=1/4 R=1 F1=0.4 -> max 4/7
    preds = ["Denver Broncos", "the cat sat on mat"]
    refs = [["Broncos", "Denver Broncos"], ["black cat sat", "a mat"]]
    out = METRICS["squad"](preds, refs)
    assert out == approx({"exact_match": 0.5, "f1": (1 + 4 / 7) / 2})

V2_PREDS = ["Paris", "no answer", "No Answer ", "Berlin", "the red car"]
V2_REFS = [["Paris", "paris, France"], ["London"], [], [""], ["red car parked"]]
# per example: has_ans [T, T, F, F, T]; exact [1, 0, 1, 0, 0]
# f1 [1, 0, 1, 0, 0.8]  (ex5: P=2/2, R=2/3 -> 2*(2/3)/(5/3) = 0.8)

def test_squad_v2_has_ans_no_ans_split():
    out = METRICS["squad_v2"](V2_PREDS, V2_REFS)
    assert out == approx({
        "exact": 2 / 5, "f1": 2.8 / 5, "total": 5,
        "HasAns_exact": 1 / 3, "HasAns_f1": 1.8 / 3, "HasAns_total": 3,
        "NoAns_exact": 1 / 2, "NoAns_f1": 1 / 2, "NoAns_total": 2,
    })

def test_squad_v2_no_answer_text_off():
    # without the mapping "No Answer " is a real answer and misses the no-answer gold
    out = METRICS["squad_v2"](V2_PREDS, V2_REFS, no_answer_text=None)
    assert out["NoAns_exact"] == 0.0 and out["NoAns_f1"] == 0.0
    assert out["HasAns_f1"] == approx(1.8 / 3)

def test_squad_v2_empty_split_left_out():
    out = METRICS["squad_v2"](["Paris"], [["Paris"]])
    assert out["NoAns_total"] == 0 and "NoAns_exact" not in out
    assert out["HasAns_exact"] == 1.0

def test_squad_v2_best_thresh_by_hand():
    # order by na_prob: ex1 .1, ex5 .3, ex4 .6, ex3 .8, ex2 .9; start = 2 (all no-answer)
    # exact: +1 -> 3 (thresh .1), +0, -1 (Berlin on NoAns), +0, +0 -> best 3/5 at .1
    # f1:    +1 -> 3 (.1), +0.8 -> 3.8 (.3), -1, +0, +0           -> best 3.8/5 at .3
    out = squad_v2_best_thresh(V2_PREDS, [0.1, 0.9, 0.8, 0.6, 0.3], V2_REFS)
    assert out == approx({"best_exact": 0.6, "best_exact_thresh": 0.1, "best_f1": 0.76, "best_f1_thresh": 0.3})

def test_record_max_over_answers():
    # ex1 vs "Obama": P=1/2 R=1 -> 2/3; vs "Barack Obama": P=R=1/2 -> 1/2; max 2/3, EM 0
    # ex2 "U.S." and "US" both normalize to "us"
    preds = ["President Obama", "U.S."]
    refs = [["Barack Obama", "Obama"], ["United States", "US"]]
    out = METRICS["record"](preds, refs)
    assert out == approx({"exact_match": 0.5, "f1": (2 / 3 + 1) / 2})

# -----------------------------------------------------------------------------
# MultiRC

def test_multirc_by_hand():
    # q1 all right; q2 one wrong; q3 one wrong -> em = 1/3
    # options: TP=3 FP=1 FN=1 -> P = R = 3/4, f1a = 0.75
    refs = [{"question_id": q, "label": y} for q, y in
            [("q1", 1), ("q2", 0), ("q1", 0), ("q3", 1), ("q1", 1), ("q2", 1), ("q3", 0)]]
    preds = [1, 1, 0, 0, 1, 1, 0]
    out = METRICS["multirc"](preds, refs)
    assert out == approx({"f1a": 0.75, "em": 1 / 3, "mean": (0.75 + 1 / 3) / 2})

# -----------------------------------------------------------------------------
# sequence labelling

IOB1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-ORG", "O", "I-MISC"]
IOB2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "I-ORG", "O", "B-MISC"]
ENTITIES = [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 5, 6), ("MISC", 8, 8)]

def test_iob1_to_iob2():
    assert iob1_to_iob2(IOB1) == IOB2
    assert iob1_to_iob2(["I-PER", "I-LOC", "I-LOC"]) == ["B-PER", "B-LOC", "I-LOC"]

def test_converted_tags_give_right_entities():
    assert get_entities(iob1_to_iob2(IOB1)) == ENTITIES
    assert seqeval_f1([IOB2], [iob1_to_iob2(IOB1)]) == approx({"precision": 1, "recall": 1, "f1": 1, "accuracy": 1})

def test_raw_iob1_default_mode_equals_strict_mode_differs():
    # default (conlleval-like) chunking starts an entity at I- after O or another type: same 5 entities
    assert get_entities(IOB1) == ENTITIES
    assert seqeval_f1([IOB1], [IOB2])["f1"] == 1.0
    # strict IOB2 only accepts entities opening with B-: raw IOB1 keeps just the B-LOC one
    # P = 1/1, R = 1/5 -> F1 = 2*0.2/1.2 = 1/3
    strict = seqeval_f1([IOB1], [IOB2], mode="strict")
    assert strict["precision"] == 1.0 and strict["recall"] == approx(0.2) and strict["f1"] == approx(1 / 3)
    # declaring the inputs IOB1 converts them first
    assert seqeval_f1([IOB1], [IOB1], scheme="IOB1", mode="strict")["f1"] == 1.0

def test_seqeval_micro_scores_by_hand():
    # prediction misses MISC: 4 of 4 predicted right, 4 of 5 gold found; 8 of 9 tags right
    pred = IOB2[:-1] + ["O"]
    out = seqeval_f1([pred, ["O", "B-PER"]], [IOB2, ["O", "B-PER"]])
    # with the second sentence: 5 predicted, 6 gold, 5 correct; 10 of 11 tags
    assert out == approx({"precision": 1.0, "recall": 5 / 6, "f1": 2 * (5 / 6) / (1 + 5 / 6), "accuracy": 10 / 11})

# -----------------------------------------------------------------------------
# ROUGE

def test_rouge_by_hand():
    # unigrams: 6 each, overlap the x2, cat, on, mat = 5 -> P = R = F = 5/6
    # bigrams: 5 each, overlap "the cat", "on the", "the mat" = 3 -> 3/5
    # LCS "the cat on the mat" = 5 -> 5/6
    out = METRICS["rouge"](["the cat lay on the mat"], ["the cat sat on the mat"], use_stemmer=False)
    assert out == approx({"rouge1": 5 / 6, "rouge2": 3 / 5, "rougeL": 5 / 6})

def test_rouge_stemming_and_averaging():
    assert METRICS["rouge"](["cats running"], ["cat run"], use_stemmer=False)["rouge1"] == 0.0
    assert METRICS["rouge"](["cats running"], ["cat run"])["rouge1"] == 1.0  # Porter: cats->cat, running->run
    out = compute_metrics(["rouge"], ["the cat lay on the mat", "cats running"], ["the cat sat on the mat", "cat run"])
    assert out["rouge1"] == approx((5 / 6 + 1) / 2)
    assert not math.isnan(out["rougeL"])

# -----------------------------------------------------------------------------
# unreadable text-to-text answers (-1): wrong answers, never a class

def test_macro_f1_unreadable_answer_is_a_wrong_class():
    # the -1 on gold 2 counts as class 0 (the next, cyclically): class 0: TP2 FP1 -> 0.8; class 1: 1;
    # class 2: TP1 FN1 -> 2/3; mean 37/45 (as a miss only it would be 8/9, better than any wrong answer)
    preds, refs = [0, 1, 2, 0, 1, -1], [0, 1, 2, 0, 1, 2]
    assert METRICS["f1_macro"](preds, refs, labels=range(3)) == {"f1_macro": approx(37 / 45)}
    assert METRICS["f1_macro"](preds, refs) == {"f1_macro": approx(37 / 45)}  # labels=None: classes seen but -1
    out = compute_metrics(["accuracy_macro_f1"], preds, refs, labels=range(3))
    assert out == approx({"accuracy": 5 / 6, "f1_macro": 37 / 45, "mean": (5 / 6 + 37 / 45) / 2})

def test_macro_f1_over_the_label_set():
    # class 3 is in neither list: no F1, left out of the mean (not counted as 0), as sklearn's zero_division=nan
    preds, refs = [0, 1, 1], [0, 1, 0]
    assert METRICS["f1_macro"](preds, refs, labels=range(4)) == {"f1_macro": approx((2 / 3 + 2 / 3) / 2)}
    assert METRICS["f1_macro"](preds, refs, labels=range(4))["f1_macro"] == approx(
        f1_score(refs, preds, labels=range(4), average="macro", zero_division=np.nan))
    # class 2 is only predicted: F1 0 counts
    assert METRICS["f1_macro"]([0, 1, 2], [0, 1, 1], labels=range(3)) == {"f1_macro": approx((1 + 2 / 3 + 0) / 3)}
    with pytest.raises(ValueError, match="unreadable"):
        METRICS["f1_macro"]([0], [0], labels=[-1, 0])

def test_options_go_only_to_metrics_that_take_them():
    out = compute_metrics(["accuracy", "f1_macro"], [0, -1], [0, 1], labels=range(2))
    assert out == approx({"accuracy": 0.5, "f1_macro": 1 / 3})  # the -1 is class 0: class 0 F1 2/3, class 1: 0

def _simulated_cola(share, seed=0, n=1043):
    """CoLA-like dev labels (69% acceptable), a model right 82% of the time, `share` of its answers unreadable."""
    rng = np.random.default_rng(seed)
    refs = (rng.random(n) < 0.69).astype(int)
    preds = np.where(rng.random(n) < 0.82, refs, 1 - refs)
    preds[rng.random(n) < share] = UNREADABLE
    return preds.tolist(), refs.tolist()

@pytest.mark.parametrize("share", [0.1, 0.3])
def test_matthews_counts_unreadable_as_wrong_simulated_cola(share):
    preds, refs = _simulated_cola(share)
    as_other_class = [1 - r if p == UNREADABLE else p for p, r in zip(preds, refs)]  # the wrong answer, by hand
    expected = matthews_corrcoef(refs, as_other_class)
    third_class = matthews_corrcoef(refs, preds)  # -1 as a class of its own: the inflated number
    assert third_class > expected + 0.05
    assert METRICS["matthews"](preds, refs) == {"matthews": approx(expected)}
    assert compute_metrics(["matthews"], preds, refs, labels=range(2)) == {"matthews": approx(expected)}

def test_matthews_multiclass_unreadable_is_the_next_class():
    preds, refs = [0, 1, 2, -1, -1, 1, 2], [0, 1, 2, 2, 0, 0, 1]
    expected = matthews_corrcoef(refs, [0, 1, 2, 0, 1, 1, 2])
    assert METRICS["matthews"](preds, refs, labels=range(3)) == {"matthews": approx(expected)}

def test_f1_unreadable_on_a_negative_gold_is_a_false_positive():
    # gold 0 answered unreadably: a wrong answer there is 1, a false positive (as negative it would be a free TN)
    assert METRICS["f1"]([1, -1], [1, 0]) == {"f1": approx(2 / 3)}
    assert METRICS["f1"]([1, -1], [1, 1]) == {"f1": approx(2 / 3)}  # on a positive gold: a false negative
    refs = [{"question_id": "q", "label": 0}, {"question_id": "q", "label": 1}]
    assert METRICS["multirc"]([-1, 1], refs) == approx({"f1a": 2 / 3, "em": 0.0, "mean": 1 / 3})

CLASS_METRICS = ["accuracy", "f1", "matthews", "accuracy_f1", "f1_macro", "accuracy_macro_f1"]

@pytest.mark.parametrize("name", CLASS_METRICS)
def test_every_class_metric_scores_unreadable_as_that_wrong_answer(name):
    preds, refs = _simulated_cola(0.2, seed=1, n=200)
    wrong = [1 - r if p == UNREADABLE else p for p, r in zip(preds, refs)]
    right = [r if p == UNREADABLE else p for p, r in zip(preds, refs)]
    out = compute_metrics([name], preds, refs, labels=range(2))
    assert out == approx(compute_metrics([name], wrong, refs, labels=range(2)))
    assert all(out[k] < v for k, v in compute_metrics([name], right, refs, labels=range(2)).items())

def test_as_wrong_needs_the_reference_among_two_or_more_classes():
    assert as_wrong([-1, -1, 1], [0, 2, 1], range(3)) == [1, 0, 1]
    with pytest.raises(ValueError, match="labels"):
        as_wrong([-1], [1], [1])
    with pytest.raises(ValueError, match="labels"):
        METRICS["matthews"]([-1, -1], [1, 1])  # only class 1 seen: which class is wrong is unknown

def test_pearson_spearman_unreadable_score_is_the_far_end_of_the_range():
    # gold 0.0 answered with no number: it counts as 5.0 (the far end), never as a lucky right 0.0
    refs = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    out = pearson_spearman([None, 1.0, 2.0, 3.0, 4.0, 5.0], refs)
    as_far_end = [5.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert out["pearson"] == approx(pearsonr(as_far_end, refs)[0]) and out["pearson"] < 0.9
    assert out["spearman"] == approx(spearmanr(as_far_end, refs)[0])
    assert pearson_spearman([1.0, None, 2.0], [1.0, 4.0, 2.0]) == approx(pearson_spearman([1.0, 1.0, 2.0],
                                                                                         [1.0, 4.0, 2.0]))

def test_t5_classification_scores_cb_with_unreadable_share():
    task = compose("task=cb", "model=tiny-t5").task
    kind = get_kind(task)
    outputs = ["entailment", "contradiction", "neutral", "Entailment ", "contradiction", "maybe"]
    refs = [0, 1, 2, 0, 1, 2]
    out = kind.score(task, Features([{}] * 6, meta=refs), outputs, seq2seq=True)
    assert out == approx({"accuracy": 5 / 6, "f1_macro": 37 / 45, "mean": (5 / 6 + 37 / 45) / 2, "unreadable": 1 / 6})
    bert = kind.score(task, Features([{}] * 6, meta=refs), [0, 1, 2, 0, 1, 1], seq2seq=False)
    assert "unreadable" not in bert and bert["accuracy"] == approx(5 / 6)

def test_t5_regression_reports_unreadable_numbers():
    task = compose("task=stsb", "model=tiny-t5").task
    out = get_kind(task).score(task, Features([{}] * 4, meta=[1.0, 2.0, 3.0, 4.0]), ["1.0", "2.2", "x", "3.8"],
                               seq2seq=True)
    assert out["unreadable"] == 0.25
    # no number, "nan" and "inf" are all unreadable; on gold 0.0 they count as 5.0, never as a right 0.0
    refs, answers = [0.0, 0.0, 0.0, 1.0, 2.0, 5.0], ["zero", "nan", "inf", "1.0", "2.0", "5.0"]
    out = get_kind(task).score(task, Features([{}] * 6, meta=refs), answers, seq2seq=True)
    assert out["unreadable"] == 0.5
    assert out["pearson"] == approx(pearsonr([5.0, 5.0, 5.0, 1.0, 2.0, 5.0], refs)[0])
