"""trainer.gradient_checkpointing (fpt/models/checkpointing.py) on tiny random BERT, T5 and DeBERTa.

Checkpointing must change what is kept, never what is computed: the prompt's gradients equal those without it
(shallow and deep, fp32 and bf16 autocast, dropout on: the recomputation draws the same masks), in partial growth
models too, and a growing run with it resumes bitwise and ends where the run without it ends. That it really is
active is measured: the activations the layers keep for the backward (saved_tensors_hooks) shrink to their inputs.
trainer.checkpoint_layers < 1 checkpoints the bottom layers of each stack only: the top ones keep what a plain
model keeps, with the same gradients.
"""
import json
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch
from helpers import compose, two_row_batch as _batch
from safetensors.torch import load_file

from fpt.growth import Growth
from fpt.models import build_model, load_tokenizer
from fpt.task_kinds import get_kind

torch.set_num_threads(1)
CASES = [("tiny-bert", "deep"), ("tiny-bert", "shallow"), ("tiny-t5", "deep"), ("tiny-t5", "shallow"),
         ("tiny-deberta", "deep"), ("tiny-deberta", "shallow"), ("tiny-bert", "none")]  # none: full fine-tuning, the backbone's gradients
NO_DROPOUT = ["model.dropout=0", "model.head_dropout=0", "prompt.dropout=0"]


def _model(name: str, prompt: str, checkpointing: bool, *extra: str, fraction: float = 1.0):
    cfg = compose(f"model={name}", f"prompt={prompt}", "prompt.length=3", *extra)
    tok = load_tokenizer(cfg.model)
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.prompt, cfg.task, tok, num_labels=2, gradient_checkpointing=checkpointing,
                       checkpoint_layers=fraction, kind=get_kind(cfg.task)).train(), tok


