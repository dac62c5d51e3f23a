"""Activation scores (FPT): how strongly each FFN neuron fires on a task; FFN reduction keeps the top ones.

As the FPT paper: 1,000 random validation examples (fixed seed), the frozen model in eval mode with an
untrained 20-token soft prompt in front; for every FFN the hidden activation (`FFN.hidden`: gelu(W1 h),
or gelu(wi_0 h) * wi_1 h for gated T5), its mean |value| over the non-padded positions of an example
(encoder: attention mask including the prompt; decoder: target positions), averaged over the examples.
One score per neuron per layer: {"encoder": [layers, d_ff], "decoder": [layers, d_ff]}.

Cached per (task, model) in `{output_root}/scores/{task}-{model}.safetensors` (or schedule.scores_path);
a cache computed for other settings, other weights or other inputs (template, text fields, target prefix,
verbalizers, lengths, data: a hash of the scored examples' tokens) is recomputed, and so is a damaged one (its
sha256 does not match, or it cannot be read: a warning names it). Compute it ahead of a run,
with the trainer's set-up, from the repository root:

    python -m tools.scores model=minilm task=sst2 'task.data_dir=${paths.data_root}/GLUE/SST-2'
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from . import distributed as dist
from .runs.checkpoint import CheckpointError, read_tensors, save_tensors
from .prompts import ShallowPrompt
from .batching import map_sorted

log = logging.getLogger("fpt")
PROMPT_LENGTH = 20  # the untrained soft prompt the scores are taken under


def score_path(cfg) -> Path:
    if cfg.schedule.scores_path:
        return Path(cfg.schedule.scores_path)
    return Path(cfg.output_root) / "scores" / f"{cfg.task.name}-{cfg.model.name}.safetensors"


@contextlib.contextmanager
def _scoring_prompt(model, prompt: ShallowPrompt):
    """Within the block `prompt` is the model's shallow prompt (its own prompt set aside)."""
    saved = model.shallow
    model.shallow = prompt
    handle = None
    if saved is None and not model.family.seq2seq:  # encoders prepend the prompt after the embeddings
        handle = model.backbone.embeddings.register_forward_hook(model._prepend_shallow)
    try:
        yield
    finally:
        model.shallow = saved
        if handle is not None:
            handle.remove()


