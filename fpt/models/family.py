"""What the rest of fpt needs to know about a model family, in one small interface.

One subclass per family (bert.py, t5.py, deberta.py): where the attention modules, the layer stacks and the
FFNs live, registered as model.family with `@register_family(name)`. Adding another family means writing one such
file (imported by fpt/models/__init__.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..registry import Registry


@dataclass
class FFN:
    """The FFN of one layer: activation = act(in_projs[0] h) [* in_projs[1] h]; output = out_proj(activation)."""
    owner: nn.Module          # module holding the linear layers as attributes
    in_names: list[str]       # BERT: ["dense"] (on layer.intermediate); T5: ["wi"] or ["wi_0", "wi_1"]
    out_owner: nn.Module      # module holding the output projection
    out_name: str
    act: Callable

    @property
    def in_projs(self) -> list[nn.Linear]:
        return [getattr(self.owner, n) for n in self.in_names]

    @property
    def out_proj(self) -> nn.Linear:
        return getattr(self.out_owner, self.out_name)

    @property
    def width(self) -> int:
        return self.in_projs[0].out_features

    def hidden(self, h):
        """The FFN's hidden activation (what activation scores measure)."""
        projs = self.in_projs
        a = self.act(projs[0](h))
        return a * projs[1](h) if len(projs) == 2 else a


FAMILIES = Registry("model family", "model.family")  # model.family -> its Family


def register_family(name: str):
    """Class decorator: an instance of the Family subclass is model.family `name`."""
    def register(cls):
        cls.name = name
        FAMILIES.add(name, cls())
        return cls
    return register


def family_named(name: str) -> Family:
    return FAMILIES.lookup(name)


class Family:
    name: str = ""
    seq2seq: bool = False
    eager_attention: Callable | None = None  # the family's own eager kernel (handles e.g. T5's bias)
    hf_attn_implementation: str | None = None  # set: load with this, the family injects prompts itself (DeBERTa)

    def prepare(self, backbone, attn_implementation: str) -> None:
        """Make a freshly loaded backbone ready for prompts (DeBERTa: its own prefix attention)."""

    def dropout_overrides(self, dropout: float | None, attention_dropout: float | None) -> dict:
        """HF config overrides for model.dropout (every dropout) and model.attention_dropout (attention
        probabilities), in BERT's key names."""
        out = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        if attention_dropout is not None:
            out["attention_probs_dropout_prob"] = attention_dropout
        return out

    def attention_sites(self, backbone) -> list[tuple[str, nn.Module]]:
        """(site name, attention module) pairs that get a deep-prompt prefix, in a fixed order."""
        raise NotImplementedError

    def layer_stacks(self, backbone) -> dict[str, nn.ModuleList]:
        """The model's ModuleLists of transformer layers, e.g. {"encoder": ..., "decoder": ...}."""
        raise NotImplementedError

    def set_layer_stack(self, backbone, stack: str, layers: nn.ModuleList) -> None:
        raise NotImplementedError

    def ffn(self, layer: nn.Module) -> FFN:
        raise NotImplementedError

    def dims(self, config) -> dict:
        """hidden, heads, head_dim, ffn and layer counts read from a HF config."""
        raise NotImplementedError

    def site_layer(self, site_name: str) -> tuple[str, int]:
        """Which (stack, layer index) an attention site belongs to."""
        stack, layer, _ = site_name.split(".", 2)
        return stack, int(layer)