@contextmanager
def kept_in_layers(layers, per_layer: list | None = None):
    """Bytes (distinct storages) of activations the autograd graph keeps for the backward from inside these layers'
    forwards (their own weights left out); `per_layer`: filled with each layer's own {storage: bytes}.

    Module hooks run outside transformers' checkpointed `forward`, and a checkpointed region keeps its tensors
    through its own inner hooks: what reaches ours from inside a checkpointed layer is only its saved inputs.
    """
    inside, storages = [], {}
    own = {t.untyped_storage().data_ptr() for layer in layers for t in [*layer.parameters(), *layer.buffers()]}
    per_layer = [{} for _ in layers] if per_layer is None else per_layer
    per_layer[:] = [{} for _ in layers]

    def enter(i):
        return lambda *_: inside.append(i)

    def leave(*_):
        inside.pop()

    def pack(t):
        if inside and t.untyped_storage().data_ptr() not in own:  # activations, not the layer's weights
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            per_layer[inside[-1]][t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    handles = [h for i, layer in enumerate(layers)
               for h in (layer.register_forward_pre_hook(enter(i)), layer.register_forward_hook(leave))]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield storages
    finally:
        for h in handles:
            h.remove()


def _layers(model):
    return [layer for stack in model.family.layer_stacks(model.backbone).values() for layer in stack]


def _step(model, batch, autocast=None, per_layer: list | None = None):
    """Loss and gradients of one forward/backward, and the bytes its layers kept for the backward (`per_layer`:
    filled with each layer's bytes)."""
    with kept_in_layers(_layers(model), per_layer) as kept, (autocast or nullcontext()):
        loss = model(batch)["loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    if per_layer is not None:
        per_layer[:] = [sum(layer.values()) for layer in per_layer]
    return loss.detach(), grads, sum(kept.values())


def _assert_checkpointed_bottom(model, plain_kept: list[int], kept: list[int], fraction: float):
    """Exactly the bottom `round(fraction x layers)` layers of each stack are checkpointed and keep only their
    inputs; the others run plain and keep what the plain model's layers keep."""
    from fpt.models.checkpointing import checkpointed_count
    i = 0
    for stack, layers in model.family.layer_stacks(model.backbone).items():
        count = checkpointed_count(fraction, len(layers))
        assert fraction < 1 or count == len(layers)
        assert [layer.gradient_checkpointing for layer in layers] == [j < count for j in range(len(layers))], stack
        for j in range(len(layers)):
            if j < count:
                assert kept[i + j] < 0.25 * plain_kept[i + j], (stack, j, plain_kept, kept)
            else:
                assert kept[i + j] == plain_kept[i + j], (stack, j, plain_kept, kept)
        i += len(layers)


def _assert_same_gradients(plain, ckpt, atol=1e-6):
    assert set(plain) == set(ckpt)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=atol, rtol=0, msg=name)


# trainer.checkpoint_layers=0.5: the bottom layer of each 2-layer stack (T5: encoder and decoder) checkpointed
PARTIAL = [("tiny-bert", "deep", 0.5), ("tiny-t5", "deep", 0.5), ("tiny-t5", "shallow", 0.5)]


@pytest.mark.parametrize("name, prompt, fraction", [(*case, 1.0) for case in CASES] + PARTIAL)
def test_prompt_gradients_equal_those_without_checkpointing(name, prompt, fraction):
    plain, tok = _model(name, prompt, False, *NO_DROPOUT)
    ckpt, _ = _model(name, prompt, True, *NO_DROPOUT, fraction=fraction)
    assert not any(layer.gradient_checkpointing for layer in _layers(plain))
    batch = _batch(tok, plain.family.seq2seq)
    plain_layers, ckpt_layers = [], []
    loss_a, grads_a, kept_a = _step(plain, batch, per_layer=plain_layers)
    loss_b, grads_b, kept_b = _step(ckpt, batch, per_layer=ckpt_layers)
    _assert_checkpointed_bottom(ckpt, plain_layers, ckpt_layers, fraction)
    trained = {n for n in grads_a if n.startswith(("deep.", "shallow.", "backbone.encoder."))}
    assert trained and all(grads_a[n].abs().sum() > 0 for n in trained)  # the prompt (or backbone) learns
    if prompt == "deep":  # every site's prefix, reached through the attention modules, not a layer input
        assert len(trained) == ckpt.deep.num_sites
    torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=0)
    _assert_same_gradients(grads_a, grads_b)
    # checkpointing is active: the layers keep only their inputs for the backward (partial: the plain half keeps all)
    assert kept_b < (0.25 if fraction == 1 else 0.75) * kept_a, (kept_a, kept_b)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_dropout_masks_are_the_same_in_the_recomputation(name):
    """Dropout on (backbone and prefix): checkpointing gives the same gradients and leaves the random stream where
    the plain step does, so the next step draws the same masks too."""
    drop = ["model.dropout=0.3", "prompt.dropout=0.3"]
    plain, tok = _model(name, "deep", False, *drop)
    ckpt, _ = _model(name, "deep", True, *drop)
    batch = _batch(tok, plain.family.seq2seq)
    results = []
    for model in (plain, ckpt, plain):
        torch.manual_seed(123)
        first = _step(model, batch)
        second = _step(model, batch)
        results.append((first, second, torch.get_rng_state()))
    (a1, a2, rng_a), (b1, b2, rng_b), (c1, _, _) = results
    for x, y in ((a1, b1), (a2, b2)):
        torch.testing.assert_close(y[0], x[0], atol=1e-6, rtol=0)
        _assert_same_gradients(x[1], y[1])
    assert torch.equal(rng_a, rng_b)
    assert torch.equal(c1[0], a1[0])  # the plain step itself is reproducible under this seed ...
    assert not torch.equal(a1[0], a2[0])  # ... and dropout is really on: another draw, another loss


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_bf16_autocast_gradients_equal_those_without_checkpointing(name):
    plain, tok = _model(name, "deep", False, *NO_DROPOUT)
    ckpt, _ = _model(name, "deep", True, *NO_DROPOUT)
    batch = _batch(tok, plain.family.seq2seq)
    loss_a, grads_a, kept_a = _step(plain, batch, torch.autocast("cpu", dtype=torch.bfloat16))
    loss_b, grads_b, kept_b = _step(ckpt, batch, torch.autocast("cpu", dtype=torch.bfloat16))
    fp32_loss = _step(plain, batch)[0]
    assert loss_a != fp32_loss  # autocast really ran in bf16 ...
    torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=0)  # ... and the recomputation did too
    _assert_same_gradients(grads_a, grads_b)
    assert kept_b < 0.25 * kept_a


