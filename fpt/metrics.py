"""
Evaluation metrics for the prompt tuning experiments.

Every metric is a function `metric(predictions, references) -> dict[str, float]`
and is registered under a short name (`@register_metric(name, sample=...)`, in METRICS), so a config can say
`metrics: [accuracy_f1]` and call `compute_metrics(names, predictions, references)`.

Scale: accuracy, F1, exact match and correlations are fractions in 0..1,
not percentages (the official SQuAD scripts print 0..100; multiply by 100 to compare).
Counts (e.g. HasAns_total) are plain numbers of examples.

Classification predictions are class indices; a generated (T5) answer that is no verbalizer is UNREADABLE
(-1). It is a wrong answer, never a class of its own: every metric scores it as the wrong class `as_wrong`
picks (the class after its reference's in the task's label order, cyclically; for two classes the other one),
so it never scores better than that wrong answer. Regression (STS-B): an answer that is no number is None and
counts as the end of the references' range farther from its reference (`pearson_spearman`). The share of
unreadable answers is reported next to the metrics (fpt/task_kinds/base.py).
scikit-learn and scipy are imported by the metrics that use them, so importing this module is cheap.
"""

import inspect
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

from .extras import require
from .registry import Registry

UNREADABLE = -1  # a generated answer that matches no verbalizer


def sk_f1_score(*args, **kwargs):
    from sklearn.metrics import f1_score
    return f1_score(*args, **kwargs)

# -----------------------------------------------------------------------------
# registry

@dataclass(frozen=True)
class Metric:
    """A registered metric: its function and a tiny (predictions, references) sample, which the start-up check
    (fpt/evaluation.py metric_keys) scores to learn the keys the metric returns."""
    name: str
    fn: Callable
    sample: tuple

    def __call__(self, predictions, references, **options) -> dict[str, float]:
        return self.fn(predictions, references, **options)


METRICS = Registry("metric", "task.metrics[]")  # task.metrics names


def register_metric(name: str, *, sample: tuple):
    """Function decorator: `metric(predictions, references, [options]) -> dict` is task.metrics name `name`;
    `sample` (required) is (predictions, references) it scores at start-up."""
    if not (isinstance(sample, tuple) and len(sample) == 2):
        raise ValueError(f"metric {name!r}: sample={sample!r}: expected (predictions, references), which the "
                         f"start-up check scores")

    def register(fn):
        METRICS.add(name, Metric(name, fn, sample))
        return fn
    return register

# -----------------------------------------------------------------------------
# helpers

