"""Deep prompts in DeBERTa-v2/v3's disentangled attention (fpt/models/deberta.py), on tiny random DeBERTas:
exactness against the untouched Hugging Face model, gradients at every layer, and the start-up check that a
prefix which never enters an attention fails loudly. Shallow prompts: trained, read, and masked exactly."""
import pytest
import torch
from helpers import GROWTH_STAGES, TINY_FPT, compose
from transformers import AutoModel

from fpt.models import build_model, load_tokenizer
from fpt.task_kinds import get_kind

torch.set_num_threads(1)
ATTN = ["sdpa", "eager"]
# v3-like (conf/model/tiny-deberta.yaml) and v2-xlarge-like: separate position projections, a conv layer,
# token types, no log buckets, c2p only
VARIANTS = {"v3": [], "v2": ["model.from_config.share_att_key=false", "+model.from_config.conv_kernel_size=3",
                             "model.from_config.type_vocab_size=2", "model.from_config.position_buckets=-1",
                             "model.from_config.pos_att_type=c2p"]}


def _models(attn: str, variant: str, prompt: str = "deep", *extra: str):
    """Our prompted DeBERTa and the untouched Hugging Face DeBERTa (its own eager attention), same weights."""
    cfg = compose("model=tiny-deberta", f"prompt={prompt}", "prompt.length=4", f"model.attn_implementation={attn}",
                  *VARIANTS[variant], *extra)
    tok = load_tokenizer(cfg.model)
    torch.manual_seed(0)
    prompted = build_model(cfg.model, cfg.prompt, cfg.task, tok, num_labels=2, kind=get_kind(cfg.task)).eval()
    plain = AutoModel.from_config(prompted.backbone.config, attn_implementation="eager").eval()
    plain.load_state_dict(prompted.backbone.state_dict())
    assert type(plain.encoder.layer[0].attention.self).__name__ == "DisentangledSelfAttention"  # not ours
    return prompted, plain, tok


def _batch(tok):
    return dict(tok(["a short one", "a somewhat longer sentence with padding needed"], padding=True,
                    return_tensors="pt"))


def _hf(plain, batch):
    return plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 token_type_ids=batch["token_type_ids"]).last_hidden_state


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("attn", ATTN)
def test_fully_masked_prefix_reproduces_the_untouched_deberta(attn, variant):
    prompted, plain, tok = _models(attn, variant)
    batch = _batch(tok)
    real = batch["attention_mask"].bool()
    # DeBERTa masks padded *query* rows entirely (they attend uniformly to everything), so a padded position's
    # output depends on how many columns exist; no head reads it. The real tokens must match exactly.
    prompted.prefix_visible = torch.zeros(4, dtype=torch.bool)
    with torch.no_grad():
        reference = _hf(plain, batch)
        torch.testing.assert_close(prompted.encode(batch)[real], reference[real], atol=1e-5, rtol=0)
        prompted.prefix_visible = None  # a visible prefix is really attended to
        assert (prompted.encode(batch) - reference)[real].abs().max() > 1e-3


@pytest.mark.parametrize("attn", ATTN)
def test_without_prompt_our_attention_is_debertas(attn):
    """Full fine-tuning runs through the same replaced attention: every position equals Hugging Face's."""
    prompted, plain, tok = _models(attn, "v2", "none")
    batch = _batch(tok)
    with torch.no_grad():
        torch.testing.assert_close(prompted.encode(batch), _hf(plain, batch), atol=1e-5, rtol=0)


@pytest.mark.parametrize("attn", ATTN)
def test_every_layers_prefix_gets_gradients(attn):
    prompted, _, tok = _models(attn, "v3")
    prompted.train()
    seen = []  # the prefix tensors each site attends to, whatever DeepPrompt's parameter layout

    def keep(module, args):
        prefix_k, prefix_v = module.fpt_prefix[:2]
        for t in (prefix_k, prefix_v):
            t.retain_grad()
        seen.append((module, prefix_k, prefix_v))
    hooks = [m.register_forward_pre_hook(keep) for m in prompted.sites]
    batch = _batch(tok)
    batch["label"] = torch.tensor([0, 1])
    prompted(batch)["loss"].backward()
    for h in hooks:
        h.remove()
    assert [m for m, _, _ in seen] == prompted.sites and len(seen) == 2
    for name, (_, k, v) in zip(prompted.site_names, seen):
        assert k.grad is not None and k.grad.abs().sum() > 0, f"no gradient reaches the prefix keys of {name}"
        assert v.grad is not None and v.grad.abs().sum() > 0, f"no gradient reaches the prefix values of {name}"
    assert all(p.grad is None for p in prompted.backbone.parameters())  # the backbone stays frozen


def test_sdpa_and_eager_agree_with_a_visible_prefix():
    eager, _, tok = _models("eager", "v3")
    sdpa, _, _ = _models("sdpa", "v3")
    sdpa.load_state_dict(eager.state_dict())
    batch = _batch(tok)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        torch.testing.assert_close(sdpa.encode(batch)[real], eager.encode(batch)[real], atol=1e-5, rtol=0)


def test_deberta_under_the_bert_family_with_sdpa_fails_naming_what_is_supported():
    cfg = compose("model=tiny-deberta", "model.family=bert", "prompt=deep", "model.attn_implementation=sdpa")
    with pytest.raises(ValueError, match=r"(?s)tiny-deberta.*model.family=bert.*does not support.*"
                                         r"deberta \(DeBERTa-v2, DeBERTa-v3\)"):
        build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2, kind=get_kind(cfg.task))