def _grown(checkpointing: bool, *extra: str, fraction: float = 1.0):
    """tiny-bert with 4 layers and a 3-stage schedule (2 layers at half FFN width, 3 at 3/4, all)."""
    model, tok = _model("tiny-bert", "deep", checkpointing, "model.from_config.num_hidden_layers=4", *NO_DROPOUT,
                        *extra, fraction=fraction)
    from fpt.config import StageConfig
    from fpt.growth import resolve_stages
    cfg = compose("model=tiny-bert", "schedule=fpt")
    sched = cfg.schedule
    sched.stages = [StageConfig(layers=2, ffn_ratio=0.5, steps=4), StageConfig(layers=3, ffn_ratio=0.75, steps=4),
                    StageConfig()]
    stages = resolve_stages(sched, model.family.dims(model.backbone.config), 12)
    dims = model.family.dims(model.backbone.config)
    g = torch.Generator().manual_seed(0)
    scores = {s: torch.rand(n, dims["ffn"], generator=g) for s, n in dims["layers"].items()}
    return model, tok, Growth(model, stages, scores, "gate")


@pytest.mark.parametrize("fraction, checkpointed", [(1.0, (2, 3, 4, 3)), (0.67, (1, 2, 3, 2))])
def test_partial_growth_models_are_checkpointed_with_the_same_gradients(fraction, checkpointed):
    """Each stage's model (dropped layers, narrowed FFNs, gated joining prefixes) and the full model after growth
    run checkpointed, with the gradients of the same stage without checkpointing; trainer.checkpoint_layers
    applies to the layers each stage runs (0.67 of 2, 3, 4 layers: 1, 2, 3 at the bottom)."""
    plain, tok, grow_plain = _grown(False)
    ckpt, _, grow_ckpt = _grown(True, fraction=fraction)
    batch = _batch(tok, False)
    # back to a partial model too (Growth.final_model does)
    for (step, layers), count in zip(((0, 2), (4, 3), (8, 4), (4, 3)), checkpointed):
        grow_plain.enter(step)
        grow_ckpt.enter(step)
        for model in (plain, ckpt):
            for gate in model.deep.gates.values():
                gate.data.fill_(0.5)  # joined prefixes take part
        assert len(_layers(ckpt)) == layers
        assert [layer.gradient_checkpointing for layer in _layers(ckpt)] == [i < count for i in range(layers)]
        plain_layers, ckpt_layers = [], []
        loss_a, grads_a, kept_a = _step(plain, batch, per_layer=plain_layers)
        loss_b, grads_b, kept_b = _step(ckpt, batch, per_layer=ckpt_layers)
        torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=0)
        _assert_same_gradients(grads_a, grads_b)
        _assert_checkpointed_bottom(ckpt, plain_layers, ckpt_layers, fraction)
        if fraction == 1:
            assert kept_b < 0.25 * kept_a, (step, kept_a, kept_b)


def test_check_layers_fails_unless_exactly_the_bottom_layers_are_checkpointed():
    """The start-up check is meaningful for a partial setting: a bottom layer left plain, or a top layer
    checkpointed, is a loud error naming the layer."""
    from fpt.models.checkpointing import check_layers
    model, _ = _model("tiny-t5", "deep", True, fraction=0.5)
    stacks = model.family.layer_stacks(model.backbone)
    check_layers(stacks, "tiny-t5", 0.5)
    stacks["decoder"][0].gradient_checkpointing = False
    with pytest.raises(ValueError, match=r"model tiny-t5: layers decoder.0 \(T5Block\) do not run under activation"):
        check_layers(stacks, "tiny-t5", 0.5)
    stacks["decoder"][0].gradient_checkpointing = True
    stacks["encoder"][1].gradient_checkpointing = True
    with pytest.raises(ValueError, match=r"checkpoint_layers=0.5: model tiny-t5: layers encoder.1 \(T5Block\) are "
                                         r"checkpointed though meant to run plain"):
        check_layers(stacks, "tiny-t5", 0.5)
    with pytest.raises(ValueError, match=r"layers decoder.1 \(T5Block\) do not run"):  # 1.0 means every layer
        check_layers(stacks, "tiny-t5", 1.0)


