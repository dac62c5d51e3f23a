"""Soft prompts.

ShallowPrompt (Lester et al.): P trainable vectors in front of the input embeddings.
DeepPrompt (P-tuning v2): a trainable key/value prefix of length P in every attention "site"
(BERT self-attention; T5 encoder self, decoder self and decoder cross attention).

Deep prompts are injected by our own attention function, not through `past_key_values`
(transformers 5.x drops those in T5's encoder and has none for some families). Each model is
loaded with `attn_implementation="fpt_sdpa"` (or "fpt_eager"); that function looks for a prefix
on the calling attention module, prepends it to the keys and values, widens the mask and (T5)
the relative position bias with P visible columns, and then calls the ordinary sdpa or eager
kernel. Queries and positions of the real tokens are untouched.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask



# --------------------------------------------------------------------------- shallow prompt
class ShallowPrompt(nn.Module):
    """P soft tokens prepended to the input embeddings.

    init=vocab|text starts each soft token as a real token looks where the prompt is inserted:
    `embed(ids)` ([len(ids), hidden]) gives that (T5: the input embeddings; BERT: the output of the
    embeddings module, i.e. after its LayerNorm).
    """

    def __init__(self, length: int, hidden_size: int, init: str = "uniform",
                 embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 init_token_ids: list[int] | None = None, init_range: float | None = None):
        super().__init__()
        self.length = length
        weight = torch.empty(length, hidden_size)
        if init == "uniform":  # FPT: U(-r, r) with r = 1/sqrt(d_model) unless given
            r = init_range if init_range is not None else 1.0 / math.sqrt(hidden_size)
            nn.init.uniform_(weight, -r, r)
        else:  # vocab, text (the inits a shallow prompt takes: fpt/prompt_methods.py, checked at start-up)
            if embed is None or not init_token_ids:
                raise ValueError(f"prompt.init={init!r} needs the token embeddings and token ids to copy")
            ids = torch.tensor(init_token_ids)[torch.arange(length) % len(init_token_ids)]
            with torch.no_grad():
                weight.copy_(embed(ids).detach())
        self.embeds = nn.Parameter(weight)

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embeds.unsqueeze(0).expand(batch_size, -1, -1)

    def flops_shape(self) -> dict:
        """What this prompt adds to a step's FLOPs (fpt.flops.step_flops): `length` more input tokens."""
        return {"shallow": self.length}


