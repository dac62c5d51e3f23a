"""The FLOPs count checked and summarised: ptflops against fpt.flops' analytic count, and a schedule's cost.

`measured_flops` counts the aten matmuls of a real forward (and backward) with ptflops' aten backend,
plus a hook for the fused scaled-dot-product-attention kernels that ptflops (and torch's FlopCounterMode)
would otherwise miss on CPU. On the meta device models of any size are counted without weights (the
architectures of the hub models the configs name are in KNOWN_CONFIGS, so neither weights nor the network
are needed). Run from the repository root:

    python -m tools.flops_check model=t5-large schedule=fpt_cr          # per-stage cost and total vs vanilla
    python -m tools.flops_check model=t5-large schedule=fpt_cr --check  # ... and ptflops on the real stage models

A tool, not part of the library: the trainer uses only fpt.flops.step_flops.
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch
from ptflops.aten_engine import FlopCounterMode

from fpt.config import compose
from fpt.flops import step_flops

# Architectures of the hub models the configs name, so FLOPs need neither weights nor the network.
_T5 = dict(model_type="t5", d_kv=64, vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
           pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)  # T5 v1.1 / LM-adapt
_ROBERTA = dict(model_type="roberta", vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)
KNOWN_CONFIGS = {
    "t5-small": dict(_T5, d_model=512, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6),
    "t5-base": dict(_T5, d_model=768, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12),
    "t5-large": dict(_T5, d_model=1024, d_ff=2816, num_layers=24, num_decoder_layers=24, num_heads=16),
    "t5-xl": dict(_T5, d_model=2048, d_ff=5120, num_layers=24, num_decoder_layers=24, num_heads=32),
    "bert-base": dict(model_type="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, vocab_size=28996),
    "bert-large": dict(model_type="bert", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                       intermediate_size=4096, vocab_size=28996),
    "roberta-base": dict(_ROBERTA, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072),
    "roberta-large": dict(_ROBERTA, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          intermediate_size=4096),
}
# FPT's Table 2 (t5-large, MNLI): training FLOPs of the schedule relative to vanilla prompt tuning.
PAPER_RATIOS = {("t5-large", "fpt_ld"): 0.72, ("t5-large", "fpt_fr"): 0.83, ("t5-large", "fpt_cr"): 0.65,
                ("t5-large", "fpt"): 0.65}
PAPER_SHAPE = (492, 10)  # their inputs and targets (MNLI), in tokens


# --------------------------------------------------------------------------- measured count (ptflops)
aten = torch.ops.aten


def _mm_macs(inputs, outputs) -> int:
    """addmm without the bias: multiply-accumulates of the product only (as the analytic count)."""
    (n, k), m = inputs[1].shape, inputs[2].shape[1]
    return n * k * m


def _sdpa_macs(q, k, v) -> int:
    return q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _sdpa_forward(inputs, outputs) -> int:
    return _sdpa_macs(*inputs[:3])


def _sdpa_backward(inputs, outputs) -> int:  # (grad_out, q, k, v, ...): dQ, dK, dV and dP
    return 2 * _sdpa_macs(*inputs[1:4])


SDPA_HOOKS = {}
for _name in ["_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
              "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention"]:
    if hasattr(aten, _name):
        SDPA_HOOKS[getattr(aten, _name)] = _sdpa_forward
        SDPA_HOOKS[getattr(aten, _name + "_backward")] = _sdpa_backward


class Counter(FlopCounterMode):
    """ptflops' aten counter, plus the fused attention kernels and addmm without its bias; on the meta device
    data-dependent checks (such as `mask.all()`) answer True, so weightless models can be counted."""

    def __init__(self):
        super().__init__(None, verbose=False, print_per_layer_stat=False,
                         output_params={"print_params": {}, "serialize_params": {}},
                         custom_hooks={aten.addmm: _mm_macs, **SDPA_HOOKS})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._overloadpacket is aten._local_scalar_dense and args[0].is_meta:
            return True if args[0].dtype == torch.bool else 1
        return super().__torch_dispatch__(func, types, args, kwargs)


def measured_flops(model, batch: dict, backward: bool = True) -> int:
    """FLOPs of model(batch) (and of the backward of its loss) as ptflops' aten backend counts them."""
    counter = Counter()
    with counter:
        out = model(batch)
        if backward:
            out["loss"].backward()
    model.zero_grad(set_to_none=True)
    return 2 * counter.complexity


