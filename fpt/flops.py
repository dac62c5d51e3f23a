"""Training FLOPs: the analytic count per step that the trainer logs.

A FLOP is one multiply or one add (a multiply-accumulate is 2 FLOPs). Only matrix products are
counted: the linear layers and the two attention matmuls over prompt + real tokens (norms, softmax
and biases are a rounding error), plus two things some sites do on top:

- DeBERTa's disentangled attention (dims["relative"]): per layer, the projections of the 2k relative-position
  embeddings (batch 1) and the content->position (c2p) and position->content (p2c) scores of the real tokens,
  [len, head_dim] x [head_dim, 2k] per head: products with a frozen matrix, so they count as linear layers
  (the position projections' inputs carry no gradient, ever);
- a gated joining prefix (schedule.new_layer_prefix=gate, fpt/prompts.py): a gated site runs its attention
  twice, once on the real keys and once on a doubled batch over prefix + real keys, instead of once over
  prefix + real keys: `gated` layers per stack pay two attention passes more (never a stack's first layer,
  which every stage keeps).

A training step is forward plus backward:

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
                  layers: dict | None = None, ffn_width=None, lm_head: bool = True, gated: dict | None = None) -> dict:
    """Forward FLOPs of one batch: "linear" (projections, FFNs, LM head) and "attention" (the two attention
    matmuls), and the parts of each whose inputs carry no gradient when only the prompt trains
    ("linear_no_grad", "attention_no_grad"): with a deep prompt alone the first encoder layer's query, key
    and value projections; in the first decoder layer the self-attention's query, key and value projections
    and, without a deep prompt (nothing trainable in it), its output projection and matmuls and the
    cross-attention's query projection. DeBERTa's relative-position terms go to "linear" (see the module
    docstring); `gated` layers' extra attention passes to "attention"."""
    d, inner = dims["hidden"], dims["heads"] * dims["head_dim"]
    gated_ffn = dims.get("gated", False)
    layers = layers or dims["layers"]
    gated = gated or {}
    if any(gated.values()) and not deep:
        raise ValueError(f"gated={gated}: a gate scales a deep prompt's prefix; there is none (deep=0)")
    src = src_len + shallow

    def proj(tokens, n_in, n_out):
        return 2 * batch * tokens * n_in * n_out

    def attention(q, kv, keys):  # (projections, matmuls)
        return 2 * proj(q, d, inner) + 2 * proj(kv, d, inner), 2 * 2 * batch * q * keys * inner

    def ffn(tokens, width):
        return proj(tokens, d, width) * (2 if gated_ffn else 1) + proj(tokens, width, d)

    def gate_passes(q, kv):  # a gated site's kernel on the real keys and on prefix + real keys
        return attention(q, kv, kv)[1] + attention(q, kv, kv + deep)[1]

    p, m = attention(src, src, src + deep)
    enc = layers["encoder"]
    out = {"linear": enc * (p + ffn(src, _per_stack(ffn_width, "encoder", dims["ffn"]))),
           "attention": enc * m + gated.get("encoder", 0) * gate_passes(src, src),
           "linear_no_grad": 0 if shallow else 3 * proj(src, d, inner), "attention_no_grad": 0}
    relative = dims.get("relative")
    if relative:  # DeBERTa: position projections (batch 1, no gradient below) and c2p / p2c of the real tokens
        span = relative["positions"]
        positions = relative["projections"] * 2 * span * d * inner
        scores = len(relative["terms"]) * proj(src, inner, span)  # per head [src, head_dim] x [head_dim, span]
        out["linear"] += enc * (positions + scores)
        out["linear_no_grad"] += enc * positions + (0 if shallow else scores)
    if "decoder" in layers and tgt_len:
        dec = layers["decoder"]
        sp, sm = attention(tgt_len, tgt_len, tgt_len + deep)
        cp, cm = attention(tgt_len, src, src + deep)
        out["linear"] += dec * (sp + cp + ffn(tgt_len, _per_stack(ffn_width, "decoder", dims["ffn"])))
        out["attention"] += dec * (sm + cm) + gated.get("decoder", 0) * (gate_passes(tgt_len, tgt_len) +
                                                                         gate_passes(tgt_len, src))
        out["linear_no_grad"] += (3 if deep else 5) * proj(tgt_len, d, inner)
        out["attention_no_grad"] += 0 if deep else sm
        if lm_head:
            out["linear"] += proj(tgt_len, d, dims["vocab"])
    return out


def step_flops(dims: dict, batch: int, src_len: int, tgt_len: int = 0, shallow: int = 0, deep: int = 0,
               layers: dict | None = None, ffn_width=None, backbone_trains: bool = False,
               gated: dict | None = None) -> int:
    """Forward + backward FLOPs of one training step (see the module docstring).

    dims: Family.dims(config). layers: {"encoder": n, "decoder": m} actually run (default: all).
    ffn_width: FFN neurons kept per layer, an int or {"encoder": w, "decoder": w} (default: all).
    shallow/deep: prompt lengths (PromptedModel.flops_shape()). backbone_trains: full fine-tuning.
    gated: {"encoder": n, "decoder": m} layers run now whose attention sites are gated (Growth.current_shape()).
    """
    parts = forward_parts(dims, batch, src_len, tgt_len, shallow, deep, layers, ffn_width, gated=gated)
    linear, attention = parts["linear"], parts["attention"]
    if backbone_trains:
        return 3 * (linear + attention)
    backward = (linear - parts["linear_no_grad"]) + 2 * (attention - parts["attention_no_grad"])
    return linear + attention + backward