def test_checkpoint_layers_rounding_and_bad_values():
    from fpt.models.checkpointing import checkpointed_count
    assert [checkpointed_count(0.67, n) for n in (1, 2, 3, 4, 6, 12, 24)] == [1, 1, 2, 3, 4, 8, 16]
    assert [checkpointed_count(0.5, n) for n in (1, 3, 6)] == [1, 2, 3]  # halves up, at least one
    assert [checkpointed_count(f, 10) for f in (0.01, 0.7, 0.25, 1)] == [1, 7, 3, 10]
    for bad in (0, 1.5, -0.5):
        with pytest.raises(ValueError, match=rf"trainer.checkpoint_layers={bad}: expected .* in \(0, 1\]"):
            _model("tiny-bert", "deep", True, fraction=bad)
    # a share of the layers without checkpointing itself would silently do nothing
    with pytest.raises(ValueError, match=r"checkpoint_layers=0.5 needs trainer.gradient_checkpointing=true"):
        _model("tiny-bert", "deep", False, fraction=0.5)
    cfg = compose("trainer.checkpoint_layers=0.5")  # the trainer's config key reaches the schema
    assert cfg.trainer.checkpoint_layers == 0.5 and compose().trainer.checkpoint_layers == 1.0
    from fpt.validate import ConfigError, check_trainer  # and is checked at start-up, before a run folder
    check_trainer(cfg.trainer)
    with pytest.raises(ConfigError, match=r"trainer.checkpoint_layers=1.5: expected a number in \(0, 1\]"):
        check_trainer(compose("trainer.checkpoint_layers=1.5").trainer)


class _Killed(Exception):
    pass


TINY_FPT = ["model=tiny-bert", "model.from_config.num_hidden_layers=4", "prompt=deep", "prompt.length=4",
            "trainer.max_steps=12", "trainer.eval_every=4", "trainer.batch_size=8", "trainer.eval_batch_size=50",
            "task.max_eval_samples=100", "trainer.threads=1", "trainer.progress=false", "trainer.log_every=1",
            "schedule=fpt", "model.dropout=0.1", "prompt.dropout=0.1",
            "schedule.stages=[{layers: 2, ffn_ratio: 0.5, steps: 4}, {layers: 3, ffn_ratio: 0.75, steps: 4}, {}]"]