@pytest.mark.parametrize("attn", ["eager"])
def test_a_prefix_that_never_enters_attention_fails_at_start_up(attn):
    """The old silent case: DeBERTa under the BERT family built fine and its deep prompt changed nothing."""
    cfg = compose("model=tiny-deberta", "model.family=bert", "prompt=deep", f"model.attn_implementation={attn}")
    with pytest.raises(ValueError) as err:
        build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2, kind=get_kind(cfg.task))
    message = str(err.value)
    assert "tiny-deberta" in message and "'deberta-v2'" in message and "model.family=bert" in message
    assert "never enter the attention of 2 of 2 sites" in message
    assert "deberta (DeBERTa-v2, DeBERTa-v3)" in message and "sdpa or eager" in message
    # without a deep prompt there is nothing to reach: the same model builds
    bare = compose("model=tiny-deberta", "model.family=bert", "prompt=none", f"model.attn_implementation={attn}")
    build_model(bare.model, bare.prompt, bare.task, load_tokenizer(cfg.model), num_labels=2, kind=get_kind(bare.task))


def test_deberta_family_rejects_other_attention_modules():
    cfg = compose("model=tiny-bert", "model.family=deberta", "prompt=deep")
    with pytest.raises(ValueError, match="family deberta expects DeBERTa-v2/v3 attention .* BertSelfAttention"):
        build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2, kind=get_kind(cfg.task))


def test_a_deberta_deep_prompt_learns(tmp_path):
    """A short real run through the trainer: the loss falls on a tiny task with the prefix as the only input."""
    from fpt.trainer import Trainer
    cfg = compose("model=tiny-deberta", "task=example_topics", "prompt=deep", "prompt.length=4",
                  "trainer.max_steps=30", "trainer.eval_every=30", "trainer.batch_size=8", "trainer.progress=false",
                  "optim.lr=5e-2", "seed=0")
    trainer = Trainer(cfg, tmp_path)
    losses = [trainer.train_step(step) for step in range(30)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05, losses


@pytest.mark.parametrize("attn", ATTN)
def test_zero_length_shallow_prompt_equals_the_untouched_deberta(attn):
    cfg_extra = ["prompt.length=0"]
    prompted, plain, tok = _models(attn, "v3", "shallow", *cfg_extra)
    batch = _batch(tok)
    with torch.no_grad():
        torch.testing.assert_close(prompted.encode(batch), _hf(plain, batch), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("attn", ATTN)
def test_shallow_prompt_trains_and_is_read(attn, variant):
    """A shallow prompt on DeBERTa (joined after the embeddings, as in BERT): forward and backward run, the prompt
    gets a gradient and the frozen backbone none, and another prompt gives other outputs for the real tokens."""
    prompted, _, tok = _models(attn, variant, "shallow")
    prompted.train()
    batch = _batch(tok)
    batch["label"] = torch.tensor([0, 1])
    loss = prompted(batch)["loss"]
    loss.backward()
    prompt = [p for p in prompted.shallow.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and prompt and all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompt)
    assert all(p.grad is None for p in prompted.backbone.parameters())
    prompted.eval()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        before = prompted.encode(batch)
        assert before.shape[:2] == batch["input_ids"].shape  # the prompt's positions are not in the output
        for p in prompt:
            p.add_(torch.randn_like(p))
        after = prompted.encode(batch)
    assert ((after - before)[real].abs().amax(-1) > 1e-3).all()  # every real token reads the prompt


@pytest.mark.parametrize("attn", ATTN)
def test_masked_shallow_prompt_reproduces_the_untouched_deberta(attn):
    """The mask columns line up: with the prompt's columns masked out, the real tokens equal Hugging Face's
    DeBERTa (relative positions only, v3-like); visible, the prompt changes them."""
    prompted, plain, tok = _models(attn, "v3", "shallow")
    batch = _batch(tok)
    real = batch["attention_mask"].bool()

    def tokens(prompt_mask):
        mask = torch.cat([torch.full((2, 4), prompt_mask), batch["attention_mask"]], dim=1)
        return prompted.backbone(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state[:, 4:]
    with torch.no_grad():
        reference = _hf(plain, batch)
        torch.testing.assert_close(tokens(0)[real], reference[real], atol=1e-5, rtol=0)
        assert (tokens(1) - reference)[real].abs().max() > 1e-3


def test_a_deberta_model_passes_the_start_up_checks():
    """train.py's start-up check (fpt/validate.py) knows the deberta family (it refused every DeBERTa run)."""
    from fpt.validate import check_model
    cfg = compose("model=tiny-deberta", "prompt=shallow")
    check_model(cfg.model, cfg.task)


def test_a_gated_deberta_growth_run_crosses_its_stage_changes(tmp_path):
    """schedule.new_layer_prefix=gate on DeBERTa (it failed at the first stage change): a 4-layer tiny-deberta grown
    2 -> 3 -> 4 layers trains through both changes, the gates of the joining layers learn, and the logged FLOPs
    count their extra attention passes (more than the same run without gates)."""
    from fpt.trainer import Trainer
    settings = ["model=tiny-deberta", *TINY_FPT[1:], "schedule=fpt", GROWTH_STAGES, "prompt.dropout=0"]
    gated = Trainer(compose(*settings, "schedule.new_layer_prefix=gate", f"output_root={tmp_path}"), tmp_path / "gate")
    results = gated.run()
    assert results["status"] == "completed" and gated.growth.stage_index == 2
    gates = gated.model.deep.gates
    assert sorted(gates) == ["1", "2"] and all(g.item() != 0 for g in gates.values())  # stage 0 kept 0 and 3
    plain = Trainer(compose(*settings, f"output_root={tmp_path}"), tmp_path / "init").run()
    assert results["train_flops"] > plain["train_flops"]
