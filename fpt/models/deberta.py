"""DeBERTa-v2 / v3 encoders: where attention, layers and FFNs live, and how the deep prompt gets in.

DeBERTa's disentangled attention (transformers' DisentangledSelfAttention) does not go through the
AttentionInterface that fpt's prefix kernel hooks (fpt/prompts.py), so `prepare()` turns every attention
module into a PrefixDisentangledSelfAttention: the same weights and maths, plus the deep-prompt
convention of the other families. When a module carries `fpt_prefix = (prefix_k, prefix_v, visible, gate)`
([heads, P, head_dim] each; `visible` a [P] bool mask or None):

  - keys and values get the P prefix rows in front, after DeBERTa's own projections;
  - the content->position and position->content terms are computed for the real tokens only, and the
    prefix columns get no relative-position bias (zero), as T5's relative bias in fpt/prompts.py:
    a prefix has no position;
  - the attention mask gets P columns, visible unless `visible` says otherwise (and not to a padded query row,
    which DeBERTa masks entirely);
  - with a gate (schedule.new_layer_prefix=gate), the prefix's share is scaled by it as in the other families'
    kernel (fpt/prompts.py: the attention without prefix plus one pass on a doubled batch).

`fpt_capture` (a list) records the keys and values computed before any prefix, as the kernel does.
The maths run either as DeBERTa's own eager code (model.attn_implementation=eager) or through
torch's scaled_dot_product_attention with the relative bias as an additive mask (sdpa).

A shallow prompt joins as in BERT: after the embeddings module, in front of the tokens, with the attention
mask given to the backbone one column per prompt vector longer (fpt/models/wrappers.py). DeBERTa's embeddings
module also reads that mask (it zeroes padded positions), and sees only the tokens: `prepare()` gives it the
mask's last columns, the tokens' own. The encoder gets the whole mask, so the layers attend to the prompt; it
takes part in the relative positions as the positions in front of the tokens (as a T5 shallow prompt does).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

from ..prompts import gate_values, gated_output
from .bert import BertFamily
from .family import register_family



class PrefixDisentangledSelfAttention(DisentangledSelfAttention):
    """DisentangledSelfAttention that attends to a deep-prompt prefix (set on the module) when there is one."""

    fpt_kernel: str = "eager"
    fpt_prefix = None
    fpt_capture = None

    def forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                relative_pos=None, rel_embeddings=None):
        heads = self.num_attention_heads
        batch = hidden_states.shape[0]
        queries_from = hidden_states if query_states is None else query_states
        query = self.transpose_for_scores(self.query_proj(queries_from), heads)    # [B*H, Lq, D]
        key = self.transpose_for_scores(self.key_proj(hidden_states), heads)        # [B*H, Lk, D]
        value = self.transpose_for_scores(self.value_proj(hidden_states), heads)
        head_dim, q_len = query.shape[-1], query.shape[1]
        if self.fpt_capture is not None:
            self.fpt_capture.append((key.detach().view(batch, heads, -1, head_dim),
                                     value.detach().view(batch, heads, -1, head_dim)))

        scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
        scale = (head_dim * scale_factor) ** 0.5
        bias = None  # relative-position scores of the real keys: [B*H, Lq, Lk]
        if self.relative_attention:
            bias = self.disentangled_attention_bias(query, key, relative_pos, self.pos_dropout(rel_embeddings),
                                                    scale_factor)
        mask = attention_mask.bool()  # [B, 1, Lq, Lk], True = may attend
        probs = None
        if self.fpt_prefix is not None and self.fpt_prefix[3] is not None:  # a gated prefix (fpt/prompts.py)
            plain, _ = self._attend(query, key, value, bias, mask, batch, scale)
            key, value, bias, mask = self._with_prefix(key, value, bias, mask, batch, q_len)
            both, _ = self._attend(torch.cat([query, query]), torch.cat([key, key]),
                                   gate_values(value, self.fpt_prefix[0].shape[-2]),
                                   None if bias is None else torch.cat([bias, bias]), torch.cat([mask, mask]),
                                   2 * batch, scale)
            context = gated_output(plain, both, self.fpt_prefix[3], batch)
        else:
            if self.fpt_prefix is not None:
                key, value, bias, mask = self._with_prefix(key, value, bias, mask, batch, q_len)
            context, probs = self._attend(query, key, value, bias, mask, batch, scale)
        context = context.permute(0, 2, 1, 3).reshape(batch, q_len, heads * head_dim)
        return context, (probs if output_attentions else None)

    def _attend(self, query, key, value, bias, mask, batch: int, scale: float):
        """The attention of queries [B*H, Lq, D] to keys and values [B*H, Lk, D] with the relative-position scores
        `bias` ([B*H, Lq, Lk] or None) and keep-mask `mask` ([B, 1, Lq, Lk]): context [B, H, Lq, D] and the
        probabilities (eager; None with sdpa)."""
        heads, (q_len, head_dim) = self.num_attention_heads, query.shape[1:]
        if self.fpt_kernel == "sdpa":
            additive = torch.zeros(mask.shape, dtype=query.dtype, device=query.device) if bias is None else \
                bias.view(batch, heads, q_len, -1).to(query.dtype)
            additive = additive.masked_fill(~mask, torch.finfo(query.dtype).min)
            context = nn.functional.scaled_dot_product_attention(
                query.view(batch, heads, q_len, head_dim), key.view(batch, heads, -1, head_dim),
                value.view(batch, heads, -1, head_dim), attn_mask=additive,
                dropout_p=self.dropout.p if self.training else 0.0, scale=1.0 / scale)
            return context, None
        scores = torch.bmm(query, key.transpose(-1, -2) / scale)
        if bias is not None:
            scores = scores + bias
        scores = scores.view(batch, heads, q_len, -1).masked_fill(~mask, torch.finfo(query.dtype).min)
        probs = nn.functional.softmax(scores, dim=-1)
        context = torch.bmm(self.dropout(probs).view(batch * heads, q_len, -1), value)
        return context.view(batch, heads, q_len, head_dim), probs

    def _with_prefix(self, key, value, bias, mask, batch: int, q_len: int):
        prefix_k, prefix_v, visible, _ = self.fpt_prefix
        heads, length, head_dim = prefix_k.shape

        def flat(prefix):  # [H, P, D] -> [B*H, P, D], heads inner as transpose_for_scores lays them out
            return prefix.to(key.device, key.dtype).unsqueeze(0).expand(batch, -1, -1, -1).reshape(-1, length,
                                                                                                    head_dim)
        key = torch.cat([flat(prefix_k), key], dim=1)
        value = torch.cat([flat(prefix_v), value], dim=1)
        if bias is not None:  # a prefix has no position: zero bias for its columns
            bias = torch.cat([bias.new_zeros(bias.shape[0], q_len, length), bias], dim=-1)
        # DeBERTa masks a padded query row entirely: it sees no prefix either (a row with only the prefix visible
        # would give a gated site's mixture a zero denominator at gate 0, fpt/prompts.py)
        keep = mask.any(dim=-1, keepdim=True).expand(batch, 1, q_len, length)
        if visible is not None:
            keep = keep & visible.to(mask.device).view(1, 1, 1, length)
        mask = torch.cat([keep, mask.expand(batch, 1, q_len, mask.shape[-1])], dim=-1)
        return key, value, bias, mask


def _mask_of_the_tokens(embeddings, args, kwargs):
    """DeBERTa's embeddings multiply their output by the attention mask; with a shallow prompt joined after
    them, the backbone's mask is longer than the tokens by the prompt's columns in front: keep the tokens'."""
    mask, tokens = kwargs.get("mask"), kwargs.get("input_ids")
    if tokens is None:
        tokens = kwargs.get("inputs_embeds")
    if mask is not None and tokens is not None and mask.shape[-1] > tokens.shape[1]:
        kwargs["mask"] = mask[..., mask.shape[-1] - tokens.shape[1]:]
    return args, kwargs


