"""FPT growth on tiny random BERT and T5 (and DeBERTa's gates): layer selection, exact partial models, expansion, prompts, resume."""
import copy
import json
import math
from pathlib import Path

import pytest
import torch
from helpers import GROWTH_STAGES as STAGES, TINY_FPT, compose, two_row_batch as _batch
from safetensors.torch import load_file

from fpt.config import StageConfig
from fpt.growth import Growth, narrow_ffn, reduces_decoder, resolve_stages, select_layers
from fpt.models import build_model, load_tokenizer
from fpt.task_kinds import get_kind

torch.set_num_threads(1)
SIX_LAYERS = {"tiny-bert": ["model.from_config.num_hidden_layers=6"],
              "tiny-t5": ["model.from_config.num_layers=6", "model.from_config.num_decoder_layers=6"],
              "tiny-deberta": ["model.from_config.num_hidden_layers=6"]}


def _model(name: str, prompt: str = "deep", *extra: str):
    cfg = compose(f"model={name}", f"prompt={prompt}", "prompt.length=3", "model.dropout=0", *extra)
    tok = load_tokenizer(cfg.model)
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.prompt, cfg.task, tok, num_labels=2, kind=get_kind(cfg.task)).eval(), tok, cfg


def _outputs(model, batch):
    with torch.no_grad():
        return model(batch)["logits"]


def _stages(model, cfg, *stages, reduce_decoder=True, total=40):
    """Resolved stages for a hand-written schedule of `total` steps."""
    sched = copy.deepcopy(cfg.schedule)
    sched.stages = [StageConfig(**st) for st in stages]
    sched.reduce_decoder = reduce_decoder
    return resolve_stages(sched, model.family.dims(model.backbone.config), total)


def _random_scores(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    dims = model.family.dims(model.backbone.config)
    return {s: torch.rand(n, dims["ffn"], generator=g) for s, n in dims["layers"].items()}


# --------------------------------------------------------------------------- layer selection
def test_layer_selection_matches_fpt():
    assert select_layers(6, 24) == [0, 4, 8, 13, 18, 23]
    assert select_layers(12, 24) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 23]
    assert select_layers(24, 24) == list(range(24))
    assert select_layers(1, 24) == [0]
    assert [select_layers(k, 6) for k in (2, 3, 4)] == [[0, 5], [0, 2, 5], [0, 1, 3, 5]]
    for total in (6, 12, 24):
        for keep in range(2, total + 1):
            kept = select_layers(keep, total)
            gaps = [b - a for a, b in zip(kept, kept[1:])]
            assert kept[0] == 0 and kept[-1] == total - 1 and len(kept) == keep
            assert max(gaps) - min(gaps) <= 1 and gaps == sorted(gaps)
    with pytest.raises(ValueError, match="25 of 24"):
        select_layers(25, 24)


def test_bottom_layers_keep_the_first_k_and_a_bad_choice_names_the_key():
    cfg = compose("model=tiny-t5", "schedule=fpt", "schedule.keep_layers=bottom", "schedule.reduce_decoder=true")
    stages = resolve_stages(cfg.schedule, {"layers": {"encoder": 24, "decoder": 24}, "ffn": 2816}, 1000)
    assert [st.layers["encoder"] for st in stages] == [list(range(k)) for k in (6, 12, 18, 24)]
    assert stages[0].layers["decoder"] == list(range(6))
    with pytest.raises(ValueError, match="Invalid value 'top', expected one of \\[spread, bottom\\]"):
        cfg.schedule.keep_layers = "top"  # an enum in the schema (fpt/config.py): refused when set


def test_stage_fractions_resolve_to_fpt_steps_and_widths():
    cfg = compose("model=tiny-t5", "schedule=fpt")
    dims = {"layers": {"encoder": 24, "decoder": 24}, "ffn": 2816, "hidden": 1024}
    stages = resolve_stages(cfg.schedule, dims, 30000)
    assert [(s.start, s.end) for s in stages] == [(0, 6000), (6000, 12000), (12000, 18000), (18000, 30000)]
    assert [s.ffn["encoder"] for s in stages] == [704, 1408, 2112, 2816]
    assert [len(s.layers["encoder"]) for s in stages] == [6, 12, 18, 24]
    assert all(s.layers["decoder"] == list(range(24)) and s.ffn["decoder"] == 2816 for s in stages)
    cfg.schedule.reduce_decoder = True
    assert resolve_stages(cfg.schedule, dims, 15000)[0].layers["decoder"] == [0, 4, 8, 13, 18, 23]
    six = resolve_stages(cfg.schedule, {"layers": {"encoder": 6}, "ffn": 1536}, 750)
    assert [len(s.layers["encoder"]) for s in six] == [2, 3, 4, 6]
    assert [(s.start, s.end) for s in six] == [(0, 150), (150, 300), (300, 450), (450, 750)]
    partial = compose("model=tiny-t5", "schedule=partial_cr", "schedule.size=0.75").schedule
    [only] = resolve_stages(partial, dims, 30000)
    assert len(only.layers["encoder"]) == 18 and only.ffn["encoder"] == 2112 and (only.start, only.end) == (0, 30000)