def _check_lengths(predictions, references):
    """Raise if predictions and references do not pair up one to one."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    if len(predictions) == 0:
        raise ValueError("got no predictions to score")

def _mean(values):
    return float(sum(values) / len(values))

def as_wrong(predictions, references, labels):
    """`predictions` with each UNREADABLE one replaced by a wrong class of `labels` (the task's classes, in order):
    the class after its reference's, cyclically (for two classes, the other one).

    One rule for every metric, deterministic, and a real wrong answer of the task: an unreadable answer scores
    exactly as that wrong answer (not as a class of its own, which MCC would reward, nor as a mere miss).
    """
    labels = list(labels)
    if UNREADABLE in labels:
        raise ValueError(f"labels {labels} include the unreadable marker {UNREADABLE}")
    out = list(predictions)
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        if prediction == UNREADABLE:
            if len(labels) < 2 or reference not in labels:
                raise ValueError(f"cannot score the unreadable answer to reference {reference!r} as a wrong class of "
                                 f"labels {labels}: give the task's classes (labels=..., at least two)")
            out[i] = labels[(labels.index(reference) + 1) % len(labels)]
    return out

def _classes(predictions, references):
    """The classes seen in either list, except UNREADABLE."""
    return sorted((set(references) | set(predictions)) - {UNREADABLE})

# -----------------------------------------------------------------------------
# classification (GLUE / SuperGLUE)

@register_metric("accuracy", sample=([0, 1], [0, 1]))
def accuracy(predictions, references):
    """Fraction of predictions equal to their reference label."""
    _check_lengths(predictions, references)
    return {"accuracy": _mean([p == r for p, r in zip(predictions, references)])}

def _positive(labels):
    """1 where a label is the positive class 1, else 0."""
    return [int(x == 1) for x in labels]

def _binary_f1(predictions, references):
    """F1 of the positive class 1; an UNREADABLE prediction is the other class of 0/1 than its reference."""
    predictions = as_wrong(predictions, references, (0, 1))
    return float(sk_f1_score(_positive(references), _positive(predictions), pos_label=1, average="binary",
                             zero_division=0))

@register_metric("f1", sample=([0, 1], [0, 1]))
def f1(predictions, references):
    """Binary F1 with positive label 1 (labels are ints 0/1; an UNREADABLE prediction is the wrong one of them)."""
    _check_lengths(predictions, references)
    return {"f1": _binary_f1(predictions, references)}

@register_metric("f1_macro", sample=([0, 1], [0, 1]))
def f1_macro(predictions, references, labels=None):
    """Unweighted mean of per-class F1 (CB) over `labels`, the task's class indices.

    labels=None: the classes seen in either list, except UNREADABLE. An UNREADABLE prediction is the wrong
    class `as_wrong` picks: a miss for its reference's class and a false positive of that class. A class of
    `labels` that is in neither list (after that) has no F1 and is left out of the mean rather than counted as
    0, as sklearn's zero_division=nan and SuperGLUE's CB scoring (macro F1 over the classes present).
    """
    _check_lengths(predictions, references)
    labels = list(_classes(predictions, references) if labels is None else labels)
    predictions = as_wrong(predictions, references, labels)
    seen = set(references) | set(predictions)
    present = [c for c in labels if c in seen]
    if not present:
        return {"f1_macro": 0.0}
    return {"f1_macro": float(sk_f1_score(references, predictions, labels=present, average="macro",
                                          zero_division=0))}

@register_metric("matthews", sample=([0, 1], [0, 1]))
def matthews(predictions, references, labels=None):
    """Matthews correlation, as GLUE CoLA (sklearn matthews_corrcoef), in -1..1.

    labels: the task's class indices (None: the classes seen, except UNREADABLE). An UNREADABLE prediction
    counts as the wrong class `as_wrong` picks (CoLA: the other class), never as a third class.
    """
    from sklearn.metrics import matthews_corrcoef
    _check_lengths(predictions, references)
    labels = _classes(predictions, references) if labels is None else labels
    return {"matthews": float(matthews_corrcoef(references, as_wrong(predictions, references, labels)))}

@register_metric("pearson_spearman", sample=([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]))
def pearson_spearman(predictions, references):
    """Pearson and Spearman correlation of float scores (STS-B); `corr` is their mean.

    A None prediction (a T5 answer that is no number) counts as the end of the references' range (their
    lowest or highest score) farther from its reference: a wrong answer, never one that happens to be right.
    """
    import numpy as np
    from scipy.stats import pearsonr, spearmanr
    _check_lengths(predictions, references)
    low, high = min(references), max(references)
    predictions = [(low if r - low >= high - r else high) if p is None else p for p, r in zip(predictions, references)]
    pred = np.asarray(predictions, dtype=float)
    ref = np.asarray(references, dtype=float)
    pearson = float(pearsonr(pred, ref)[0])
    spearman = float(spearmanr(pred, ref)[0])
    return {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}

@register_metric("accuracy_f1", sample=([0, 1], [0, 1]))
def accuracy_f1(predictions, references):
    """Accuracy, binary F1 and their mean (MRPC, QQP)."""
    out = {**accuracy(predictions, references), **f1(predictions, references)}
    out["mean"] = (out["accuracy"] + out["f1"]) / 2
    return out

@register_metric("accuracy_macro_f1", sample=([0, 1], [0, 1]))
def accuracy_macro_f1(predictions, references, labels=None):
    """Accuracy, macro F1 over the classes and their mean (SuperGLUE CB)."""
    out = {**accuracy(predictions, references), **f1_macro(predictions, references, labels=labels)}
    out["mean"] = (out["accuracy"] + out["f1_macro"]) / 2
    return out

# -----------------------------------------------------------------------------
# SQuAD v1.1 / v2.0 and ReCoRD

def normalize_answer(text):
    """Official SQuAD normalization: lowercase, drop punctuation, drop a/an/the, squeeze whitespace."""
    text = text.lower()
    punctuation = set(string.punctuation)
    text = "".join(ch for ch in text if ch not in punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())

def answer_tokens(text):
    """Normalized tokens of an answer; the empty string (no answer) has none."""
    if not text:
        return []
    return normalize_answer(text).split()

def squad_exact(prediction, gold):
    """1.0 if the normalized strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))

def _token_f1(pred_tokens, gold_tokens):
    """F1 of the shared tokens; 0 when none is shared."""
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)

def squad_f1(prediction, gold):
    """
    Token-overlap F1 between two answers, as the official SQuAD v2.0 script.
    If either side has no tokens (no answer), F1 is 1 when both are empty, else 0.
    """
    pred_tokens = answer_tokens(prediction)
    gold_tokens = answer_tokens(gold)
    if len(pred_tokens) == 0 or len(gold_tokens) == 0:
        return float(pred_tokens == gold_tokens)
    return _token_f1(pred_tokens, gold_tokens)

