"""Compute accounting: the analytic FLOPs the trainer logs (fpt.flops) vs ptflops on real (and meta) models
(tools/flops_check.py); FPT ratios."""
import pytest
import torch
from helpers import GROWTH_STAGES, TINY_FPT, compose
from ptflops.aten_engine import FlopCounterMode

from fpt.config import StageConfig
from fpt.flops import step_flops
from fpt.growth import Growth, resolve_stages
from fpt.models import build_model, load_tokenizer
from fpt.task_kinds import get_kind
from tools.flops_check import (PAPER_SHAPE, check_stages, main, measured_flops, meta_batch, meta_model, run_flops,
                               schedule_costs, torch_flops, total_ratio)

torch.set_num_threads(1)
VOCAB = 256  # small, so the T5 LM head does not drown the rest of the count
SMALL = {"tiny-bert": [f"model.from_config.vocab_size={VOCAB}", "model.from_config.num_hidden_layers=4"],
         "tiny-t5": [f"model.from_config.vocab_size={VOCAB}", "model.from_config.num_layers=4",
                     "model.from_config.num_decoder_layers=4"],
         "tiny-deberta": ["model.from_config.num_hidden_layers=4"]}  # (its vocabulary only feeds the embeddings)
# Tolerance of the comparisons with torch's FlopCounterMode on tiny real models: 2%. Both counts hold matrix
# products only (softmax, norms, the gate's elementwise mixing: neither counts them); the analytic count leaves out
# the task head (BERT's pooler and classifier) and counts the first layer's query gradient, which autograd skips
# when only a deep prompt trains (nothing trainable below it). Together < 1% at these shapes; a missing attention
# pass or DeBERTa's position terms are 5-30%.
TINY_TOL = 0.02


def _model(name: str, prompt: str, attn: str = "sdpa"):
    cfg = compose(f"model={name}", f"prompt={prompt}", "prompt.length=4", f"model.attn_implementation={attn}",
                  *SMALL[name])
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2,
                       kind=get_kind(cfg.task)).eval(), cfg


def _batch(seq2seq: bool, batch=3, src=12, tgt=5):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (batch, src), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if seq2seq:
        out["labels"] = torch.randint(5, VOCAB, (batch, tgt), generator=g)
    else:
        out["label"] = torch.tensor([0, 1, 0][:batch])
    return out


