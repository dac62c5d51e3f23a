"""Analytic FLOP counts of the models fpt trains (what is run, as shaped: layers, FFN width, prompt).

A FLOP is one multiply or one add (a multiply-accumulate is 2 FLOPs). The forward count includes the
attention score and value matmuls over prompt + real tokens. A training step costs forward plus
backward: 3x forward when every weight trains, 2x forward when the backbone is frozen (the backward
pass then needs input gradients only, no weight gradients).
"""
from __future__ import annotations


def _linear(tokens: int, n_in: int, n_out: int) -> int:
    return 2 * tokens * n_in * n_out


def _attention(q_tokens: int, kv_tokens: int, keys: int, d_model: int, inner: int, batch: int) -> int:
    """Projections (q, o on queries; k, v on kv_tokens) and the two attention matmuls."""
    proj = _linear(q_tokens * batch, d_model, inner) * 2 + _linear(kv_tokens * batch, d_model, inner) * 2
    matmuls = 2 * 2 * batch * q_tokens * keys * inner
    return proj + matmuls


def _ffn(tokens: int, d_model: int, width: int, gated: bool) -> int:
    return _linear(tokens, d_model, width) * (2 if gated else 1) + _linear(tokens, width, d_model)


def forward_flops(dims: dict, batch: int, src_len: int, tgt_len: int = 0, shallow: int = 0, deep: int = 0,
                  layers: dict | None = None, ffn_width: int | None = None, lm_head: bool = True) -> int:
    """Forward FLOPs of one batch.

    dims: Family.dims(config). layers: {"encoder": n, "decoder": m} actually run (default: all).
    ffn_width: FFN neurons kept per layer (default: all). shallow/deep: prompt lengths.
    """
    d, inner = dims["hidden"], dims["heads"] * dims["head_dim"]
    width = ffn_width or dims["ffn"]
    gated = dims.get("gated", False)
    layers = layers or dims["layers"]
    src = src_len + shallow
    enc_layer = _attention(src, src, src + deep, d, inner, batch) + _ffn(batch * src, d, width, gated)
    total = layers["encoder"] * enc_layer
    if "decoder" in layers and tgt_len:
        self_attn = _attention(tgt_len, tgt_len, tgt_len + deep, d, inner, batch)
        cross = _attention(tgt_len, src, src + deep, d, inner, batch)
        total += layers["decoder"] * (self_attn + cross + _ffn(batch * tgt_len, d, width, gated))
        if lm_head:
            total += _linear(batch * tgt_len, d, dims["vocab"])
    return total


def train_step_flops(forward: int, backbone_trains: bool) -> int:
    return forward * (3 if backbone_trains else 2)