# --------------------------------------------------------------------------- models without weights
def hf_config(model_cfg):
    """The HF config of a model: from_config, the table above, or the model's own config file."""
    from transformers import AutoConfig

    from fpt.models import resolve_path
    settings = model_cfg.from_config or KNOWN_CONFIGS.get(model_cfg.name)
    if settings:
        settings = dict(settings)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)
    return AutoConfig.from_pretrained(resolve_path(model_cfg.name_or_path))


def model_dims(model_cfg) -> dict:
    from fpt.models import get_family
    return get_family(model_cfg).dims(hf_config(model_cfg))


def meta_model(cfg, num_labels: int = 2):
    """The prompted model of cfg on the meta device: shapes only, no weights, no download."""
    from omegaconf import OmegaConf, open_dict

    from fpt.models import build_model
    cfg = copy.deepcopy(cfg)
    if cfg.model.from_config:
        settings = OmegaConf.to_container(cfg.model.from_config)
    elif cfg.model.name in KNOWN_CONFIGS:
        settings = KNOWN_CONFIGS[cfg.model.name]
    else:
        config = hf_config(cfg.model)
        settings = {**config.to_diff_dict(), "model_type": config.model_type}
        settings.pop("transformers_version", None)
    with open_dict(cfg):
        cfg.model.from_config = settings
    with torch.device("meta"):
        return build_model(cfg.model, cfg.prompt, cfg.task, None, num_labels)


def meta_batch(seq2seq: bool, batch: int, src_len: int, tgt_len: int) -> dict:
    ids = torch.ones(batch, src_len, dtype=torch.long, device="meta")
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if seq2seq:
        out["labels"] = torch.ones(batch, tgt_len, dtype=torch.long, device="meta")
    else:
        out["label"] = torch.zeros(batch, dtype=torch.long, device="meta")
    return out


# --------------------------------------------------------------------------- python -m tools.flops_check
def schedule_costs(cfg, src_len: int, tgt_len: int, total_steps: int | None = None) -> list[dict]:
    """Per-stage training FLOPs per step, relative to the full model's, and each stage's steps."""
    from fpt.growth import reduces_decoder, resolve_stages
    from fpt.models import get_family
    from fpt.task_kinds import get_kind
    dims = model_dims(cfg.model)
    family = get_family(cfg.model)
    total_steps = total_steps or cfg.trainer.max_steps
    shallow = cfg.prompt.length if cfg.prompt.type == "shallow" else 0  # no model built: the config's prompt
    deep = cfg.prompt.length if cfg.prompt.type == "deep" else 0
    common = dict(dims=dims, batch=cfg.trainer.batch_size, src_len=src_len, tgt_len=tgt_len if family.seq2seq else 0,
                  shallow=shallow, deep=deep, backbone_trains=cfg.prompt.type == "none")
    full = step_flops(**common)
    if not cfg.schedule.stages:
        return [{"stage": 0, "steps": total_steps, "layers": dims["layers"], "ffn_width": dims["ffn"],
                 "step_flops": full, "relative": 1.0}]
    rows = []
    decoder = reduces_decoder(cfg.schedule, get_kind(cfg.task).generates_text)
    for k, st in enumerate(resolve_stages(cfg.schedule, dims, total_steps, decoder)):
        shape = {"layers": {s: len(v) for s, v in st.layers.items()}, "ffn_width": dict(st.ffn)}
        flops = step_flops(**common, **shape)
        rows.append({"stage": k, "steps": st.end - st.start, **shape, "step_flops": flops, "relative": flops / full})
    return rows


