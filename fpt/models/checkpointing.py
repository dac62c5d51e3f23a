"""Activation ("gradient") checkpointing of a prompted backbone (trainer.gradient_checkpointing).

Transformers' own checkpointing runs every transformer layer under `torch.utils.checkpoint` (non-reentrant):
the forward keeps only each layer's inputs, the backward recomputes the layer (same RNG state, so the same
dropout masks; same autocast state) and then back-propagates through it.

One thing is ours: a deep prompt reaches the attention through `fpt_prefix` set on the attention modules for
the duration of the forward (fpt/prompts.py, DeepPrompt.injected), and the backward's recomputation runs after
that block has ended. So every checkpointed call snapshots the sites' `fpt_prefix` at forward time and the
recomputation runs with that snapshot (torch's `context_fn`): the same prefix tensors, hence the same saved
tensors, and the gradient reaches the prompt through the graph the forward recorded. Non-reentrant
checkpointing does not need the layer inputs to require grad (PEFT's reentrant route does, and refuses
prefix tuning), so transformers' input-embedding hook is removed again.

trainer.checkpoint_layers (a fraction in (0, 1], default 1) checkpoints only the bottom
`checkpointed_count(fraction, n)` layers of each stack (T5: encoder and decoder alike) of the model that runs now
(a growth stage's partial model: of its layers). The top layers are left plain: their backward comes first, so
their activations are freed before any checkpointed layer is recomputed, and they cost no recomputation.
"""
from __future__ import annotations

import contextlib
import functools
import math

from torch import nn


class _PrefixesAsInForward:
    """Context manager (reusable: a second backward recomputes again) setting the sites' `fpt_prefix` to what
    they were when the checkpointed layer ran forward, and restoring the current values after."""

    def __init__(self, sites: list[nn.Module]):
        self.sites = sites
        self.held = [getattr(m, "fpt_prefix", None) for m in sites]
        self._outer = []

    def __enter__(self):
        self._outer.append([getattr(m, "fpt_prefix", None) for m in self.sites])
        for module, prefix in zip(self.sites, self.held):
            module.fpt_prefix = prefix
        return self

    def __exit__(self, *exc):
        for module, prefix in zip(self.sites, self._outer.pop()):
            module.fpt_prefix = prefix
        return False


def _contexts(sites: list[nn.Module]):
    """torch.utils.checkpoint's context_fn: (forward context, recomputation context), made per call."""
    return contextlib.nullcontext(), _PrefixesAsInForward(sites)


def check_fraction(fraction) -> float:
    """trainer.checkpoint_layers must be a number in (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"trainer.checkpoint_layers={fraction!r}: expected the fraction of each layer stack to "
                         f"checkpoint, a number in (0, 1] (1: every layer)")
    return float(fraction)


def checkpointed_count(fraction: float, layers: int) -> int:
    """How many of a stack's `layers` (counted from the bottom) are checkpointed: fraction x layers rounded to the
    nearest integer, halves up, and at least one (6 layers: 0.67 -> 4, 0.5 -> 3; 3 layers: 0.67 -> 2; 1 -> 1)."""
    if layers == 0:
        return 0
    return min(layers, max(1, math.floor(round(check_fraction(fraction) * layers, 6) + 0.5)))


def enable(backbone, sites: list[nn.Module], layer_stacks: dict[str, nn.ModuleList], fraction: float = 1.0) -> None:
    """Checkpoint the bottom `checkpointed_count(fraction, len(stack))` transformer layers of each of
    `backbone`'s stacks, the others plain (idempotent: a partial model calls it again).

    Modules inside a checkpointed layer keep their plain behaviour: transformers also sets the flag on them
    for reentrant checkpointing's sake (T5's attention then makes its zero position bias require grad, which
    moves sdpa to another kernel and changes results in the last bits); non-reentrant needs none of that.
    """
    if not getattr(backbone, "supports_gradient_checkpointing", False):
        raise ValueError(f"trainer.gradient_checkpointing=true: {type(backbone).__name__} does not support "
                         f"activation checkpointing in transformers")
    backbone.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False, "context_fn": functools.partial(_contexts, sites)})
    backbone.disable_input_require_grads()  # only reentrant checkpointing needs the inputs to require grad
    for layers in layer_stacks.values():
        count = checkpointed_count(fraction, len(layers))
        for i, layer in enumerate(layers):
            if i >= count:  # the top layers run plain (transformers set the bottom ones; check_layers checks)
                layer.gradient_checkpointing = False
            for name, module in layer.named_modules():
                if name and hasattr(module, "gradient_checkpointing"):
                    module.gradient_checkpointing = False


def disable(backbone) -> None:
    backbone.activation_checkpointing_disable()


def checkpointed(layer: nn.Module) -> bool:
    """Whether this transformer layer runs under checkpointing in training."""
    return bool(getattr(layer, "gradient_checkpointing", False))


def check_layers(layer_stacks: dict[str, nn.ModuleList], model_name: str, fraction: float = 1.0) -> None:
    """Fail loudly unless exactly the layers meant to be checkpointed (the bottom ones of each stack the model runs
    now, as many as checkpointed_count says) are, and the others are not (no silent no-op)."""
    missed, extra = [], []
    for stack, layers in layer_stacks.items():
        count = checkpointed_count(fraction, len(layers))
        for i, layer in enumerate(layers):
            if checkpointed(layer) != (i < count):
                (missed if i < count else extra).append(f"{stack}.{i} ({type(layer).__name__})")
    if missed:
        raise ValueError(f"trainer.gradient_checkpointing=true: model {model_name}: layers {', '.join(missed[:4])} "
                         f"do not run under activation checkpointing (not transformers GradientCheckpointingLayers)")
    if extra:
        raise ValueError(f"trainer.checkpoint_layers={fraction}: model {model_name}: layers {', '.join(extra[:4])} "
                         f"are checkpointed though meant to run plain")