@register_family("deberta")
class DebertaFamily(BertFamily):
    """Laid out as BERT (encoder.layer[i].attention.self, intermediate/output FFN); its own attention module."""

    seq2seq = False
    hf_attn_implementation = "eager"  # DeBERTa's only one in transformers; ours are chosen by fpt_kernel

    def prepare(self, backbone, attn_implementation: str) -> None:
        for name, module in self.attention_sites(backbone):
            if not isinstance(module, DisentangledSelfAttention):
                raise ValueError(f"family deberta expects DeBERTa-v2/v3 attention (DisentangledSelfAttention of "
                                 f"transformers' deberta_v2) at {name}, found {type(module).__name__} "
                                 f"(model_type {backbone.config.model_type!r})")
            module.__class__ = PrefixDisentangledSelfAttention
            module.fpt_kernel = attn_implementation
        backbone.embeddings.register_forward_pre_hook(_mask_of_the_tokens, with_kwargs=True)

    def dims(self, config):
        head_dim = getattr(config, "attention_head_size", None) or config.hidden_size // config.num_attention_heads
        out = dict(hidden=config.hidden_size, heads=config.num_attention_heads, head_dim=head_dim,
                   ffn=config.intermediate_size, layers={"encoder": config.num_hidden_layers},
                   vocab=config.vocab_size)
        if getattr(config, "relative_attention", False):  # disentangled attention's extra products (fpt.flops)
            out["relative"] = relative_dims(config)
        return out


def relative_dims(config) -> dict:
    """What DisentangledSelfAttention.disentangled_attention_bias multiplies, per layer: the 2k relative-position
    embeddings (k = position_buckets if > 0, else max_relative_positions, else max_position_embeddings) through
    `projections` of the layer's Linears, then the c2p (queries) and p2c (keys) scores against them."""
    span = config.position_buckets if getattr(config, "position_buckets", -1) > 0 else (
        config.max_relative_positions if getattr(config, "max_relative_positions", -1) >= 1
        else config.max_position_embeddings)
    terms = [t for t in ("c2p", "p2c") if t in (config.pos_att_type or [])]
    shared = getattr(config, "share_att_key", False)
    return {"positions": 2 * span, "terms": terms, "projections": 2 if shared else len(terms)}