# --------------------------------------------------------------------------- deep prompt
class DeepPrompt(nn.Module):
    """A key/value prefix for each attention site: forward(active) -> one [2, heads, P, head_dim] per site.

    Every site owns its trainable tensors: `prefixes[i]` ([P, 2*width]), or with `projection=True`
    (P-tuning v2's reparameterization: Embedding(P, d) -> Linear(d, hidden) -> tanh -> Linear(hidden, 2*d)
    per site) its own output Linear `outputs[i]` behind the shared embeddings and first Linear. A site
    left out of `active` (a layer absent from a growth stage) takes part in neither forward nor backward:
    its tensors get no gradient (grad None), so the optimizer gives them no step, moments or weight decay
    until the site joins; the first time it joins they start fresh, and a site that returns keeps its state.

    The init is drawn exactly as one tensor for all sites was before (one randn / one Linear of the full
    width, then split), so a seed gives the same initial prefixes as the single-tensor layout.
    """

    def __init__(self, num_sites: int, length: int, num_heads: int, head_dim: int,
                 projection: bool = False, projection_hidden: int = 512, dropout: float = 0.0):
        super().__init__()
        self.num_sites, self.length, self.num_heads, self.head_dim = num_sites, length, num_heads, head_dim
        width = num_heads * head_dim
        self.prefixes = self.outputs = self.embeds = self.mlp = None
        if projection:
            self.embeds = nn.Parameter(torch.randn(length, width))
            self.mlp = nn.Sequential(nn.Linear(width, projection_hidden), nn.Tanh())
            full = nn.Linear(projection_hidden, num_sites * 2 * width)  # split: same init as one output layer
            self.outputs = nn.ModuleList()
            for i in range(num_sites):
                rows = slice(i * 2 * width, (i + 1) * 2 * width)
                out = nn.Linear(projection_hidden, 2 * width, device="meta")
                out.weight = nn.Parameter(full.weight.detach()[rows].clone())
                out.bias = nn.Parameter(full.bias.detach()[rows].clone())
                self.outputs.append(out)
        else:  # N(0, 1) as P-tuning v2's nn.Embedding default
            full = torch.randn(length, num_sites, 2 * width)
            self.prefixes = nn.ParameterList([nn.Parameter(full[:, i].clone()) for i in range(num_sites)])
        self.gates = nn.ParameterDict()  # schedule.new_layer_prefix=gate: site index (str) -> scalar, init 0
        self.dropout = nn.Dropout(dropout)

    def flops_shape(self) -> dict:
        """What this prompt adds to a step's FLOPs (fpt.flops.step_flops): `length` more keys and values in every
        attention. The gates' extra passes are counted from the growth stage (fpt.growth.stage_shape: Growth makes
        the gates, and knows which layers run)."""
        return {"deep": self.length}

    def site_modules(self, site: int) -> list[nn.Parameter]:
        """The trainable tensors that belong to one site only (its prefix or output Linear, and gate)."""
        own = [self.prefixes[site]] if self.prefixes is not None else list(self.outputs[site].parameters())
        return own + ([self.gates[str(site)]] if str(site) in self.gates else [])

    def add_gates(self, sites: list[int]) -> None:
        """A learnable gate, initialised at 0 (no effect), on the prefix of each of these sites."""
        like = self.embeds if self.embeds is not None else self.prefixes[0]
        for site in sites:
            self.gates[str(site)] = nn.Parameter(torch.zeros((), device=like.device, dtype=like.dtype))

    def forward(self, active: list[bool] | None = None) -> list[torch.Tensor | None]:
        """Each active site's prefix [2, H, P, D] (None for inactive sites); only active sites are computed."""
        on = [i for i in range(self.num_sites) if active is None or active[i]]
        if not on:
            return [None] * self.num_sites
        if self.mlp is not None:  # one matmul over the active sites' output rows
            hidden = self.mlp(self.embeds)
            weight = torch.cat([self.outputs[i].weight for i in on])
            bias = torch.cat([self.outputs[i].bias for i in on])
            flat = nn.functional.linear(hidden, weight, bias)  # [P, n*2*width]
        else:
            flat = torch.stack([self.prefixes[i] for i in on], dim=1)  # [P, n, 2*width]
        flat = self.dropout(flat)
        prefix = flat.reshape(self.length, len(on), 2, self.num_heads, self.head_dim).permute(1, 2, 3, 0, 4)
        out = [None] * self.num_sites
        for j, i in enumerate(on):
            out[i] = prefix[j]
        return out

    @torch.no_grad()
    def init_from_activations(self, keys_values: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Start each site's prefix from real keys/values ([H, P, D] each), e.g. of vocabulary tokens."""
        if self.mlp is not None:
            raise ValueError("prompt.init=vocab|text sets the prefix directly; it needs prompt.projection=false")
        for param, (k, v) in zip(self.prefixes, keys_values):
            param.copy_(torch.stack([k, v]).permute(2, 0, 1, 3).reshape(self.length, -1))

    def site_params(self, site: int) -> nn.Parameter:
        """The trainable prefix of one site (no projection): [P, 2*width]."""
        if self.mlp is not None:
            raise ValueError("per-site prefixes are produced by the projection with prompt.projection=true")
        return self.prefixes[site]

    @contextlib.contextmanager
    def injected(self, sites: list[nn.Module], active: list[bool] | None = None,
                 visible: torch.Tensor | None = None):
        """Within the block, every attention module in `sites` attends to its prefix.

        `active[i] = False` leaves site i without prefix (a layer absent from a growth stage);
        `visible` ([P] bool) masks prefix positions (tests use all-False to recover the plain model).
        """
        prefixes = self(active)
        try:
            for i, module in enumerate(sites):
                if prefixes[i] is not None:
                    gate = self.gates[str(i)] if str(i) in self.gates else None
                    module.fpt_prefix = (prefixes[i][0], prefixes[i][1], visible, gate)
            yield
        finally:
            for module in sites:
                module.fpt_prefix = None


@contextlib.contextmanager
def captured_keys_values(sites: list[nn.Module]):
    """Record the keys and values each attention site computes (before any prefix) inside the block."""
    for module in sites:
        module.fpt_capture = []
    try:
        yield [module.fpt_capture for module in sites]
    finally:
        for module in sites:
            module.fpt_capture = None


# --------------------------------------------------------------------------- injection
def _prefix_columns(visible: torch.Tensor | None, like: torch.Tensor, length: int) -> torch.Tensor:
    """Mask columns for the prefix, in the dtype convention of `like` (bool keep-mask or additive float)."""
    shape = (*like.shape[:-1], length)
    if visible is None:
        keep = torch.ones(shape, dtype=torch.bool, device=like.device)
    else:
        keep = visible.to(like.device).view(1, 1, 1, length).expand(shape)
    if like.dtype == torch.bool:
        return keep
    return torch.zeros(shape, dtype=like.dtype, device=like.device).masked_fill(~keep, torch.finfo(like.dtype).min)


def _causal_keep_mask(q_len: int, k_len: int, device) -> torch.Tensor:
    """Bottom-right aligned causal mask (query i sees keys up to i + k_len - q_len)."""
    q = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    return (torch.arange(k_len, device=device)[None, :] <= q).view(1, 1, q_len, k_len)


def _with_prefix(module, query, key, value, attention_mask, position_bias):
    prefix_k, prefix_v, visible, _ = module.fpt_prefix
    batch, length = key.shape[0], prefix_k.shape[-2]
    key = torch.cat([prefix_k.to(key.device, key.dtype).unsqueeze(0).expand(batch, -1, -1, -1), key], dim=2)
    value = torch.cat([prefix_v.to(value.device, value.dtype).unsqueeze(0).expand(batch, -1, -1, -1), value], dim=2)
    q_len, k_len = query.shape[2], key.shape[2] - length
    if attention_mask is None:  # the kernel would have assumed "all visible" or top-left causal
        if getattr(module, "is_causal", False) and q_len > 1:
            attention_mask = _causal_keep_mask(q_len, k_len, query.device)
        elif visible is not None:
            attention_mask = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=query.device)
    if attention_mask is not None:
        attention_mask = torch.cat([_prefix_columns(visible, attention_mask, length), attention_mask], dim=-1)
    if position_bias is not None:  # T5: the prefix has no relative position, so zero bias
        pad = position_bias.new_zeros(*position_bias.shape[:-1], length)
        position_bias = torch.cat([pad, position_bias], dim=-1)
    return key, value, attention_mask, position_bias


