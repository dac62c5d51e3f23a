"""Deep and shallow prompts on tiny random BERT and T5: exactness, gradients, frozen weights, generation."""
import pytest
import torch
from helpers import compose

from fpt.models import build_model, load_tokenizer
from fpt.task_kinds import get_kind

torch.set_num_threads(1)
ATTN = ["sdpa", "eager"]


def _pair(model: str, attn: str, prompt: str, *extra: str):
    """A prompted model and the untouched Hugging Face backbone with the same weights."""
    cfg = compose(f"model={model}", f"prompt={prompt}", f"model.attn_implementation={attn}", *extra)
    tok = load_tokenizer(cfg.model)
    torch.manual_seed(0)
    prompted = build_model(cfg.model, cfg.prompt, cfg.task, tok, num_labels=2, kind=get_kind(cfg.task)).eval()
    bare = compose(f"model={model}", "prompt=none", f"model.attn_implementation={attn}")
    plain = build_model(bare.model, bare.prompt, bare.task, tok, num_labels=2, kind=get_kind(bare.task)).eval()
    plain.backbone.load_state_dict(prompted.backbone.state_dict())
    return prompted, plain, tok


def _batch(tok, seq2seq: bool):
    batch = dict(tok(["a short one", "a somewhat longer sentence with padding needed"], padding=True,
                     return_tensors="pt"))
    if seq2seq:
        batch["labels"] = tok(text_target=["yes", "no it is not"], padding=True, return_tensors="pt")["input_ids"]
    return batch


def _hf_outputs(model, batch, seq2seq: bool):
    """Last hidden states straight from the Hugging Face model (no fpt code in the path)."""
    if seq2seq:
        out = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             labels=batch["labels"], output_hidden_states=True)
        return out.encoder_last_hidden_state, out.decoder_hidden_states[-1]
    out = model.backbone(**{k: v for k, v in batch.items() if k != "labels"})
    return (out.last_hidden_state,)