def _record(ffn, stack: str, i: int, sums: dict, masks: dict):
    """Forward hook on the FFN's first input projection: add each example's mean |hidden activation|."""
    busy = False

    def hook(module, inputs, output):
        nonlocal busy
        if busy:  # FFN.hidden calls this projection again
            return
        busy = True
        try:
            act = ffn.hidden(inputs[0]).abs().float()  # [B, S, d_ff]
        finally:
            busy = False
        mask = masks[stack].to(act.dtype)  # [B, S]
        per_example = (act * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        sums[stack][i] += per_example.sum(0).double()
    return hook


def _pick(num_features: int, num_examples: int, seed: int) -> list[int]:
    """The scored examples: the first `num_examples` of a seeded permutation."""
    return torch.randperm(num_features, generator=torch.Generator().manual_seed(seed))[:num_examples].tolist()


@torch.no_grad()
def activation_scores(model, features, num_examples: int = 1000, seed: int = 0,
                      batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Scores of every FFN neuron of `model` (a PromptedModel) on a random subset of `features`."""
    family, backbone = model.family, model.backbone
    device = next(backbone.parameters()).device
    picked = _pick(len(features), num_examples, seed)
    with torch.random.fork_rng(devices=[]):  # the run's random stream stays untouched
        torch.manual_seed(seed)
        prompt = ShallowPrompt(PROMPT_LENGTH, family.dims(backbone.config)["hidden"]).to(device)
    prompt.requires_grad_(False)
    stacks = family.layer_stacks(backbone)
    sums = {s: torch.zeros(len(layers), family.ffn(layers[0]).width, dtype=torch.float64, device=device)
            for s, layers in stacks.items()}
    masks = {}
    handles = []
    for stack, layers in stacks.items():
        for i, layer in enumerate(layers):
            ffn = family.ffn(layer)
            handles.append(ffn.in_projs[0].register_forward_hook(_record(ffn, stack, i, sums, masks)))
    was_training = model.training
    model.eval()
    pad_id = backbone.config.pad_token_id or 0
    try:
        with _scoring_prompt(model, prompt):
            def score(batch) -> list:
                if family.seq2seq:
                    embeds, mask = model.encoder_inputs(batch)
                    masks["encoder"], masks["decoder"] = mask, batch["labels"] != -100
                    backbone(inputs_embeds=embeds, attention_mask=mask, labels=batch["labels"])
                else:
                    masks["encoder"] = model.extend_mask(batch["attention_mask"])
                    backbone(input_ids=batch["input_ids"], attention_mask=masks["encoder"],
                             token_type_ids=batch.get("token_type_ids"))
                rows = batch["choice_mask"] if "choice_mask" in batch else batch["input_ids"]  # features
                return [None] * rows.shape[0]

            map_sorted(score, features, picked, batch_size, pad_id, device)  # length-sorted: less padding
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {s: (v / len(picked)).float().cpu() for s, v in sums.items()}


# --------------------------------------------------------------------------- the cache
def _fingerprint(model) -> str:
    """A short hash of a few FFN weights: tells pretrained weights (and random tiny models) apart."""
    h = hashlib.sha256()
    for layers in model.family.layer_stacks(model.backbone).values():
        for layer in (layers[0], layers[-1]):
            h.update(model.family.ffn(layer).in_projs[0].weight[:8, :8].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _inputs_fingerprint(features, picked: list[int]) -> str:
    """A hash of the token ids (and targets) of the scored examples: whatever changed the encoded inputs
    (template, text fields, target prefix, verbalizers, lengths, tokenizer, data) changes it."""
    h = hashlib.sha256()
    for i in picked:
        feature = features[i]
        for key in sorted(feature):
            value = feature[key]
            value = value.tolist() if hasattr(value, "tolist") else value
            h.update(json.dumps([key, value], default=str).encode())
    return h.hexdigest()[:16]


def _settings(cfg, model, features, num_examples: int) -> dict:
    """The cache key: every setting the scores depend on (named, so that a mismatch says which)."""
    task = cfg.task
    return {"task": task.name, "model": cfg.model.name, "examples": num_examples, "seed": cfg.schedule.score_seed,
            "prompt_length": PROMPT_LENGTH, "max_length": task.max_length, "data": task.data_dir or task.hub,
            "max_eval_samples": task.max_eval_samples, "template": task.template,
            "text_fields": list(task.text_fields), "text_variant": task.text_variant,
            "target_prefix": cfg.model.target_prefix, "verbalizers": list(task.verbalizers),
            "max_target_length": task.max_target_length, "target": task.target,
            "inputs": _inputs_fingerprint(features, _pick(len(features), num_examples, cfg.schedule.score_seed)),
            "weights": _fingerprint(model)}


def save_scores(path: Path, scores: dict, settings: dict) -> None:
    """Atomically: a killed run never leaves a torn file behind. Same scores -> the same bytes."""
    save_tensors(path, scores, metadata={"settings": json.dumps(settings, sort_keys=True, default=str)})


def load_scores(path: Path) -> tuple[dict, dict]:
    """(scores, settings) of a cache file; CheckpointError naming a damaged one (fpt.runs.checkpoint.read_tensors)."""
    scores, meta = read_tensors(path, "activation-score cache")
    try:
        return scores, json.loads(meta.get("settings", "{}"))
    except ValueError as err:  # a file without a sha256 (an older fpt) whose header was damaged
        raise CheckpointError(f"the activation-score cache {path} is damaged: its settings are not JSON "
                              f"({err})") from err


def load_or_compute(cfg, model, eval_set) -> tuple[dict, dict]:
    """The run's scores from the cache, or computed now (and cached): (scores, what happened)."""
    path = score_path(cfg)
    n = min(cfg.schedule.num_score_examples, len(eval_set))
    settings = json.loads(json.dumps(_settings(cfg, model, eval_set, n), default=str))
    if path.is_file():
        try:
            scores, saved = load_scores(path)
        except CheckpointError as err:  # a cache: computed again and replaced
            log.warning("%s: recomputing it", err)
            scores, saved = None, None
        if saved == settings:
            log.info("activation scores from %s", path)
            return scores, {"path": str(path), "computed": False}
        if saved is not None:
            changed = sorted(k for k in settings if saved.get(k) != settings[k])
            log.warning("%s was computed with other %s: recomputing", path, ", ".join(changed))
    started = time.perf_counter()
    scores = activation_scores(model, eval_set, n, cfg.schedule.score_seed, cfg.trainer.eval_batch_size)
    seconds = time.perf_counter() - started
    if dist.rank() == 0:
        save_scores(path, scores, settings)
    log.info("activation scores of %d examples in %.1fs -> %s", n, seconds, path)
    return scores, {"path": str(path), "computed": True, "seconds": seconds, "examples": n}