def _call_kernel(kernel, eager: bool, module, query, key, value, attention_mask, position_bias, kwargs):
    if position_bias is not None:
        kwargs = {**kwargs, "position_bias": position_bias}
    if attention_mask is not None and attention_mask.dtype == torch.bool and eager:
        # eager kernels add the mask: turn a keep-mask into an additive one
        attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device
                                     ).masked_fill(~attention_mask, torch.finfo(query.dtype).min)
    return kernel(module, query, key, value, attention_mask, **kwargs)


def _twice(t: torch.Tensor | None) -> torch.Tensor | None:
    """A mask or bias for the batch stacked twice (a batch dimension of 1 broadcasts as it is)."""
    return t if t is None or t.shape[0] == 1 else torch.cat([t, t])


# A gated site (schedule.new_layer_prefix=gate) attends to the real tokens plus a prefix whose share is scaled by the
# site's gate g:
#
#     out = (g * A + B) / (g * Z_p + Z_r)
#
# with A, Z_p the prefix's exp-weighted values and weight sum and B, Z_r the real tokens'. g = 1 is the ungated prefix
# attention; g = 0 is bitwise the attention without prefix; g < 0 counts as 0. Computed from the plain kernel's output
# r = B / Z_r and one kernel call on the batch stacked twice over prefix + real keys (gate_values), giving p = A / Z
# (values of the real keys zeroed) and m = Z_p / Z (values 1 on the prefix, 0 elsewhere), then gated_output:
# out = r + g * (p - m * r) / (1 - m + g * m). Every family's attention (here; DeBERTa's in fpt/models/deberta.py)
# does it this way, and fpt.flops counts those two extra passes.
def gate_values(value: torch.Tensor, length: int) -> torch.Tensor:
    """The doubled batch's values ([..., P + L, D], the prefix's P first): the prefix's values with the real keys'
    zeroed, stacked on 1 for the prefix and 0 for the real keys (dimension 0 doubled)."""
    real = torch.zeros_like(value[..., length:, :])
    prefix_values = torch.cat([value[..., :length, :], real], dim=-2)
    mass = torch.cat([torch.ones_like(value[..., :length, :]), real], dim=-2)
    return torch.cat([prefix_values, mass])