def _fpt_outputs(model, batch, seq2seq: bool):
    if seq2seq:
        embeds, mask = model.encoder_inputs(batch)
        with model.deep_prompt():
            out = model.backbone(inputs_embeds=embeds, attention_mask=mask, labels=batch["labels"],
                                 output_hidden_states=True)
        return out.encoder_last_hidden_state[:, model.shallow_length:], out.decoder_hidden_states[-1]
    return (model.encode(batch),)


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("model", ["tiny-bert", "tiny-t5"])
def test_fully_masked_deep_prefix_equals_plain_model(model, attn):
    prompted, plain, tok = _pair(model, attn, "deep", "prompt.length=4")
    seq2seq = model == "tiny-t5"
    batch = _batch(tok, seq2seq)
    prompted.prefix_visible = torch.zeros(4, dtype=torch.bool)
    with torch.no_grad():
        for ours, ref in zip(_fpt_outputs(prompted, batch, seq2seq), _hf_outputs(plain, batch, seq2seq)):
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
        # and a visible prefix does change the outputs (the prefix is really attended to)
        prompted.prefix_visible = None
        changed = _fpt_outputs(prompted, batch, seq2seq)[0]
        assert (changed - _hf_outputs(plain, batch, seq2seq)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("model", ["tiny-bert", "tiny-t5"])
def test_zero_length_shallow_prompt_equals_plain_model(model, attn):
    prompted, plain, tok = _pair(model, attn, "shallow", "prompt.length=0")
    seq2seq = model == "tiny-t5"
    batch = _batch(tok, seq2seq)
    with torch.no_grad():
        for ours, ref in zip(_fpt_outputs(prompted, batch, seq2seq), _hf_outputs(plain, batch, seq2seq)):
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_shallow_prompt_keeps_real_token_positions():
    """BERT: soft tokens join after the embeddings, so a real token's position embedding is unchanged."""
    prompted, _, tok = _pair("tiny-bert", "sdpa", "shallow", "prompt.length=5")
    seen = {}
    emb = prompted.backbone.embeddings
    emb.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    batch = _batch(tok, False)
    with torch.no_grad():
        prompted.encode(batch)
        direct = emb(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
    torch.testing.assert_close(seen["out"], direct)  # the hook saw the unshifted embeddings


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-t5"])
def test_gradients_reach_every_injected_prefix(model):
    prompted, _, tok = _pair(model, "sdpa", "deep", "prompt.length=3")
    seq2seq = model == "tiny-t5"
    prompted.train()
    batch = _batch(tok, seq2seq)
    batch["label"] = torch.tensor([0, 1])
    prompted(batch)["loss"].backward()
    kinds = set()
    for i, name in enumerate(prompted.site_names):
        site_grad = prompted.deep.site_params(i).grad
        assert site_grad is not None and site_grad.abs().sum() > 0, f"no gradient reaches the prefix of {name}"
        kinds.add(name.split(".", 2)[0] + "." + name.split(".")[-1])
    expected = {"encoder.self", "decoder.self", "decoder.cross"} if seq2seq else {"encoder.self"}
    assert kinds == expected


@pytest.mark.parametrize("prompt", ["deep", "shallow"])
@pytest.mark.parametrize("model", ["tiny-bert", "tiny-t5"])
def test_training_steps_leave_frozen_weights_bitwise_unchanged(model, prompt):
    prompted, _, tok = _pair(model, "sdpa", prompt, "prompt.length=3")
    seq2seq = model == "tiny-t5"
    frozen = {n: p.detach().clone() for n, p in prompted.backbone.named_parameters()}
    trainable = [p for p in prompted.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    prompted.train()
    batch = _batch(tok, seq2seq)
    batch["label"] = torch.tensor([0, 1])
    for _ in range(3):
        prompted(batch)["loss"].backward()
        opt.step()
        opt.zero_grad()
    for n, p in prompted.backbone.named_parameters():
        assert not p.requires_grad, n
        assert torch.equal(p, frozen[n]), f"frozen weight {n} changed"
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable)), "the prompt did not train"


@pytest.mark.parametrize("attn", ATTN)
@pytest.mark.parametrize("prompt", ["deep", "shallow"])
def test_greedy_generation_with_cache_matches_full_recompute(prompt, attn):
    """generate() (KV cache, prefix re-attached each step) == argmax of full forwards without a cache."""
    prompted, _, tok = _pair("tiny-t5", attn, prompt, "prompt.length=3")
    batch = _batch(tok, True)
    generated = prompted.generate(batch, max_new_tokens=6)
    embeds, mask = prompted.encoder_inputs(batch)
    decoded = torch.zeros(2, 1, dtype=torch.long)  # decoder_start_token_id = 0
    with torch.no_grad(), prompted.deep_prompt():
        for _ in range(generated.shape[1] - 1):
            logits = prompted.backbone(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoded,
                                       use_cache=False).logits
            decoded = torch.cat([decoded, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    eos = prompted.backbone.config.eos_token_id
    for row_gen, row_ref in zip(generated.tolist(), decoded.tolist()):
        n = row_gen.index(eos) + 1 if eos in row_gen else len(row_gen)
        assert row_gen[:n] == row_ref[:n]
    assert isinstance(prompted.predict_text(batch, 4)[0], str)


def test_projection_and_prefix_dropout():
    cfg = compose("model=tiny-bert", "prompt=deep", "prompt.projection=true", "prompt.projection_hidden=16",
                  "prompt.dropout=0.5", "prompt.length=2")
    model = build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2,
                        kind=get_kind(cfg.task))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"deep.embeds", "deep.mlp.0.weight", "deep.outputs.0.weight", "deep.outputs.1.bias",
            "head.classifier.weight"} <= names
    model.train()
    assert not torch.equal(torch.stack(model.deep()), torch.stack(model.deep()))  # dropout is active in training
    model.eval()
    assert torch.equal(torch.stack(model.deep()), torch.stack(model.deep()))


@pytest.mark.parametrize("init", ["vocab", "text"])
def test_bert_shallow_vocab_init_looks_like_real_tokens_after_the_embeddings(init):
    """BERT's shallow prompt joins after the embeddings' LayerNorm: a vocab/text init is those tokens' output
    of the embeddings module (norms of real tokens there), not raw word-embedding rows."""
    prompted, plain, tok = _pair("tiny-bert", "sdpa", "shallow", f"prompt.init={init}", "prompt.length=6",
                                 "prompt.init_text='a great movie'")
    emb = plain.backbone.embeddings  # the same weights, without the hook that prepends the prompt
    weight = prompted.shallow.embeds.detach()
    from fpt.models.wrappers import _init_token_ids
    ids = torch.tensor(_init_token_ids(compose("model=tiny-bert", "prompt=shallow", f"prompt.init={init}",
                                               "prompt.length=6", "prompt.init_text='a great movie'").prompt,
                                       tok, prompted.backbone.config.vocab_size))
    ids = ids[torch.arange(6) % len(ids)]
    with torch.no_grad():
        real = emb(input_ids=ids.unsqueeze(0))[0]
        raw = emb.word_embeddings.weight[ids]
    assert torch.equal(weight, real)
    # the LayerNorm output's norm is ~sqrt(hidden) (weight 1, bias 0 here), far from the raw rows'
    real_norm = emb(input_ids=torch.tensor([[5, 6, 7, 8]]))[0].norm(dim=-1).mean()
    torch.testing.assert_close(weight.norm(dim=-1).mean(), real_norm, rtol=0.05, atol=0)
    assert (raw.norm(dim=-1).mean() - real_norm).abs() > 0.5 * real_norm


def test_t5_shallow_vocab_init_copies_input_embeddings():
    prompted, _, tok = _pair("tiny-t5", "sdpa", "shallow", "prompt.init=text", "prompt.length=3",
                             "prompt.init_text='yes no maybe'")
    ids = tok("yes no maybe", add_special_tokens=False)["input_ids"][:3]
    ids = torch.tensor(ids)[torch.arange(3) % len(ids)]
    assert torch.equal(prompted.shallow.embeds.detach(), prompted.backbone.get_input_embeddings().weight[ids])