def test_growing_run_with_checkpointing_resumes_bitwise_and_equals_the_run_without(tmp_path, monkeypatch):
    """Dropout on: killed after step 6 (its checkpoint is step 4's, the end of stage 0) and resumed, a checkpointed
    growing run ends bitwise where the uninterrupted one does, and where the same run without checkpointing does."""
    import fpt.trainer as trainer_module
    from fpt.runs.identity import fingerprint, run_identity
    from fpt.trainer import Trainer

    def run(folder: Path, checkpointing: bool, kill_at: int | None = None):
        cfg = compose(*TINY_FPT, f"trainer.gradient_checkpointing={checkpointing}", f"output_root={folder}",
                      f"schedule.scores_path={tmp_path / 'scores.safetensors'}")

        def fault(point, step):
            if point == "after_step" and step == kill_at:
                raise _Killed
        monkeypatch.setattr(trainer_module, "_fault", fault)
        trainer = Trainer(cfg, folder / "run")
        assert trainer.model.gradient_checkpointing == checkpointing
        try:
            return trainer, trainer.run()
        except _Killed:
            return trainer, None

    full, results = run(tmp_path / "full", True)
    assert all(layer.gradient_checkpointing for layer in _layers(full.model))
    killed, none = run(tmp_path / "killed", True, kill_at=6)
    assert none is None and torch.load(killed.ckpt_path, weights_only=False)["step"] == 4
    _, again = run(tmp_path / "killed", True)
    _, plain = run(tmp_path / "plain", False)
    final = {d: load_file(tmp_path / d / "run" / "trainable_final.safetensors") for d in ("full", "killed", "plain")}
    for other in ("killed", "plain"):
        assert set(final[other]) == set(final["full"])
        assert all(torch.equal(final[other][k], final["full"][k]) for k in final["full"]), other
    assert again["final"] == results["final"] == plain["final"] and again["best"] == results["best"]
    assert results["train_flops"] == plain["train_flops"]
    log = (tmp_path / "full" / "run" / "metrics.jsonl").read_text().splitlines()
    stages = [json.loads(x).get("stage") for x in log]
    assert [s for s in stages if s is not None] == [0] * 4 + [1] * 4 + [2] * 4
    # a run is the same run with or without it: a killed run may be resumed with checkpointing turned on (OOM)
    on, off = (compose(*TINY_FPT, f"trainer.gradient_checkpointing={v}") for v in (True, False))
    assert fingerprint(run_identity(on), resume=True) == fingerprint(run_identity(off), resume=True)
    part = compose(*TINY_FPT, "trainer.gradient_checkpointing=true", "trainer.checkpoint_layers=0.67")
    assert fingerprint(run_identity(part)) == fingerprint(run_identity(off))


# --------------------------------------------------------------------------- DDP (gloo, 2 processes)
def _ddp_worker(rank: int, world: int, init_file: str, cfg, out: str):
    from datetime import timedelta

    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                             timeout=timedelta(seconds=120))
    try:
        tok = load_tokenizer(cfg.model)
        texts = ["a short one", "a somewhat longer sentence with padding needed", "third", "and the fourth one"]
        batch = dict(tok(texts[rank * 2:rank * 2 + 2], padding=True, return_tensors="pt"))
        batch["label"] = torch.tensor([0, 1])
        grads = []
        for checkpointing in (False, True):
            torch.manual_seed(0)
            model = build_model(cfg.model, cfg.prompt, cfg.task, tok, num_labels=2,
                                gradient_checkpointing=checkpointing, kind=get_kind(cfg.task)).train()
            ddp = DistributedDataParallel(model)
            torch.manual_seed(100 + rank)  # each rank its own dropout masks
            ddp(batch)["loss"].backward()  # DDP averages the gradients over both ranks
            grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
        torch.save({"grads": grads, "checkpointed": all(layer.gradient_checkpointing for layer in _layers(model))},
                   f"{out}/rank{rank}.pt")
    finally:
        tdist.destroy_process_group()


def test_ddp_gradients_with_checkpointing_equal_those_without(tmp_path):
    """2 gloo ranks (this process and one spawned), dropout on: the all-reduced prompt gradients are bitwise those
    of DDP without checkpointing (non-reentrant checkpointing and DDP's gradient hooks agree; a prefix reached
    through the attention modules is reduced like any parameter)."""
    import torch.multiprocessing as mp

    cfg = compose("model=tiny-bert", "prompt=deep", "prompt.length=3", "model.dropout=0.2", "prompt.dropout=0.2")
    args = (2, str(tmp_path / "init"), cfg, str(tmp_path))
    other = mp.get_context("spawn").Process(target=_ddp_worker, args=(1, *args))
    other.start()
    try:
        _ddp_worker(0, *args)
    finally:
        other.join(timeout=300)
        if other.is_alive():
            other.kill()
    assert other.exitcode == 0
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for r in ranks:
        plain, ckpt = r["grads"]
        assert r["checkpointed"] and plain and set(plain) == set(ckpt)
        assert all(torch.equal(plain[n], ckpt[n]) for n in plain)
        assert all(plain[n].abs().sum() > 0 for n in plain if n.startswith("deep."))
    # all-reduced: both ranks hold the same gradients, though each saw other examples and masks
    assert all(torch.equal(ranks[0]["grads"][1][n], ranks[1]["grads"][1][n]) for n in ranks[0]["grads"][1])