def squad_v1_f1(prediction, gold):
    """
    Token-overlap F1 as the official SQuAD v1.1 (and ReCoRD) script: 0 whenever no token is shared, also when
    both sides normalize to nothing (a gold "." against an empty prediction: F1 0, while exact match is 1).
    """
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())

def _max_over_golds(score_fn, prediction, golds):
    return max(score_fn(prediction, gold) for gold in golds)

@register_metric("squad", sample=(["a"], [["a"]]))
def squad(predictions, references):
    """
    SQuAD v1.1. predictions: answer strings; references: lists of gold answer strings.
    Each example scores the max over its golds, as the official v1.1 script (`squad_v1_f1`).
    Returns exact_match and f1.
    """
    _check_lengths(predictions, references)
    exact = [_max_over_golds(squad_exact, p, golds) for p, golds in zip(predictions, references)]
    f1s = [_max_over_golds(squad_v1_f1, p, golds) for p, golds in zip(predictions, references)]
    return {"exact_match": _mean(exact), "f1": _mean(f1s)}

@register_metric("record", sample=(["a"], [["a"]]))
def record(predictions, references):
    """
    ReCoRD: predictions are entity strings, references lists of gold entity strings.
    Max over golds with SQuAD v1.1 normalization, as the official ReCoRD script.
    """
    out = squad(predictions, references)
    return {"exact_match": out["exact_match"], "f1": out["f1"]}

def _prediction_text(prediction, no_answer_text):
    """Map the text-to-text 'no answer' string to the empty answer."""
    if no_answer_text is not None and prediction.strip().lower() == no_answer_text.strip().lower():
        return ""
    return prediction

def _squad_v2_raw_scores(predictions, references, no_answer_text):
    """Per-example exact and f1 as the official v2.0 get_raw_scores, plus has-answer flags."""
    _check_lengths(predictions, references)
    preds, has_answer, exact, f1s = [], [], [], []
    for prediction, golds in zip(predictions, references):
        pred = _prediction_text(prediction, no_answer_text)
        scored_golds = [g for g in golds if normalize_answer(g)] or [""]
        preds.append(pred)
        has_answer.append(any(g.strip() for g in golds))
        exact.append(_max_over_golds(squad_exact, pred, scored_golds))
        f1s.append(_max_over_golds(squad_f1, pred, scored_golds))
    return preds, has_answer, exact, f1s