def check_stages(cfg, src_len: int, tgt_len: int, batch: int = 1) -> list[dict]:
    """ptflops on every stage's real (meta-device) model vs the analytic count: forward + backward."""
    from fpt.growth import Growth, reduces_decoder, resolve_stages
    from fpt.task_kinds import get_kind
    model = meta_model(cfg)
    dims = model.family.dims(model.backbone.config)
    stages = []
    if cfg.schedule.stages:
        decoder = reduces_decoder(cfg.schedule, get_kind(cfg.task).generates_text)
        stages = resolve_stages(cfg.schedule, dims, cfg.trainer.max_steps, decoder)
    scores = {s: torch.zeros(n, dims["ffn"]) for s, n in dims["layers"].items()}  # widths are all that count
    growth = Growth(model, stages, scores, cfg.schedule.new_layer_prefix)
    tgt = tgt_len if model.family.seq2seq else 0
    rows = []
    for k in range(max(1, len(stages))):
        growth.enter(stages[k].start if stages else 0)
        model.train()
        measured = measured_flops(model, meta_batch(model.family.seq2seq, batch, src_len, tgt_len))
        analytic = step_flops(dims, batch, src_len, tgt, backbone_trains=cfg.prompt.type == "none",
                              **model.flops_shape(), **growth.current_shape(dims))
        rows.append({"stage": k, "ptflops": measured, "analytic": analytic, "ratio": measured / analytic})
    return rows


def total_ratio(rows: list[dict]) -> float:
    """A schedule's training FLOPs relative to running the full model for all its steps."""
    return sum(r["steps"] * r["relative"] for r in rows) / sum(r["steps"] for r in rows)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m tools.flops_check", description=__doc__.split("\n")[0])
    parser.add_argument("--src-len", type=int, help="input tokens per example (default: task.max_length)")
    parser.add_argument("--tgt-len", type=int, default=10, help="target tokens per example (T5; default 10)")
    parser.add_argument("--check", action="store_true", help="also count each stage's real model with ptflops")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    cfg = compose(*overrides)
    src_len = args.src_len or cfg.task.max_length
    rows = schedule_costs(cfg, src_len, args.tgt_len)
    total, ratio = sum(r["steps"] for r in rows), total_ratio(rows)
    print(f"{cfg.model.name}, schedule={cfg.schedule.name}, prompt={cfg.prompt.type} (P={cfg.prompt.length}), "
          f"batch {cfg.trainer.batch_size}, {src_len} input / {args.tgt_len} target tokens, {total} steps")
    print(f"{'stage':>5} {'steps':>7} {'layers':>22} {'FFN width':>28} {'step GFLOPs':>12} {'vs full':>8}")
    for r in rows:
        print(f"{r['stage']:>5} {r['steps']:>7} {str(r['layers']):>22} {str(r['ffn_width']):>28} "
              f"{r['step_flops'] / 1e9:>12.1f} {r['relative']:>8.3f}")
    print(f"training FLOPs vs vanilla prompt tuning: {ratio:.3f}")
    paper = PAPER_RATIOS.get((cfg.model.name, cfg.schedule.name))
    if paper is not None:  # FPT measured MNLI: 492 input tokens + a 20-token shallow prompt, 10 target tokens
        paper_cfg = compose(*overrides, "prompt=shallow", "prompt.length=20")
        ours = total_ratio(schedule_costs(paper_cfg, PAPER_SHAPE[0], PAPER_SHAPE[1]))
        print(f"at the paper's shapes ({PAPER_SHAPE[0]} input + 20 prompt tokens, {PAPER_SHAPE[1]} target tokens): "
              f"{ours:.3f}   FPT paper: {paper:.2f}")
    if args.check:
        print("ptflops (aten backend, SDPA hooked) on each stage's model, forward + backward, batch 1:")
        for r in check_stages(cfg, src_len, args.tgt_len):
            print(f"  stage {r['stage']}: ptflops {r['ptflops'] / 1e9:.3f} GFLOPs, analytic "
                  f"{r['analytic'] / 1e9:.3f} GFLOPs, ratio {r['ratio']:.4f}")
    return rows


if __name__ == "__main__":
    main()