@pytest.mark.parametrize("task, override, expected", [("mnli", None, False), ("qqp", None, False),
                                                      ("xsum", None, True), ("squad_v2", None, True),
                                                      ("record", None, True), ("mnli", "true", True),
                                                      ("xsum", "false", False)])
def test_decoder_shrinks_for_generated_answers_by_default(task, override, expected):
    extra = [f"schedule.reduce_decoder={override}"] if override else []
    cfg = compose("model=tiny-t5", "schedule=fpt", f"task={task}", *extra)
    decoder = reduces_decoder(cfg.schedule, get_kind(cfg.task).generates_text)
    assert decoder is expected
    dims = {"layers": {"encoder": 24, "decoder": 24}, "ffn": 2816}
    first = resolve_stages(cfg.schedule, dims, 100, decoder)[0]
    assert (len(first.layers["decoder"]), first.ffn["decoder"]) == ((6, 704) if expected else (24, 2816))


@pytest.mark.parametrize("override, message", [
    ("schedule.stages.0.layers=6.5", "schedule.stages.0.layers=6.5"),
    ("schedule.stages.1.ffn_ratio=0", "schedule.stages.1.ffn_ratio=0"),
    ("schedule.stages.3.steps=5", "cover"),
    ("schedule.stages.0.fraction=null", "schedule.stages.0: give steps or fraction"),
])
def test_bad_stages_fail_naming_the_key(override, message):
    cfg = compose("model=tiny-t5", "schedule=fpt", override)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        resolve_stages(cfg.schedule, {"layers": {"encoder": 24}, "ffn": 2816}, 1000)


@pytest.mark.parametrize("overrides, message", [
    (["schedule=fpt", "prompt=none"], "prompt=none"),
    (["schedule=fpt", "prompt=bitfit"], "prompt=bitfit"),
    (["schedule=fpt_ld", "schedule.new_layer_prefix=copy", "prompt.projection=true"], "prompt.projection=true"),
])
def test_bad_growth_settings_fail_naming_the_key(overrides, message):
    cfg = compose("model=tiny-bert", "prompt=deep", *overrides)
    model = build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2,
                        kind=get_kind(cfg.task))
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        Growth.from_config(cfg.schedule, model, 100, prompt_type=cfg.prompt.type,
                           prompt_projection=cfg.prompt.projection)