@register_metric("squad_v2", sample=(["a", ""], [["a"], []]))
def squad_v2(predictions, references, no_answer_text="no answer"):
    """
    SQuAD v2.0. references: lists of gold strings; [] or [""] means unanswerable.
    A prediction equal to no_answer_text (after strip/lower) counts as "" (no answer);
    pass no_answer_text=None to turn that off.
    Returns exact, f1, total, and for the HasAns / NoAns splits their exact, f1 and total.
    As the official script, a split's exact/f1 are left out when it has no examples.
    """
    _, has_answer, exact, f1s = _squad_v2_raw_scores(predictions, references, no_answer_text)
    out = {"exact": _mean(exact), "f1": _mean(f1s), "total": len(exact)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        idx = [i for i, h in enumerate(has_answer) if h == wanted]
        if idx:
            out[f"{prefix}_exact"] = _mean([exact[i] for i in idx])
            out[f"{prefix}_f1"] = _mean([f1s[i] for i in idx])
        out[f"{prefix}_total"] = len(idx)
    return out

def _find_best_thresh(preds, scores, na_probs, has_answer):
    """Official v2.0 find_best_thresh: best score if answers with na_prob <= thresh are kept."""
    score = sum(1 for h in has_answer if not h)  # start: every question predicted no-answer
    best_score, best_thresh = score, 0.0
    for i in sorted(range(len(na_probs)), key=lambda i: na_probs[i]):
        if has_answer[i]:
            score += scores[i]
        elif preds[i]:
            score -= 1
        if score > best_score:
            best_score, best_thresh = score, na_probs[i]
    return best_score / len(scores), best_thresh

def squad_v2_best_thresh(preds, na_probs, references, no_answer_text="no answer"):
    """
    Best exact / f1 over no-answer thresholds, as the official v2.0 script
    (an answer is replaced by no-answer when its na_prob > thresh).
    Returns best_exact, best_exact_thresh, best_f1, best_f1_thresh.
    """
    if len(na_probs) != len(preds):
        raise ValueError(f"got {len(preds)} predictions but {len(na_probs)} no-answer probabilities")
    preds, has_answer, exact, f1s = _squad_v2_raw_scores(preds, references, no_answer_text)
    best_exact, exact_thresh = _find_best_thresh(preds, exact, na_probs, has_answer)
    best_f1, f1_thresh = _find_best_thresh(preds, f1s, na_probs, has_answer)
    return {"best_exact": float(best_exact), "best_exact_thresh": float(exact_thresh),
            "best_f1": float(best_f1), "best_f1_thresh": float(f1_thresh)}

# -----------------------------------------------------------------------------
# MultiRC

@register_metric("multirc", sample=([1, 0], [{"question_id": 0, "label": 1}, {"question_id": 0, "label": 0}]))
def multirc(predictions, references):
    """
    MultiRC. predictions: one int label (0/1, or UNREADABLE: the wrong one) per answer option.
    references: one dict {"question_id": hashable, "label": int} per answer option,
    question_id unique over the whole set (e.g. a (paragraph, question) tuple).
    f1a: binary F1 over all answer options; em: fraction of questions with every option right.
    """
    _check_lengths(predictions, references)
    labels = [ref["label"] for ref in references]
    question_correct = defaultdict(lambda: True)
    for prediction, ref in zip(predictions, references):
        question_correct[ref["question_id"]] &= (prediction == ref["label"])
    f1a = _binary_f1(predictions, labels)
    em = _mean(list(question_correct.values()))
    return {"f1a": f1a, "em": em, "mean": (f1a + em) / 2}

# -----------------------------------------------------------------------------
# sequence labelling (CoNLL NER)

def iob1_to_iob2(tags):
    """
    IOB1 -> IOB2. An I-X that starts an entity (first tag, after O, or after another type)
    becomes B-X; B-X (only between two adjacent X entities in IOB1) stays B-X.
    """
    out = []
    for i, tag in enumerate(tags):
        prev = tags[i - 1] if i > 0 else "O"
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out

@register_metric("seqeval", sample=([["B-X", "O"]], [["B-X", "O"]]))
def seqeval_f1(predictions, references, scheme="IOB2", mode=None):
    """
    Entity-level micro precision/recall/F1 (CoNLL style) and token accuracy via seqeval.
    predictions, references: lists of tag lists. scheme: tagging of the inputs; "IOB1"
    inputs are converted to IOB2 first. mode=None is seqeval's default conlleval-like
    chunking, which reads IOB1 and IOB2 alike; mode="strict" uses seqeval's `scheme` rules.
    """
    require("seqeval", "metric seqeval (the entity F1 of tagging tasks)")
    from seqeval import metrics as sm
    from seqeval import scheme as schemes
    _check_lengths(predictions, references)
    if scheme == "IOB1":
        predictions = [iob1_to_iob2(tags) for tags in predictions]
        references = [iob1_to_iob2(tags) for tags in references]
        scheme = "IOB2"
    kwargs = {"mode": "strict", "scheme": getattr(schemes, scheme)} if mode == "strict" else {}
    return {
        "precision": float(sm.precision_score(references, predictions, zero_division=0, **kwargs)),
        "recall": float(sm.recall_score(references, predictions, zero_division=0, **kwargs)),
        "f1": float(sm.f1_score(references, predictions, zero_division=0, **kwargs)),
        "accuracy": float(sm.accuracy_score(references, predictions)),
    }

# -----------------------------------------------------------------------------
# summarization

@register_metric("rouge", sample=(["a b"], ["a b"]))
def rouge(predictions, references, use_stemmer=True):
    """ROUGE-1/2/L F1 (rouge_score package, Porter stemming on by default), averaged over examples."""
    require("rouge_score", "metric rouge (summarization tasks)")
    from rouge_score import rouge_scorer
    _check_lengths(predictions, references)
    keys = ["rouge1", "rouge2", "rougeL"]
    scorer = rouge_scorer.RougeScorer(keys, use_stemmer=use_stemmer)
    scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]  # score(target, prediction)
    return {k: _mean([s[k].fmeasure for s in scores]) for k in keys}

# -----------------------------------------------------------------------------
# retrieval

@register_metric("retrieval", sample=([{"p": 1.0, "q": 0.5}], [{"p": 1}]))
def retrieval(predictions, references):
    """nDCG@10, MRR@10, Recall@20/100 (ir-measures, as BEIR) of rankings ({passage id: score} per query) against
    qrels ({passage id: relevance} per query); fpt/retrieval/measures.py."""
    from .retrieval.measures import ranking_metrics  # lazy: the retrieval extra (ir-measures)
    return ranking_metrics(predictions, references)

def compute_metrics(names: list[str], predictions, references, **options) -> dict[str, float]:
    """Run the named metrics and merge their outputs into one dict.

    `options` (e.g. labels=range(3), the task's class indices) go to the metrics whose signature takes them.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(sorted(METRICS))}")
    results = {}
    for name in names:
        metric = METRICS[name]
        params = inspect.signature(metric.fn).parameters
        results.update(metric(predictions, references, **{k: v for k, v in options.items() if k in params}))
    return results
