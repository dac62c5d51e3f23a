"""The FLOPs count checked and summarised: ptflops against fpt.flops' analytic count, and a schedule's cost.

`measured_flops` counts the aten matmuls of a real forward (and backward) with ptflops' aten backend,
plus a hook for the fused scaled-dot-product-attention kernels that ptflops (and torch's FlopCounterMode)
would otherwise miss on CPU; `torch_flops` counts with torch's own FlopCounterMode alone (tests use both).
On the meta device models of any size are counted without weights (the
architectures of the hub models the configs name are in KNOWN_CONFIGS, so neither weights nor the network
are needed). Run from the repository root:

    python -m tools.flops_check model=t5-large schedule=fpt_cr          # per-stage cost and total vs vanilla
    python -m tools.flops_check model=t5-large schedule=fpt_cr --check  # ... and ptflops on the real stage models
    python -m tools.flops_check experiment=fpt_sst2/deep_fpt_gate seed=1 --replay  # a run's own batches vs vanilla

A tool, not part of the library: the trainer uses only fpt.flops.step_flops.
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch
from omegaconf import OmegaConf, open_dict
from ptflops.aten_engine import FlopCounterMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode as TorchFlopCounter
from transformers import AutoConfig

from fpt.batching import collate, train_stream
from fpt.build import features as build_features
from fpt.config import compose
from fpt.flops import step_flops
from fpt.growth import Growth, gated_layers, reduces_decoder, resolve_stages, stage_shape
from fpt.models import build_model, get_family, load_tokenizer, resolve_path
from fpt.task_kinds import get_kind
from fpt.prompt_methods import prompt_method

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
    "deberta-v3-large": dict(model_type="deberta-v2", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, vocab_size=128100, max_position_embeddings=512,
                             relative_attention=True, position_buckets=256, max_relative_positions=-1,
                             pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm",
                             position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7),
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


def _is_meta_scalar(func, args) -> bool:
    return func._overloadpacket is aten._local_scalar_dense and args[0].is_meta


def _meta_answer(args):
    """What a data-dependent check on a meta tensor (`mask.all()`, `pad_id in ids`) is told: True, or 1."""
    return True if args[0].dtype == torch.bool else 1


class MetaAnswers(TorchDispatchMode):
    """Within the block data-dependent checks on meta tensors answer (_meta_answer), so weightless models run;
    with refuse_fused, a fused attention kernel (SDPA_HOOKS: torch's FlopCounterMode has no formula for the CPU
    one) fails loudly instead of going uncounted."""

    def __init__(self, refuse_fused: bool = False):
        super().__init__()
        self.refuse_fused = refuse_fused

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.refuse_fused and func._overloadpacket in SDPA_HOOKS:
            raise ValueError(f"{func} ran: torch's FlopCounterMode does not count it on every device; count this "
                             f"model with measured_flops (ptflops and our hooks)")
        return _meta_answer(args) if _is_meta_scalar(func, args) else func(*args, **(kwargs or {}))


class Counter(FlopCounterMode):
    """ptflops' aten counter, plus the fused attention kernels and addmm without its bias; on the meta device
    data-dependent checks answer (_meta_answer), so weightless models can be counted."""

    def __init__(self):
        super().__init__(None, verbose=False, print_per_layer_stat=False,
                         output_params={"print_params": {}, "serialize_params": {}},
                         custom_hooks={aten.addmm: _mm_macs, **SDPA_HOOKS})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if _is_meta_scalar(func, args):
            return _meta_answer(args)
        return super().__torch_dispatch__(func, types, args, kwargs)


def torch_flops(model, batch: dict) -> int:
    """FLOPs of model(batch) and the backward of its loss as torch's own FlopCounterMode counts them (matrix
    products only; no hooks of ours: a second, independent measurement; on the meta device too). A fused
    attention kernel that it would not count fails loudly (eager attention, and sdpa given a mask, run as
    matrix products)."""
    counter = TorchFlopCounter(display=False)
    with MetaAnswers(refuse_fused=True), counter:
        model(batch)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


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
    settings = model_cfg.from_config or KNOWN_CONFIGS.get(model_cfg.name)
    if settings:
        settings = dict(settings)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)
    return AutoConfig.from_pretrained(resolve_path(model_cfg.name_or_path))


def model_dims(model_cfg) -> dict:
    return get_family(model_cfg).dims(hf_config(model_cfg))


def meta_model(cfg, num_labels: int = 2):
    """The prompted model of cfg on the meta device: shapes only, no weights, no download. (Not fpt.build.build:
    that loads the tokenizer and the data and places the model; this needs neither, and builds under the meta
    device and MetaAnswers.)"""
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
    with torch.device("meta"), MetaAnswers():  # (a deep prompt's start-up check runs a forward)
        return build_model(cfg.model, cfg.prompt, cfg.task, None, num_labels, kind=get_kind(cfg.task))


def meta_batch(seq2seq: bool, batch: int, src_len: int, tgt_len: int) -> dict:
    ids = torch.ones(batch, src_len, dtype=torch.long, device="meta")
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if seq2seq:
        out["labels"] = torch.ones(batch, tgt_len, dtype=torch.long, device="meta")
    else:
        out["label"] = torch.zeros(batch, dtype=torch.long, device="meta")
    return out


# --------------------------------------------------------------------------- python -m tools.flops_check
def _prompt_shape(cfg) -> dict:
    """The prompt's step_flops keywords from the config (no model built)."""
    method = prompt_method(cfg.prompt.type)
    return {"shallow": cfg.prompt.length if method.input_tokens else 0,
            "deep": cfg.prompt.length if method.layer_prefix else 0, "backbone_trains": method.trains_backbone}