# --------------------------------------------------------------------------- exact partial models
@pytest.mark.parametrize("prompt", ["deep", "shallow"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_partial_model_keeping_everything_equals_full_model(name, prompt):
    """Every layer re-selected into a new stack and every FFN sliced to all its neurons (in a shuffled
    order): the same function as the untouched model."""
    model, tok, _ = _model(name, prompt)
    batch = _batch(tok, model.family.seq2seq)
    reference = _outputs(model, batch)
    family, backbone = model.family, model.backbone
    g = torch.Generator().manual_seed(1)
    for stack, layers in family.layer_stacks(backbone).items():
        for layer in layers:
            ffn = family.ffn(layer)
            narrow_ffn(ffn, torch.randperm(ffn.width, generator=g))
        family.set_layer_stack(backbone, stack, torch.nn.ModuleList(list(layers)))
    torch.testing.assert_close(_outputs(model, batch), reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, extra", [("tiny-bert", []), ("tiny-t5", []),
                                         ("tiny-t5", ["model.from_config.feed_forward_proj=relu"])])
def test_reduced_ffn_equals_full_model_with_other_neurons_zeroed(name, extra):
    model, tok, cfg = _model(name, "shallow", *extra)
    reference, _, _ = _model(name, "shallow", *extra)  # same seed: same weights and prompt
    family = model.family
    gated = len(family.ffn(family.layer_stacks(model.backbone)["encoder"][0]).in_projs) == 2
    assert gated == (name == "tiny-t5" and not extra)
    batch = _batch(tok, family.seq2seq)
    full = _outputs(model, batch)
    scores = _random_scores(model)
    stages = _stages(model, cfg, {"ffn_ratio": 0.25, "fraction": 0.5}, {}, reduce_decoder=True)
    Growth(model, stages, scores).enter(0)
    width = stages[0].ffn["encoder"]
    for stack, layers in family.layer_stacks(reference.backbone).items():
        for i, layer in enumerate(layers):
            keep = torch.zeros(scores[stack].shape[1], dtype=torch.bool)
            keep[scores[stack][i].topk(width).indices] = True
            family.ffn(layer).out_proj.register_forward_pre_hook(lambda m, a, keep=keep: (a[0] * keep,))
    reduced = _outputs(model, batch)
    torch.testing.assert_close(reduced, _outputs(reference, batch), atol=1e-5, rtol=1e-5)
    assert (reduced - full).abs().max() > 1e-4  # the reduction does change the model
    assert all(family.ffn(layer).width == width
               for layers in family.layer_stacks(model.backbone).values() for layer in layers)


@pytest.mark.parametrize("keep, kept", [("spread", [0, 2, 5]), ("bottom", [0, 1, 2])])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_layer_dropping_runs_exactly_the_selected_layers(name, keep, kept):
    model, tok, cfg = _model(name, "deep", *SIX_LAYERS[name], f"schedule.keep_layers={keep}")
    family = model.family
    original = {s: list(layers) for s, layers in family.layer_stacks(model.backbone).items()}
    ran = []
    for stack, layers in original.items():
        for i, layer in enumerate(layers):
            layer.register_forward_hook(lambda *a, key=(stack, i): ran.append(key))
    growth = Growth(model, _stages(model, cfg, {"layers": 3, "fraction": 0.5}, {}))
    growth.enter(0)
    _outputs(model, _batch(tok, family.seq2seq))
    assert sorted(set(ran)) == sorted((s, i) for s in original for i in kept)
    assert growth.current_shape(family.dims(model.backbone.config))["layers"] == {s: 3 for s in original}
    assert model.active_sites == [family.site_layer(n)[1] in kept for n in model.site_names]
    if name == "tiny-t5":  # the KV cache is indexed by position: renumbered in the stage, restored at full size
        assert [b.layer[0].SelfAttention.layer_idx for b in model.backbone.decoder.block] == [0, 1, 2]
        assert [b.layer[1].EncDecAttention.layer_idx for b in model.backbone.decoder.block] == [0, 1, 2]
        assert model.backbone.encoder.block[0].layer[0].SelfAttention.has_relative_attention_bias
    growth.enter(20)
    assert all(a is b for s in original for a, b in zip(family.layer_stacks(model.backbone)[s], original[s]))
    assert model.active_sites is None
    if name == "tiny-t5":
        assert [b.layer[0].SelfAttention.layer_idx for b in model.backbone.decoder.block] == list(range(6))


def _assert_cached_generation_equals_recomputed(model, batch):
    """Greedy decoding with the KV cache equals recomputing every step without it (prefixes re-attached)."""
    cached = model.generate(batch, max_new_tokens=6)
    embeds, mask = model.encoder_inputs(batch)
    with model.deep_prompt():
        plain = model.backbone.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False, num_beams=1,
                                        max_new_tokens=6, use_cache=False)
    assert torch.equal(cached, plain)


@pytest.mark.parametrize("prompt", ["deep", "shallow"])
def test_partial_t5_generates_the_same_with_and_without_cache(prompt):
    model, tok, cfg = _model("tiny-t5", prompt, *SIX_LAYERS["tiny-t5"])
    Growth(model, _stages(model, cfg, {"layers": 3, "ffn_ratio": 0.5, "fraction": 0.5}, {}),
           _random_scores(model)).enter(0)
    batch = _batch(tok, True)
    _assert_cached_generation_equals_recomputed(model, batch)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_expansion_restores_the_full_model_bitwise(name):
    model, tok, cfg = _model(name, "deep", *SIX_LAYERS[name])
    batch = _batch(tok, model.family.seq2seq)
    before_out = _outputs(model, batch)
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    growth = Growth(model, _stages(model, cfg, {"layers": 2, "ffn_ratio": 0.25, "fraction": 0.25},
                                   {"layers": 4, "ffn_ratio": 0.5, "fraction": 0.25}, {}), _random_scores(model),
                    new_layer_prefix="init")  # (copy would change the joining layers' prefixes)
    for step in (0, 10):
        growth.enter(step)
        assert not torch.equal(_outputs(model, batch), before_out)
    growth.enter(20)
    assert growth.final_stage
    after = model.state_dict()
    assert list(after) == list(before_state)
    assert all(torch.equal(after[k], v) for k, v in before_state.items())
    assert torch.equal(_outputs(model, batch), before_out)