def gated_output(plain: torch.Tensor, both: torch.Tensor, gate: torch.Tensor, batch: int) -> torch.Tensor:
    """The gated attention from the plain kernel's output r and the doubled batch's (p for its first `batch` rows,
    m for the rest), in plain's dtype."""
    r, p, m = plain.float(), both[:batch].float(), both[batch:, ..., :1].float()
    g = gate.float()
    # a share cannot be negative: a gate the optimizer pushes below 0 acts as 0 (g < 0 could zero or flip the
    # denominator: NaN), while its gradient still passes (straight through), so it can come back
    g = g + (g.clamp_min(0) - g).detach()
    out = r + g * (p - m * r) / (1 - m + g * m).clamp_min(torch.finfo(torch.float32).tiny)
    return out.to(plain.dtype)


def _gated(kernel, eager: bool, module, query, key, value, attention_mask, position_bias, kwargs):
    """A gated site's attention through the kernel (see gate_values)."""
    plain, weights = _call_kernel(kernel, eager, module, query, key, value, attention_mask, position_bias, kwargs)
    gate = module.fpt_prefix[3]
    batch, length = query.shape[0], module.fpt_prefix[0].shape[-2]
    key, value, attention_mask, position_bias = _with_prefix(module, query, key, value, attention_mask,
                                                             position_bias)
    both, _ = _call_kernel(kernel, eager, module, torch.cat([query, query]), torch.cat([key, key]),
                           gate_values(value, length), _twice(attention_mask), _twice(position_bias), kwargs)
    return gated_output(plain, both, gate, batch), weights


def _make_prefix_attention(base):
    def attention(module, query, key, value, attention_mask, position_bias=None, **kwargs):
        if getattr(module, "fpt_capture", None) is not None:
            module.fpt_capture.append((key.detach(), value.detach()))
        kernel = base if base is not None else module.fpt_eager
        prefix = getattr(module, "fpt_prefix", None)
        if prefix is not None and prefix[3] is not None:
            return _gated(kernel, base is None, module, query, key, value, attention_mask, position_bias, kwargs)
        if prefix is not None:
            key, value, attention_mask, position_bias = _with_prefix(
                module, query, key, value, attention_mask, position_bias)
        return _call_kernel(kernel, base is None, module, query, key, value, attention_mask, position_bias, kwargs)
    return attention


PREFIX_ATTENTION = {"sdpa": "fpt_sdpa", "eager": "fpt_eager"}
AttentionInterface.register("fpt_sdpa", _make_prefix_attention(sdpa_attention_forward))
AttentionInterface.register("fpt_eager", _make_prefix_attention(None))
AttentionMaskInterface.register("fpt_sdpa", sdpa_mask)
AttentionMaskInterface.register("fpt_eager", eager_mask)
