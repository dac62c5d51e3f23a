"""One registry per extension point: a metric, a task kind, a model family and a prompt method are each one
registered entry, found by name, and a config naming a new one composes and passes the start-up checks; an unknown
name fails listing the registered ones (docs/layout.md says which file each lives in)."""
from dataclasses import dataclass

import pytest
from helpers import ERRORS_TINY as TINY, compose

from fpt.evaluation import check_metric, metric_keys
from fpt.metrics import METRICS, compute_metrics, register_metric
from fpt.models import FAMILIES, BertFamily, get_family, register_family
from fpt.prompt_methods import PROMPT_METHODS, PromptMethod, prompt_method, register_prompt_method
from fpt.task_kinds import KINDS, Classification, get_kind, register_kind
from fpt.validate import ConfigError, check_applicable, check_config


@pytest.fixture(autouse=True)
def restore_registries():
    """Each test's registrations are undone afterwards (the registries are module-level dicts)."""
    saved = [(registry, dict(registry)) for registry in (METRICS, KINDS, FAMILIES, PROMPT_METHODS)]
    yield
    for registry, entries in saved:
        registry.clear()
        registry.update(entries)


def test_a_registered_metric_is_computed_and_checked_at_start_up():
    @register_metric("first_token", sample=(["a b"], ["a c"]))
    def first_token(predictions, references):
        return {"first_token": sum(p.split()[0] == r.split()[0] for p, r in zip(predictions, references)) / 2}

    assert METRICS["first_token"].fn is first_token
    assert compute_metrics(["first_token"], ["x y", "z"], ["x", "w"]) == {"first_token": 0.5}
    cfg = compose(*TINY, "task.metrics=[first_token]", "task.metric=first_token")
    assert metric_keys(cfg.task) == {"first_token"}
    check_config(cfg)
    with pytest.raises(ValueError, match=r"task.metric='accuracy' is not computed .* choose one of \['first_token'\]"):
        check_metric(compose(*TINY, "task.metrics=[first_token]").task)


def test_every_shipped_metric_has_a_sample_that_it_scores():
    for name, metric in METRICS.items():
        assert metric.name == name and compute_metrics([name], *metric.sample), name


def test_a_metric_without_a_start_up_sample_is_refused():
    with pytest.raises(TypeError, match="sample"):
        register_metric("no_sample")
    with pytest.raises(ValueError, match="metric 'no_sample': sample=None: expected \\(predictions, references\\)"):
        register_metric("no_sample", sample=None)
    assert "no_sample" not in METRICS
    with pytest.raises(ValueError, match="metric 'accuracy' is registered twice"):
        register_metric("accuracy", sample=([0], [0]))(lambda predictions, references: {})


def test_an_unknown_metric_fails_at_start_up_listing_the_registered_ones():
    with pytest.raises(ConfigError, match=r"task.metrics\[\]='bleu': expected one of \[.*'accuracy'.*'rouge'"):
        check_config(compose(*TINY, "task.metrics=[bleu]"))


def test_a_registered_task_kind_is_found_by_task_type():
    @register_kind("binary_classification")
    class BinaryClassification(Classification):
        pass

    cfg = compose(*TINY, "task.type=binary_classification")
    kind = get_kind(cfg.task)
    assert isinstance(kind, BinaryClassification) and kind.name == "binary_classification"
    check_config(cfg)
    with pytest.raises(ValueError, match=r"task.type='tabular': expected one of \['classification', .*"
                                         r"'binary_classification'\]"):
        get_kind(compose(*TINY, "task.type=tabular").task)


def test_a_task_kind_says_which_kind_specific_keys_it_reads():
    @register_kind("choice_classification")
    class ChoiceClassification(Classification):
        reads = ("group_field", "choice_fields")

    check_applicable(compose(*TINY, "task.type=choice_classification", "task.choice_fields=[a,b]"))
    with pytest.raises(ConfigError, match=r"task.choice_fields=\['a', 'b'\]: has no effect with "
                                          r"task.type='classification' \(read by multiple_choice and "
                                          r"choice_classification tasks only\)"):
        check_applicable(compose(*TINY, "task.choice_fields=[a,b]"))


def test_a_registered_model_family_is_found_by_model_family():
    @register_family("bert_like")
    class BertLike(BertFamily):
        pass

    cfg = compose(*TINY, "model.family=bert_like")
    assert isinstance(get_family(cfg.model), BertLike) and get_family(cfg.model).name == "bert_like"
    check_config(cfg)
    with pytest.raises(ConfigError, match=r"model.family='gpt': expected one of \['bert', 'deberta', 't5', "
                                          r"'bert_like'\]"):
        check_config(compose(*TINY, "model.family=gpt"))


def test_a_registered_prompt_method_is_found_by_prompt_type_and_says_what_it_reads():
    @register_prompt_method("short_prefix")
    @dataclass(frozen=True)
    class ShortPrefix(PromptMethod):
        summary: str = "a deep prompt that takes no projection"
        layer_prefix: bool = True
        inits: tuple = ("normal",)
        reads: tuple = ("length", "init")

    method = prompt_method("short_prefix")
    assert isinstance(method, ShortPrefix) and method.has_prompt and method.frozen_backbone
    cfg = compose(*TINY, "prompt.type=short_prefix")
    check_config(cfg)
    with pytest.raises(ConfigError, match="prompt.projection=True: has no effect with prompt.type='short_prefix' "
                                          r"\(a deep prompt that takes no projection\)"):
        check_applicable(compose(*TINY, "prompt.type=short_prefix", "prompt.projection=true"))
    with pytest.raises(ConfigError, match=r"prompt.type='deeep': expected one of \['none', 'shallow', 'deep', "
                                          r"'bitfit', 'short_prefix'\]"):
        check_config(compose(*TINY, "prompt.type=deeep"))


def test_the_shipped_prompt_methods_say_what_trains():
    trains = {name: (m.input_tokens, m.layer_prefix, m.trains_backbone, m.trains_biases)
              for name, m in PROMPT_METHODS.items()}
    assert trains == {"none": (False, False, True, False), "shallow": (True, False, False, False),
                      "deep": (False, True, False, False), "bitfit": (False, False, False, True)}
    assert [name for name, m in PROMPT_METHODS.items() if m.frozen_backbone] == ["shallow", "deep"]