def _stage_shapes(cfg, dims: dict, total_steps: int) -> list[tuple[int, int, dict]]:
    """(start, end, step_flops keywords) of every stage of cfg's schedule; [] without stages."""
    if not cfg.schedule.stages:
        return []
    stages = resolve_stages(cfg.schedule, dims, total_steps,
                            reduces_decoder(cfg.schedule, get_kind(cfg.task).generates_text))
    gated = gated_layers(stages, dims, cfg.schedule.new_layer_prefix, prompt_method(cfg.prompt.type).layer_prefix)
    return [(st.start, st.end, stage_shape(st, gated)) for st in stages]


def schedule_costs(cfg, src_len: int, tgt_len: int, total_steps: int | None = None) -> list[dict]:
    """Per-stage training FLOPs per step, relative to the full model's, and each stage's steps."""
    dims = model_dims(cfg.model)
    total_steps = total_steps or cfg.trainer.max_steps
    common = dict(dims=dims, batch=cfg.trainer.batch_size, src_len=src_len,
                  tgt_len=tgt_len if get_family(cfg.model).seq2seq else 0, **_prompt_shape(cfg))
    full = step_flops(**common)
    stages = _stage_shapes(cfg, dims, total_steps)
    if not stages:
        return [{"stage": 0, "steps": total_steps, "layers": dims["layers"], "ffn_width": dims["ffn"],
                 "step_flops": full, "relative": 1.0}]
    rows = []
    for k, (start, end, shape) in enumerate(stages):
        flops = step_flops(**common, **shape)
        rows.append({"stage": k, "steps": end - start, **shape, "step_flops": flops, "relative": flops / full})
    return rows


def run_flops(cfg) -> int:
    """The training FLOPs a run of cfg logs (results.json `train_flops`), re-derived without running a model: the
    training set is read and batched as the trainer does (fpt.batching.train_stream, each batch padded to its
    longest row) and every step is counted by fpt.flops.step_flops at its stage's shape. For a study's FLOPs
    after the counter changed (benchmarks/README.md); one process, trainer.grad_accum=1, trainer.max_steps."""
    if cfg.trainer.grad_accum != 1 or not cfg.trainer.max_steps:
        raise ValueError("run_flops re-derives runs with trainer.grad_accum=1 and trainer.max_steps set")
    family, kind, tokenizer = get_family(cfg.model), get_kind(cfg.task), load_tokenizer(cfg.model)
    features = build_features(cfg, kind, tokenizer, family.seq2seq, "train")  # as the Trainer's (fpt/build.py)
    total = cfg.trainer.max_steps
    stream = train_stream(features, cfg.trainer.batch_size, cfg.seed, cfg.trainer.group_by_length, end=total)
    dims = model_dims(cfg.model)
    stages = _stage_shapes(cfg, dims, total) or [(0, total, {})]
    flops = 0
    for start, end, shape in stages:
        for step in range(start, end):
            batch = collate([features[i] for i in stream.indices(step)], tokenizer.pad_token_id or 0)
            tgt = batch["labels"].shape[1] if family.seq2seq else 0
            flops += step_flops(dims, *batch["input_ids"].shape, tgt, **_prompt_shape(cfg), **shape)
    return flops


def check_stages(cfg, src_len: int, tgt_len: int, batch: int = 1) -> list[dict]:
    """ptflops on every stage's real (meta-device) model vs the analytic count: forward + backward."""
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
        analytic = step_flops(dims, batch, src_len, tgt, backbone_trains=prompt_method(cfg.prompt.type).trains_backbone,
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
    parser.add_argument("--replay", action="store_true", help="also the run's total training FLOPs from its own "
                        "batches (reads the training data, runs no model) and the same run's with schedule=none")
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
    if args.replay:
        ours, vanilla = run_flops(cfg), run_flops(compose(*overrides, "schedule=none"))
        print(f"this run's batches: {ours} training FLOPs (results.json train_flops); with schedule=none: "
              f"{vanilla}; ratio {ours / vanilla:.3f}")
    if args.check:
        print("ptflops (aten backend, SDPA hooked) on each stage's model, forward + backward, batch 1:")
        for r in check_stages(cfg, src_len, args.tgt_len):
            print(f"  stage {r['stage']}: ptflops {r['ptflops'] / 1e9:.3f} GFLOPs, analytic "
                  f"{r['analytic'] / 1e9:.3f} GFLOPs, ratio {r['ratio']:.4f}")
    return rows


if __name__ == "__main__":
    main()