def _analytic(model, cfg, batch, shape=None):
    dims = model.family.dims(model.backbone.config)
    tgt = batch["labels"].shape[1] if "labels" in batch else 0
    return step_flops(dims, *batch["input_ids"].shape, tgt, backbone_trains=cfg.prompt.type == "none",
                      **model.flops_shape(), **(shape or {}))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("prompt", ["shallow", "deep", "none"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_analytic_step_flops_match_ptflops_on_real_models(name, prompt, attn):
    """Forward + backward of the real model (full and, with a prompt, a partial stage) counted by ptflops."""
    model, cfg = _model(name, prompt, attn)
    batch = _batch(model.family.seq2seq)
    shapes = [None]
    if prompt != "none":
        dims = model.family.dims(model.backbone.config)
        cfg.schedule.stages = [StageConfig(layers=2, ffn_ratio=0.5, fraction=0.5), StageConfig()]
        cfg.schedule.reduce_decoder = True
        growth = Growth(model, resolve_stages(cfg.schedule, dims, 10),
                        {s: torch.rand(n, dims["ffn"]) for s, n in dims["layers"].items()})
        growth.enter(0)
        shapes = [growth.current_shape(dims)]
    measured, analytic = measured_flops(model, batch), _analytic(model, cfg, batch, shapes[0])
    if name == "tiny-t5" and attn == "sdpa":
        assert measured == analytic
    else:  # BERT's pooler and classifier are not in the analytic count, and with eager attention autograd
        # skips a first layer's query gradient that the fused kernel computes
        assert measured == pytest.approx(analytic, rel=0.02)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_fused_attention_is_counted_like_eager_attention(name):
    """ptflops alone misses the SDPA kernel on CPU; with our hooks the count equals eager attention's
    (every weight trains, so autograd computes every gradient the fused kernel does)."""
    sdpa, _ = _model(name, "none", "sdpa")
    eager, _ = _model(name, "none", "eager")
    batch = _batch(sdpa.family.seq2seq)
    assert measured_flops(sdpa, batch) == measured_flops(eager, batch)
    plain = FlopCounterMode(None, verbose=False, print_per_layer_stat=False,
                            output_params={"print_params": {}, "serialize_params": {}})
    with plain:
        sdpa(batch)["loss"].backward()
    assert 2 * plain.complexity < measured_flops(sdpa, batch, backward=True)


@pytest.mark.parametrize("prompt, low, high", [("shallow", 1.9, 2.3), ("deep", 1.8, 2.3), ("none", 2.95, 3.05)])
def test_backward_costs_about_2x_forward_for_frozen_backbones(prompt, low, high):
    model, cfg = _model("tiny-bert", prompt)
    batch = _batch(False)
    forward = measured_flops(model, batch, backward=False)
    step = measured_flops(model, batch)
    assert low < step / forward < high
    assert step == pytest.approx(_analytic(model, cfg, batch), rel=0.02)


@pytest.mark.parametrize("schedule, low, high", [("fpt_ld", 0.69, 0.75), ("fpt_fr", 0.80, 0.86),
                                                 ("fpt_cr", 0.62, 0.70), ("fpt", 0.62, 0.70)])
def test_t5_large_schedule_costs_match_the_paper(schedule, low, high):
    cfg = compose("model=t5-large", f"schedule={schedule}", "prompt=shallow", "trainer.max_steps=30000")
    rows = schedule_costs(cfg, *PAPER_SHAPE)
    assert [r["steps"] for r in rows] == [6000, 6000, 6000, 12000]
    assert [r["relative"] for r in rows] == sorted(r["relative"] for r in rows) and rows[-1]["relative"] == 1.0
    assert low <= total_ratio(rows) <= high


def test_flops_command_prints_stages_and_the_paper_number(capsys):
    main(["model=t5-large", "schedule=fpt_cr"])
    out = capsys.readouterr().out
    assert "704" in out and "2112" in out and "FPT paper: 0.65" in out
    paper_line = [line for line in out.splitlines() if "FPT paper" in line][0]
    assert 0.62 <= float(paper_line.split(":")[-2].split()[0]) <= 0.70


def test_ptflops_on_weightless_t5_large_stages_matches_the_analytic_count():
    cfg = compose("model=t5-large", "schedule=fpt_cr", "prompt=shallow", "trainer.max_steps=30000")
    rows = check_stages(cfg, 492, 10)
    assert len(rows) == 4 and rows[0]["ptflops"] < rows[-1]["ptflops"] / 3
    assert all(r["ratio"] == pytest.approx(1.0, abs=1e-3) for r in rows)


def _gated_stage(name: str, attn: str):
    """The 4-layer model of `name` with a deep prompt in stage 1 of a gated schedule (layers 0 and 3, then all 4:
    layers 1 and 2 joined behind gates)."""
    model, cfg = _model(name, "deep", attn)
    model.train()  # a training step (with attention dropout CPU sdpa runs as matrix products torch counts)
    dims = model.family.dims(model.backbone.config)
    cfg.schedule.stages = [StageConfig(layers=2, steps=4), StageConfig()]
    cfg.schedule.reduce_decoder = True
    growth = Growth(model, resolve_stages(cfg.schedule, dims, 8), None, "gate")
    growth.enter(0)
    growth.enter(4)
    return model, cfg, growth.current_shape(dims)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5", "tiny-deberta"])
def test_gated_sites_extra_attention_passes_are_counted(name, attn):
    """A gated site runs its attention twice more (fpt/prompts.py); torch's FlopCounterMode sees those passes and
    the analytic count must too (it was 0.88 of the measured count for this BERT, 0.90 for T5)."""
    model, cfg, shape = _gated_stage(name, attn)
    batch = _batch(model.family.seq2seq)
    measured, analytic = torch_flops(model, batch), _analytic(model, cfg, batch, shape)
    assert analytic == pytest.approx(measured, rel=TINY_TOL)
    assert shape["gated"] == {s: 2 for s in shape["layers"]} and len(model.deep.gates) == (6 if name == "tiny-t5"
                                                                                          else 2)
    assert measured == measured_flops(model, batch)  # ptflops with our hooks counts the same
    ungated = _analytic(model, cfg, batch, {**shape, "gated": {}})
    assert measured / ungated > 1 + 2 * TINY_TOL  # the passes are well beyond the tolerance


def test_gates_in_a_schedules_cost_only_after_the_first_stage():
    """tools.flops_check's per-stage cost counts the gates from the stage after the first, as the trainer does."""
    rows = {mode: schedule_costs(compose("model=minilm", "prompt=deep", "schedule=fpt",
                                         f"schedule.new_layer_prefix={mode}", "trainer.max_steps=750"), 64, 0)
            for mode in ("init", "gate")}
    init, gate = ([r["relative"] for r in rows[m]] for m in ("init", "gate"))
    assert gate[0] == init[0] and all(g > i for g, i in zip(gate[1:], init[1:]))
    assert [r["gated"] for r in rows["gate"]] == [{"encoder": 0}, {"encoder": 1}, {"encoder": 2}, {"encoder": 4}]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("prompt", ["deep", "shallow", "none"])
def test_deberta_disentangled_attention_is_counted(prompt, attn):
    """DeBERTa's c2p / p2c scores and relative-position projections are in the analytic count (tiny-deberta: 16
    log buckets, 32 relative positions against 12 tokens)."""
    model, cfg = _model("tiny-deberta", prompt, attn)
    model.train()
    batch = _batch(False)
    assert _analytic(model, cfg, batch) == pytest.approx(torch_flops(model, batch), rel=TINY_TOL)


@pytest.mark.parametrize("batch", [8, 1])
@pytest.mark.parametrize("prompt", ["deep", "none"])
def test_deberta_v3_large_step_flops_match_torch_flop_counter(prompt, batch):
    """DeBERTa-v3-large's shape on the meta device, 128 tokens: without its relative-position terms the analytic
    count was 0.86 of the measured one for a deep prompt at batch 8 and 0.58 at batch 1 (the position projections do
    not shrink with the batch). The head is tiny beside 24 layers: within 0.1%."""
    cfg = compose("model=deberta-v3-large", f"prompt={prompt}", "prompt.length=20", "model.attn_implementation=eager")
    model = meta_model(cfg).train()
    dims = model.family.dims(model.backbone.config)
    analytic = step_flops(dims, batch, 128, backbone_trains=prompt == "none", **model.flops_shape())
    assert analytic == pytest.approx(torch_flops(model, meta_batch(False, batch, 128, 0)), rel=1e-3)


def test_a_fused_kernel_that_torch_would_not_count_fails_loudly():
    """torch's FlopCounterMode has no formula for the CPU fused attention kernel (sdpa without dropout or mask):
    torch_flops refuses to count it rather than return a silent undercount."""
    model, _ = _model("tiny-bert", "none", "sdpa")
    with pytest.raises(ValueError, match="does not count it"):
        torch_flops(model, _batch(False))


def test_a_runs_flops_are_re_derived_from_its_own_batches(tmp_path):
    """tools.flops_check.run_flops replays a run's batches without a model (how the study's FLOPs were corrected):
    it equals the train_flops a gated growth run logs, which is more than the same run's without gates."""
    from fpt.trainer import Trainer
    cfg = compose(*TINY_FPT, "schedule=fpt", GROWTH_STAGES, "schedule.new_layer_prefix=gate", "trainer.eval_every=12",
                  f"output_root={tmp_path}")
    results = Trainer(cfg, tmp_path / "run").run()
    assert run_flops(cfg) == results["train_flops"]
    plain = compose(*TINY_FPT, "schedule=fpt", GROWTH_STAGES, "trainer.eval_every=12")
    assert run_flops(plain) < results["train_flops"]


def test_gated_layers_without_a_deep_prompt_are_refused():
    """A gate scales a deep prompt's prefix: gated layers with deep=0 are a caller's mistake, not a count."""
    dims = {"hidden": 8, "heads": 2, "head_dim": 4, "ffn": 16, "layers": {"encoder": 2}, "vocab": 10}
    with pytest.raises(ValueError, match="deep=0"):
        step_flops(dims, 2, 5, gated={"encoder": 1})
    assert step_flops(dims, 2, 5, gated={"encoder": 0}) == step_flops(dims, 2, 5)