def test_ffn_neuron_sets_are_nested_from_stage_to_stage():
    model, _, cfg = _model("tiny-bert", "deep", *SIX_LAYERS["tiny-bert"])
    growth = Growth(model, _stages(model, cfg, {"ffn_ratio": 0.25, "fraction": 0.25},
                                   {"ffn_ratio": 0.5, "fraction": 0.25}, {"ffn_ratio": 0.75}), _random_scores(model))
    full = [model.family.ffn(layer).in_projs[0].weight.clone() for layer in model.backbone.encoder.layer]
    kept = []
    for step in (0, 10, 20):
        growth.enter(step)
        rows = []
        for layer, weight in zip(model.backbone.encoder.layer, full):
            sliced = model.family.ffn(layer).in_projs[0].weight
            rows.append({int((weight == row).all(1).nonzero()[0]) for row in sliced})  # which neurons
        kept.append(rows)
    for small, large in zip(kept, kept[1:]):
        assert all(a < b for a, b in zip(small, large))


# --------------------------------------------------------------------------- prompts across an expansion
@pytest.mark.parametrize("mode", ["copy", "init"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_deep_prefixes_across_an_expansion(name, mode):
    model, tok, cfg = _model(name, "deep", *SIX_LAYERS[name])
    deep = model.deep
    growth = Growth(model, _stages(model, cfg, {"layers": 2, "ffn_ratio": 0.5, "fraction": 0.5}, {}),
                    _random_scores(model), new_layer_prefix=mode)
    growth.enter(0)
    with torch.no_grad():
        for param in deep.prefixes:
            param.add_(torch.randn_like(param))  # "trained": differs from the init
    before = [p.detach().clone() for p in deep.prefixes]
    params = list(deep.prefixes)
    assert growth.enter(20)
    for i, name_i in enumerate(model.site_names):
        stack, layer, kind = name_i.split(".", 2)
        now, was = deep.site_params(i), before[i]
        assert now is params[i]  # the same Parameter (its optimizer state is its own)
        if int(layer) in (0, 5):  # kept: bitwise the same
            assert torch.equal(now, was), name_i
        elif mode == "init":
            assert torch.equal(now, was), name_i
        else:  # joined: the nearest trained layer's prefix (0 for layers 1-2, 5 for 3-4)
            src = model.site_names.index(f"{stack}.{0 if int(layer) <= 2 else 5}.{kind}")
            assert torch.equal(now, before[src]), name_i
    assert growth.enter(20) is False  # idempotent


def test_copy_fills_only_layers_that_never_trained_a_returning_layer_keeps_its_prefix():
    """FPT's evenly spaced sets are not nested on 6 layers: [0, 5], [0, 2, 5], [0, 1, 3, 5], all. Layer 2 trains in
    stage 1, is absent in stage 2 and comes back in stage 3 with its own prefix; layer 4 joins for the first time
    in stage 3 and copies its nearest stage-2 layer (3 and 5 tie: the lower)."""
    model, tok, cfg = _model("tiny-bert", "deep", *SIX_LAYERS["tiny-bert"])
    deep = model.deep
    stages = _stages(model, cfg, {"layers": 2, "fraction": 0.25}, {"layers": 3, "fraction": 0.25},
                     {"layers": 4, "fraction": 0.25}, {})
    assert [st.layers["encoder"] for st in stages[:3]] == [[0, 5], [0, 2, 5], [0, 1, 3, 5]]
    growth = Growth(model, stages, new_layer_prefix="copy")
    site = {model.family.site_layer(n)[1]: i for i, n in enumerate(model.site_names)}
    marks = {}
    for step in (0, 10, 20):
        growth.enter(step)
        with torch.no_grad():
            for layer in stages[growth.stage_index].layers["encoder"]:
                deep.site_params(site[layer]).add_(torch.randn_like(deep.site_params(site[layer])))  # "trains"
        marks[step] = [deep.site_params(i).detach().clone() for i in range(len(site))]
    assert torch.equal(deep.site_params(site[2]), marks[10][site[2]])  # absent in stage 2: untouched
    growth.enter(30)
    assert torch.equal(deep.site_params(site[2]), marks[10][site[2]])  # back: its own stage-1 prefix
    assert torch.equal(deep.site_params(site[4]), marks[20][site[3]])  # first time: a copy of layer 3's


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_shallow_prompt_and_head_are_untouched_by_an_expansion(name):
    model, _, cfg = _model(name, "shallow", *SIX_LAYERS[name])
    growth = Growth(model, _stages(model, cfg, {"layers": 2, "ffn_ratio": 0.5, "fraction": 0.5}, {}),
                    _random_scores(model))
    growth.enter(0)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    snapshot = {n: p.detach().clone() for n, p in trainable.items()}
    growth.enter(20)
    now = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert set(now) == set(trainable) and all(now[n] is trainable[n] for n in now)
    assert all(torch.equal(now[n], snapshot[n]) for n in now)


def test_entering_a_stage_directly_equals_growing_into_it():
    """A resumed run jumps straight to its stage: the same partial model as one grown step by step."""
    grown, tok, cfg = _model("tiny-t5", "deep", *SIX_LAYERS["tiny-t5"])
    jumped, _, _ = _model("tiny-t5", "deep", *SIX_LAYERS["tiny-t5"])
    stages = [{"layers": 2, "ffn_ratio": 0.25, "fraction": 0.25}, {"layers": 4, "ffn_ratio": 0.5, "fraction": 0.25},
              {"layers": 5, "ffn_ratio": 0.75, "fraction": 0.25}, {}]
    scores = _random_scores(grown)
    a = Growth(grown, _stages(grown, cfg, *stages), scores, new_layer_prefix="init")
    for step in range(0, 25):
        a.enter(step)
    b = Growth(jumped, _stages(jumped, cfg, *stages), scores, new_layer_prefix="init")
    b.enter(24)
    assert a.stage_index == b.stage_index == 2
    batch = _batch(tok, True)
    assert torch.equal(_outputs(grown, batch), _outputs(jumped, batch))


# --------------------------------------------------------------------------- per-site prefixes and the optimizer
def _grow_two_stages(name: str, *extra: str):
    """A 6-layer model whose stage 0 (steps 0-3) keeps layers 0 and 5, then the full model (steps 4-7)."""
    model, tok, cfg = _model(name, "deep", *SIX_LAYERS[name], *extra)
    model.train()
    growth = Growth(model, _stages(model, cfg, {"layers": 2, "steps": 4}, {}, total=8))
    batch = _batch(tok, model.family.seq2seq)
    kept = [model.family.site_layer(n)[1] in (0, 5) for n in model.site_names]
    return model, growth, batch, kept


def _optimizer(kind: str, params):
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    from transformers.optimization import Adafactor
    return Adafactor(params, lr=1e-2, weight_decay=1e-3, scale_parameter=False, relative_step=False,
                     warmup_init=False)


def _train_step(model, growth, optimizer, batch, step: int):
    growth.enter(step)
    model(batch)["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_deep_prompt_init_is_drawn_as_one_tensor_for_all_sites():
    """Per-site Parameters hold exactly the values the single-tensor layout drew for the same seed."""
    from fpt.prompts import DeepPrompt
    torch.manual_seed(3)
    plain = DeepPrompt(5, 4, 2, 3)
    torch.manual_seed(3)
    whole = torch.randn(4, 5 * 2 * 6)
    assert torch.equal(torch.cat(list(plain.prefixes), dim=1), whole)
    torch.manual_seed(3)
    projected = DeepPrompt(5, 4, 2, 3, projection=True, projection_hidden=7)
    torch.manual_seed(3)
    embeds, first, last = torch.randn(4, 6), torch.nn.Linear(6, 7), torch.nn.Linear(7, 5 * 2 * 6)
    assert torch.equal(projected.embeds, embeds) and torch.equal(projected.mlp[0].weight, first.weight)
    assert torch.equal(torch.cat([o.weight for o in projected.outputs]), last.weight)
    assert torch.equal(torch.cat([o.bias for o in projected.outputs]), last.bias)
    # all sites active: the prefixes are the single-tensor layout's, [sites, 2, H, P, D]
    expected = whole.view(4, 5, 2, 2, 3).permute(1, 2, 3, 0, 4)
    assert torch.equal(torch.stack(plain()), expected)
    with torch.no_grad():
        reference = last(torch.tanh(first(embeds))).view(4, 5, 2, 2, 3).permute(1, 2, 3, 0, 4)
    torch.testing.assert_close(torch.stack(projected()), reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_absent_sites_get_no_gradient_no_decay_and_no_optimizer_state(name, projection):
    extra = ["prompt.projection=true", "prompt.projection_hidden=8"] if projection else []
    model, growth, batch, kept = _grow_two_stages(name, *extra)
    deep = model.deep
    params = [p for _, p in model.trainable_parameters()]
    assert {id(p) for p in deep.parameters()} <= {id(p) for p in params}  # all sites, from the start
    optimizer = _optimizer("adamw", params)  # weight decay 0.1: it would shrink any tensor it touched
    before = {i: [p.detach().clone() for p in deep.site_modules(i)] for i in range(deep.num_sites)}
    for step in range(3):
        growth.enter(step)
        model(batch)["loss"].backward()
        for i, on in enumerate(kept):
            for p in deep.site_modules(i):
                assert (p.grad is not None) == on and p.requires_grad == on, (model.site_names[i], step)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for i, on in enumerate(kept):
        for p, was in zip(deep.site_modules(i), before[i]):
            assert torch.equal(p, was) != on, model.site_names[i]  # trained sites moved, absent ones did not
            assert (p in optimizer.state) == on
    assert set(model.trainable_state_dict()) == {n for n, _ in model.named_parameters() if n.startswith(("deep.",
                                                                                                         "head."))}


@pytest.mark.parametrize("kind", ["adamw", "adafactor"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_joined_site_first_update_equals_a_fresh_optimizers(name, kind):
    """At the join, a joining site's first step is exactly a new optimizer's step on the same gradient,
    while the sites trained in stage 0 continue with their own state (step count 4, not 1)."""
    model, growth, batch, kept = _grow_two_stages(name)
    deep = model.deep
    optimizer = _optimizer(kind, [p for _, p in model.trainable_parameters()])
    for step in range(4):
        _train_step(model, growth, optimizer, batch, step)
    growth.enter(4)
    model(batch)["loss"].backward()
    joined = [deep.site_params(i) for i, on in enumerate(kept) if not on]
    assert joined and all(p.grad is not None for p in joined)
    copies = [p.detach().clone().requires_grad_() for p in joined]
    for c, p in zip(copies, joined):
        c.grad = p.grad.clone()
    fresh = _optimizer(kind, copies)
    optimizer.step()
    fresh.step()
    for p, c in zip(joined, copies):
        assert torch.equal(p, c)
    for i, on in enumerate(kept):
        state = optimizer.state[deep.site_params(i)]
        assert float(state["step"]) == (5 if on else 1), model.site_names[i]


def test_joined_projection_output_starts_fresh():
    """prompt.projection=true: a joining site's output Linear gets a new optimizer's first step."""
    model, growth, batch, kept = _grow_two_stages("tiny-bert", "prompt.projection=true",
                                                  "prompt.projection_hidden=8")
    optimizer = _optimizer("adamw", [p for _, p in model.trainable_parameters()])
    for step in range(4):
        _train_step(model, growth, optimizer, batch, step)
    growth.enter(4)
    model(batch)["loss"].backward()
    joined = [p for i, on in enumerate(kept) if not on for p in model.deep.outputs[i].parameters()]
    copies = [p.detach().clone().requires_grad_() for p in joined]
    for c, p in zip(copies, joined):
        c.grad = p.grad.clone()
    fresh = _optimizer("adamw", copies)
    optimizer.step()
    fresh.step()
    assert all(torch.equal(p, c) for p, c in zip(joined, copies))
    assert float(optimizer.state[model.deep.embeds]["step"]) == 5  # the shared part trained throughout


# --------------------------------------------------------------------------- gated joining prefixes
def _hidden(model, batch):
    """BERT: the encoder's last hidden states (the tiny head's logits hardly move); T5: the logits."""
    with torch.no_grad():
        return model(batch)["logits"] if model.family.seq2seq else model.encode(batch)


def _gated_model(name: str, attn: str = "sdpa"):
    model, tok, cfg = _model(name, "deep", *SIX_LAYERS[name], f"model.attn_implementation={attn}")
    growth = Growth(model, _stages(model, cfg, {"layers": 2, "steps": 4}, {}, total=8), new_layer_prefix="gate")
    kept = [model.family.site_layer(n)[1] in (0, 5) for n in model.site_names]
    return model, growth, _batch(tok, model.family.seq2seq), kept


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5", "tiny-deberta"])
def test_gate_at_zero_is_bitwise_the_model_without_the_joined_prefixes(name, attn):
    model, growth, batch, kept = _gated_model(name, attn)
    deep = model.deep
    assert sorted(int(k) for k in deep.gates) == [i for i, on in enumerate(kept) if not on]  # joining sites only
    growth.enter(0)
    assert all(not g.requires_grad for g in deep.gates.values())
    growth.enter(4)  # every site active, the joined ones behind gates at 0
    assert model.active_sites is None and all(g.requires_grad for g in deep.gates.values())
    model.train()
    out = model(batch)
    with torch.no_grad():
        model.eval()
        gated = _hidden(model, batch)
        model.set_active_sites(kept)  # the joined sites without any prefix
        without = _hidden(model, batch)
        model.set_active_sites(None)
    assert torch.equal(gated, without)
    # a gate at 0 still learns: it has a gradient, while the prefix behind it gets exactly zero
    out["loss"].backward()
    joined = [i for i, on in enumerate(kept) if not on]
    assert any(deep.gates[str(i)].grad.abs() > 0 for i in joined)
    assert all(deep.site_params(i).grad is not None and not deep.site_params(i).grad.any() for i in joined)
    # gate 1 is the ungated prefix attention (up to rounding: it is computed as a mixture)
    with torch.no_grad():
        model.eval()
        for g in deep.gates.values():
            g.fill_(1.0)
        one = _hidden(model, batch)
        gates = dict(deep.gates)
        deep.gates = torch.nn.ParameterDict()
        ungated = _hidden(model, batch)
        deep.gates = torch.nn.ParameterDict(gates)
    torch.testing.assert_close(one, ungated, atol=1e-4, rtol=1e-4)
    assert (ungated - without).abs().max() > 1e-3  # the joined prefixes do matter at full strength


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5", "tiny-deberta"])
def test_a_negative_gate_acts_as_zero_and_can_come_back(name):
    """A gate the optimizer pushes below 0 (seen on MiniLM: the mixture's denominator 1 - m + g*m reached 0 and the
    loss went NaN) counts as 0: finite, bitwise the model without those prefixes, and its gradient still flows."""
    model, growth, batch, kept = _gated_model(name)
    growth.enter(4)
    model.eval()
    with torch.no_grad():
        model.set_active_sites(kept)
        without = _hidden(model, batch)
        model.set_active_sites(None)
        for g in model.deep.gates.values():
            g.fill_(-5.0)
        negative = _hidden(model, batch)
    assert torch.isfinite(negative).all() and torch.equal(negative, without)
    model.train()
    model(batch)["loss"].backward()
    assert any(g.grad is not None and g.grad.abs() > 0 for g in model.deep.gates.values())


def test_gate_scales_the_prefix_share_of_the_softmax(monkeypatch):
    """Gate g: out = (g*A + B) / (g*Z_p + Z_r), i.e. the ungated attention with log(g) added to the prefix's
    logits (checked with eager attention, whose additive mask can carry that bias)."""
    import fpt.prompts as prompts
    model, growth, batch, kept = _gated_model("tiny-bert", "eager")
    growth.enter(4)
    g = 0.37
    with torch.no_grad():
        for gate in model.deep.gates.values():
            gate.fill_(g)
        gated = _hidden(model, batch)
        real_columns = prompts._prefix_columns

        def biased(visible, like, length):  # log(g) on the prefix columns of the joined (gated) sites
            cols = real_columns(visible, like, length)
            return cols + math.log(g) if biased.on else cols
        monkeypatch.setattr(prompts, "_prefix_columns", biased)
        gates = dict(model.deep.gates)
        model.deep.gates = torch.nn.ParameterDict()
        joined = [m for m, on in zip(model.sites, kept) if not on]
        for m in model.sites:
            m.register_forward_pre_hook(lambda mod, args, kwargs: setattr(biased, "on", mod in joined),
                                        with_kwargs=True)
        biased.on = False
        reference = _hidden(model, batch)
        model.deep.gates = torch.nn.ParameterDict(gates)
    torch.testing.assert_close(gated, reference, atol=1e-5, rtol=1e-5)


class _Killed(Exception):
    pass


def test_gated_growth_with_stage_warmup_resumes_bitwise_in_process(tmp_path, monkeypatch):
    """A run with gates and stage warm-up, stopped after the checkpoint that ends stage 0 (step 4) and resumed
    by a new Trainer, ends bitwise where the uninterrupted run does; the LR dips after each stage change."""
    import fpt.trainer as trainer_module
    from fpt.trainer import Trainer

    def run(folder: Path, kill_at: int | None = None):
        cfg = compose(*TINY_FPT, "schedule=fpt", STAGES, "schedule.new_layer_prefix=gate",
                      "schedule.stage_warmup_steps=2", "prompt.dropout=0", f"output_root={folder}")

        def fault(point, step):
            if point == "after_step" and step == kill_at:
                raise _Killed
        monkeypatch.setattr(trainer_module, "_fault", fault)
        trainer = Trainer(cfg, folder / "run")
        try:
            return trainer, trainer.run()
        except _Killed:
            return trainer, None

    full, results = run(tmp_path / "full")
    gates = {n for n in full.model.trainable_state_dict() if n.startswith("deep.gates.")}
    assert gates == {"deep.gates.1", "deep.gates.2"}  # 4 layers, stage 0 keeps 0 and 3
    assert all(full.model.deep.gates[k].item() != 0 for k in ("1", "2"))  # they trained
    killed, none = run(tmp_path / "killed", kill_at=6)
    assert none is None and torch.load(killed.ckpt_path, weights_only=False)["step"] == 4
    resumed, again = run(tmp_path / "killed")
    a = load_file(tmp_path / "full" / "run" / "trainable_final.safetensors")
    b = load_file(tmp_path / "killed" / "run" / "trainable_final.safetensors")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert again["final"] == results["final"]
    # the LR logged after step s is the next step's: linear decay over 12 steps, x1/3, 2/3 after a stage change
    lrs = {x["step"]: x["lr"] for x in map(json.loads, (tmp_path / "full" / "run" / "metrics.jsonl").read_text()
                                           .splitlines()) if "lr" in x}
    base = {s: 1e-2 * (12 - s) / 12 for s in range(13)}
    factor = {4: 1 / 3, 5: 2 / 3, 8: 1 / 3, 9: 2 / 3}
    for s in range(1, 12):
        assert lrs[s] == pytest.approx(base[s] * factor.get(s, 1.0), rel=1e-6), s


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_gated_t5_generates_the_same_with_and_without_cache(attn):
    model, growth, batch, _ = _gated_model("tiny-t5", attn)
    growth.enter(4)
    with torch.no_grad():
        for k, gate in model.deep.gates.items():
            gate.fill_(0.25 + 0.05 * int(k))
    _assert_cached_generation_equals_recomputed(model, batch)


def test_stage_end_diagnostic_scores_the_final_model_and_leaves_training_unchanged(tmp_path):
    """schedule.eval_final_at_stage_end logs, at each partial stage's end, the prompt scored on that stage's model
    and on the final one, and does not change what is trained; a stage that keeps the whole model scores the same
    on both."""
    from fpt.trainer import Trainer

    def run(name: str, *extra: str):
        cfg = compose(*TINY_FPT, "schedule=fpt", "prompt.dropout=0", f"output_root={tmp_path / name}", *extra)
        results = Trainer(cfg, tmp_path / name / "run").run()
        lines = [json.loads(x) for x in (tmp_path / name / "run" / "metrics.jsonl").read_text().splitlines()]
        return results, load_file(tmp_path / name / "run" / "trainable_final.safetensors"), lines

    plain, plain_final, _ = run("plain", STAGES)
    diag, diag_final, lines = run("diag", STAGES, "schedule.eval_final_at_stage_end=true")
    assert set(plain_final) == set(diag_final) and all(torch.equal(plain_final[k], diag_final[k]) for k in plain_final)
    assert diag["final"] == plain["final"]
    ends = [x for x in lines if "eval_final_model" in x]
    assert [(x["step"], x["stage"]) for x in ends] == [(4, 0), (8, 1)]
    evals = {x["step"]: x["eval"] for x in lines if "eval" in x}
    assert all(x["eval_stage_model"] == evals[x["step"]] for x in ends)  # the partial model's own score
    _, _, same = run("same", "schedule.stages=[{steps: 4}, {}]", "schedule.eval_final_at_stage_end=true")
    [end] = [x for x in same if "eval_final_model" in x]
    assert end["eval_final_model"] == end["eval_stage_model"]
