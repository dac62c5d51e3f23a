"""Training FLOPs: the analytic count per step that the trainer logs.

A FLOP is one multiply or one add (a multiply-accumulate is 2 FLOPs). Only matrix products are
counted: the linear layers and the two attention matmuls over prompt + real tokens (norms, softmax
and biases are a rounding error). A training step is forward plus backward:

- a linear layer's backward needs the gradient of its input (1x its forward) when something trainable
  lies below it, and the gradient of its weight (1x) only when the backbone trains. Nothing trainable
  lies below the first decoder layer's self-attention (T5), nor, with a deep prompt alone, below the
  first encoder layer's query/key/value projections of the real tokens (see forward_parts);
- the attention matmuls' backward is 2x their forward (gradients of queries, keys and values, as the
  fused kernels compute them).

So a frozen backbone costs about 2x forward per step, full fine-tuning 3x. The count is checked against
ptflops on real and weightless models, and a schedule's cost per stage is printed, by tools/flops_check.py:

    python -m tools.flops_check model=t5-large schedule=fpt_cr          # per-stage cost and total vs vanilla
    python -m tools.flops_check model=t5-large schedule=fpt_cr --check  # ... and ptflops on the real stage models
"""
from __future__ import annotations


# --------------------------------------------------------------------------- analytic count
def _per_stack(value, stack: str, default):
    if value is None:
        return default
    return value[stack] if isinstance(value, dict) else value


def forward_parts(dims: dict, batch: int, src_len: int, tgt_len: int = 0, shallow: int = 0, deep: int = 0,
                  layers: dict | None = None, ffn_width=None, lm_head: bool = True) -> dict:
    """Forward FLOPs of one batch: "linear" (projections, FFNs, LM head) and "attention" (the two attention
    matmuls), and the parts of each whose inputs carry no gradient when only the prompt trains
    ("linear_no_grad", "attention_no_grad"): with a deep prompt alone the first encoder layer's query, key
    and value projections; in the first decoder layer the self-attention's query, key and value projections
    and, without a deep prompt (nothing trainable in it), its output projection and matmuls and the
    cross-attention's query projection."""
    d, inner = dims["hidden"], dims["heads"] * dims["head_dim"]
    gated = dims.get("gated", False)
    layers = layers or dims["layers"]
    src = src_len + shallow

    def proj(tokens, n_in, n_out):
        return 2 * batch * tokens * n_in * n_out

    def attention(q, kv, keys):  # (projections, matmuls)
        return 2 * proj(q, d, inner) + 2 * proj(kv, d, inner), 2 * 2 * batch * q * keys * inner

    def ffn(tokens, width):
        return proj(tokens, d, width) * (2 if gated else 1) + proj(tokens, width, d)

    p, m = attention(src, src, src + deep)
    enc = layers["encoder"]
    out = {"linear": enc * (p + ffn(src, _per_stack(ffn_width, "encoder", dims["ffn"]))), "attention": enc * m,
           "linear_no_grad": 0 if shallow else 3 * proj(src, d, inner), "attention_no_grad": 0}
    if "decoder" in layers and tgt_len:
        dec = layers["decoder"]
        sp, sm = attention(tgt_len, tgt_len, tgt_len + deep)
        cp, cm = attention(tgt_len, src, src + deep)
        out["linear"] += dec * (sp + cp + ffn(tgt_len, _per_stack(ffn_width, "decoder", dims["ffn"])))
        out["attention"] += dec * (sm + cm)
        out["linear_no_grad"] += (3 if deep else 5) * proj(tgt_len, d, inner)
        out["attention_no_grad"] += 0 if deep else sm
        if lm_head:
            out["linear"] += proj(tgt_len, d, dims["vocab"])
    return out


def step_flops(dims: dict, batch: int, src_len: int, tgt_len: int = 0, shallow: int = 0, deep: int = 0,
               layers: dict | None = None, ffn_width=None, backbone_trains: bool = False) -> int:
    """Forward + backward FLOPs of one training step (see the module docstring).

    dims: Family.dims(config). layers: {"encoder": n, "decoder": m} actually run (default: all).
    ffn_width: FFN neurons kept per layer, an int or {"encoder": w, "decoder": w} (default: all).
    shallow/deep: prompt lengths (PromptedModel.flops_shape()). backbone_trains: full fine-tuning.
    """
    parts = forward_parts(dims, batch, src_len, tgt_len, shallow, deep, layers, ffn_width)
    linear, attention = parts["linear"], parts["attention"]
    if backbone_trains:
        return 3 * (linear + attention)
    backward = (linear - parts["linear_no_grad"]) + 2 * (attention - parts["attention_no_grad"])
    return linear + attention + backward
