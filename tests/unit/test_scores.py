"""Activation scores: what they measure (checked by an independent capture), padding, the cache, the command
(tools/scores.py)."""
import logging
import random

import pytest
import torch
from helpers import compose

from fpt.build import build, features
from fpt.runs.checkpoint import CheckpointError
from fpt.models import build_model, load_tokenizer
from fpt.task_kinds import get_kind
from fpt.scores import PROMPT_LENGTH, _scoring_prompt, activation_scores, load_or_compute, load_scores
from fpt.prompts import ShallowPrompt
from fpt.batching import collate
from tools.scores import main

torch.set_num_threads(1)


def _setup(name: str, prompt: str = "deep", *extra: str):
    """The model a run of seed 0 starts from (fpt.build.build) and its dev features."""
    cfg = compose(f"model={name}", f"prompt={prompt}", "prompt.length=3", "task.max_eval_samples=24", "seed=0",
                  *extra)
    parts = build(cfg, "cpu", training=False)
    return parts.model, features(cfg, parts.kind, parts.tokenizer, parts.seq2seq, "eval"), cfg


def _reference_scores(model, features, seed):
    """Means of |input of each FFN's output projection| (the hidden activation), one example at a time."""
    family, backbone = model.family, model.backbone
    picked = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed)).tolist()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prompt = ShallowPrompt(PROMPT_LENGTH, family.dims(backbone.config)["hidden"])
    stacks = family.layer_stacks(backbone)
    sums = {s: torch.zeros(len(layers), family.ffn(layers[0]).width, dtype=torch.float64) for s, layers in stacks.items()}
    handles = []
    for stack, layers in stacks.items():
        for i, layer in enumerate(layers):
            def hook(module, args, stack=stack, i=i):
                sums[stack][i] += args[0][0].abs().mean(0).double()  # one unpadded example: every position
            handles.append(family.ffn(layer).out_proj.register_forward_pre_hook(hook))
    model.eval()
    with torch.no_grad(), _scoring_prompt(model, prompt):
        for i in picked:
            batch = collate([features[i]], 0)
            if family.seq2seq:
                embeds, mask = model.encoder_inputs(batch)
                backbone(inputs_embeds=embeds, attention_mask=mask, labels=batch["labels"])
            else:
                backbone(input_ids=batch["input_ids"], attention_mask=model.extend_mask(batch["attention_mask"]))
    for h in handles:
        h.remove()
    return {s: (v / len(picked)).float() for s, v in sums.items()}


@pytest.mark.parametrize("prompt", ["deep", "shallow"])
@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_scores_match_an_independent_capture(name, prompt):
    """Batched with padding, through hooks on the FFN input projections == one example at a time, through
    hooks on the output projections' inputs; the run's own prompt plays no part."""
    model, features, _ = _setup(name, prompt)
    scores = activation_scores(model, features, num_examples=len(features), seed=3, batch_size=8)
    reference = _reference_scores(model, features, seed=3)
    assert set(scores) == ({"encoder", "decoder"} if name == "tiny-t5" else {"encoder"})
    for stack in scores:
        assert scores[stack].shape == (2, 64)
        torch.testing.assert_close(scores[stack], reference[stack], atol=1e-5, rtol=1e-4)
    other = activation_scores(model, features, num_examples=8, seed=4, batch_size=8)
    assert not torch.equal(other["encoder"], scores["encoder"])  # a subset of other examples scores otherwise


def test_scoring_leaves_the_model_and_the_random_stream_alone():
    model, features, _ = _setup("tiny-bert", "shallow")
    model.train()
    prompt, hooks = model.shallow, dict(model.backbone.embeddings._forward_hooks)
    state = torch.get_rng_state()
    py_state = random.getstate()
    activation_scores(model, features, num_examples=8, seed=0)
    assert model.training and model.shallow is prompt
    assert dict(model.backbone.embeddings._forward_hooks) == hooks
    assert torch.equal(torch.get_rng_state(), state) and random.getstate() == py_state
    assert all(not m._forward_hooks for m in model.backbone.modules() if isinstance(m, torch.nn.Linear))


def test_cache_is_reused_and_recomputed_for_other_weights(tmp_path):
    model, features, cfg = _setup("tiny-t5", "deep", f"output_root={tmp_path}")
    scores, info = load_or_compute(cfg, model, features)
    assert info["computed"] and (tmp_path / "scores" / "sample_sentiment-tiny-t5.safetensors").is_file()
    again, info = load_or_compute(cfg, model, features)
    assert not info["computed"] and all(torch.equal(scores[k], again[k]) for k in scores)
    torch.manual_seed(1)  # another random tiny model: the cached scores are not its scores
    other = build_model(cfg.model, cfg.prompt, cfg.task, load_tokenizer(cfg.model), num_labels=2,
                        kind=get_kind(cfg.task))
    fresh, info = load_or_compute(cfg, other, features)
    assert info["computed"] and not torch.equal(fresh["encoder"], scores["encoder"])


@pytest.mark.parametrize("damage", ["values", "garbage"])
def test_damaged_cache_is_named_and_recomputed(tmp_path, caplog, damage):
    """A cache file with 64 overwritten bytes in its scores (it still parses) or not a safetensors file at all: the
    run warns naming it, computes the scores again and replaces it; a read outside the cache refuses it."""
    model, features, cfg = _setup("tiny-bert", "deep", f"output_root={tmp_path}")
    scores, _ = load_or_compute(cfg, model, features)
    path = tmp_path / "scores" / "sample_sentiment-tiny-bert.safetensors"
    good = path.read_bytes()
    if damage == "values":
        at = good.find(scores["encoder"].numpy().tobytes()[:64])
        path.write_bytes(good[:at] + bytes(b ^ 0xFF for b in good[at:at + 64]) + good[at + 64:])
    else:
        path.write_bytes(b"\x00" * len(good))
    with pytest.raises(CheckpointError, match=f"activation-score cache {path}"):
        load_scores(path)
    with caplog.at_level(logging.WARNING, logger="fpt"):
        again, info = load_or_compute(cfg, model, features)
    assert info["computed"] and f"activation-score cache {path}" in caplog.text and "recomputing" in caplog.text
    assert torch.equal(again["encoder"], scores["encoder"]) and path.read_bytes() == good


def test_score_command_scores_the_model_a_run_trains(tmp_path):
    """The command builds the run with the trainer: its file holds the scores of the model that a run of the same
    config starts from (same seed, weights and eval rows)."""
    path = main(["model=tiny-bert", "prompt=deep", "prompt.length=3", "task.max_eval_samples=24", "seed=0",
                 f"output_root={tmp_path}"])
    assert path == tmp_path / "scores" / "sample_sentiment-tiny-bert.safetensors"
    model, features, cfg = _setup("tiny-bert", "deep")  # seeded 0 before the model is built, as the trainer
    expected = activation_scores(model, features, min(cfg.schedule.num_score_examples, len(features)),
                                 cfg.schedule.score_seed, cfg.trainer.eval_batch_size)
    scores, settings = load_scores(path)
    assert torch.equal(scores["encoder"], expected["encoder"]) and settings["examples"] == len(features) == 24
