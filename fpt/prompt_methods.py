"""Prompt methods (prompt.type): what each one adds to the model and what it trains, registered by name.

The code that differs by method asks its entry (`prompt_method(name).trains_backbone`, `.layer_prefix`, ...)
instead of comparing names, so a new method is one `@register_prompt_method` class here plus the modules it
builds (fpt/prompts.py, fpt/models/wrappers.py). Kept free of torch: the start-up check (fpt/validate.py)
reads it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry

PROMPT_METHODS = Registry("prompt method", "prompt.type")


@dataclass(frozen=True)
class PromptMethod:
    name: str = ""
    summary: str = ""              # one line, for messages
    input_tokens: bool = False     # soft tokens before the input embeddings (at most task.max_length of them)
    layer_prefix: bool = False     # a key/value prefix in every attention layer (a deep prompt)
    trains_backbone: bool = False  # every backbone weight trains (full fine-tuning)
    trains_biases: bool = False    # the backbone's biases train (BitFit)
    inits: tuple[str, ...] = ()    # the prompt.init values it takes (fpt/config.py PromptInit); () = no prompt
    reads: tuple[str, ...] = ()    # the prompt.* keys besides type it reads (the others stay at their defaults)

    @property
    def has_prompt(self) -> bool:
        return self.input_tokens or self.layer_prefix

    @property
    def frozen_backbone(self) -> bool:
        """Only added parameters train: what a growth schedule (fpt/growth.py) can shrink the model under."""
        return not (self.trains_backbone or self.trains_biases)


def register_prompt_method(name: str):
    """Class decorator: the PromptMethod subclass (its fields as class attributes) is prompt.type `name`."""
    def register(cls):
        PROMPT_METHODS.add(name, cls(name=name))
        return cls
    return register


def prompt_method(name: str) -> PromptMethod:
    return PROMPT_METHODS.lookup(name)


@register_prompt_method("none")
@dataclass(frozen=True)
class FullFineTuning(PromptMethod):
    summary: str = "full fine-tuning: there is no prompt"
    trains_backbone: bool = True


@register_prompt_method("shallow")
@dataclass(frozen=True)
class ShallowPromptMethod(PromptMethod):  # Lester et al.
    summary: str = "soft tokens before the input: no projection MLP, no prefix dropout"
    input_tokens: bool = True
    inits: tuple[str, ...] = ("uniform", "vocab", "text")
    reads: tuple[str, ...] = ("length", "init", "init_range", "init_text")


@register_prompt_method("deep")
@dataclass(frozen=True)
class DeepPromptMethod(PromptMethod):  # P-tuning v2
    summary: str = "a prefix in every layer, started N(0, 1): no uniform init_range"
    layer_prefix: bool = True
    inits: tuple[str, ...] = ("normal", "vocab", "text")
    reads: tuple[str, ...] = ("length", "init", "init_text", "projection", "projection_hidden", "dropout")


@register_prompt_method("bitfit")
@dataclass(frozen=True)
class BitFit(PromptMethod):  # Ben Zaken et al.
    summary: str = "BitFit: the backbone's biases train, there is no prompt"
    trains_biases: bool = True
