"""A frozen backbone plus what is trained: the soft prompt (shallow or deep) and, for encoders, a head.

PromptedEncoder: BERT-like models with a task head (P-tuning v2 style).
PromptedSeq2Seq: T5 models doing the task text-to-text, scored by greedy decoding (FPT style).
Both take a batch dict from fpt.batching.collate and return {"loss", "logits"/...}.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from ..prompt_methods import prompt_method
from ..prompts import DeepPrompt, ShallowPrompt, captured_keys_values
from . import checkpointing


class PromptedModel(nn.Module):
    def __init__(self, backbone, family, prompt_cfg, tokenizer, model_cfg, gradient_checkpointing: bool = False,
                 checkpoint_layers: float = 1.0):
        super().__init__()
        self.backbone, self.family, self.prompt_type = backbone, family, prompt_cfg.type
        self.model_cfg = model_cfg
        dims = family.dims(backbone.config)
        sites = family.attention_sites(backbone)
        self.site_names = [name for name, _ in sites]
        self.sites = [module for _, module in sites]  # a plain list: the modules stay registered under backbone
        for module in self.sites:
            module.fpt_eager = family.eager_attention  # the kernel "fpt_eager" wraps for this family
        self.shallow = self.deep = None
        method = prompt_method(prompt_cfg.type)
        if method.input_tokens:
            ids = _init_token_ids(prompt_cfg, tokenizer, dims["vocab"])
            self.shallow = ShallowPrompt(prompt_cfg.length, dims["hidden"], prompt_cfg.init,
                                         self._token_vectors, ids, prompt_cfg.init_range)
        elif method.layer_prefix:
            self.deep = DeepPrompt(len(self.site_names), prompt_cfg.length, dims["heads"], dims["head_dim"],
                                   prompt_cfg.projection, prompt_cfg.projection_hidden, prompt_cfg.dropout)
            if prompt_cfg.init in ("vocab", "text"):
                self._init_deep_from_tokens(_init_token_ids(prompt_cfg, tokenizer, dims["vocab"]))
        if not method.trains_backbone:
            backbone.requires_grad_(False)
        if method.trains_biases:  # BitFit (Ben Zaken et al.): every bias of the backbone trains
            for name, param in backbone.named_parameters():
                if name.endswith(".bias"):
                    param.requires_grad_(True)
        self.prefix_visible = None  # tests: a [P] bool mask over the deep prefix
        self.active_sites = None    # growth: which sites' prefixes are in use (None = all)
        self.gradient_checkpointing = False
        self.checkpoint_layers = checkpointing.check_fraction(checkpoint_layers)
        if checkpoint_layers != 1 and not gradient_checkpointing:
            raise ValueError(f"trainer.checkpoint_layers={checkpoint_layers} needs trainer.gradient_checkpointing=true "
                             f"(it says which share of the layers is checkpointed)")
        if gradient_checkpointing:
            self.set_gradient_checkpointing(True, checkpoint_layers)

    @torch.no_grad()
    def _init_deep_from_tokens(self, token_ids: list[int]) -> None:
        """Prefix-tuning's real-activation init: each site's prefix = its keys/values for these tokens."""
        ids = torch.tensor(token_ids)[torch.arange(self.deep.length) % len(token_ids)].unsqueeze(0)
        was_training = self.backbone.training
        self.backbone.eval()
        with captured_keys_values(self.sites) as captured:
            extra = {"decoder_input_ids": ids} if self.family.seq2seq else {}
            self.backbone(input_ids=ids, **extra)
        self.backbone.train(was_training)
        self.deep.init_from_activations([(calls[0][0][0], calls[0][1][0]) for calls in captured])

    def _token_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """What these tokens look like where a shallow prompt is inserted (here: the input embeddings)."""
        return self.backbone.get_input_embeddings()(ids)

    @property
    def shallow_length(self) -> int:
        return self.shallow.length if self.shallow is not None else 0

    def flops_shape(self) -> dict:
        """The prompt's share of a step's shape, as fpt.flops.step_flops keywords (each prompt says its own)."""
        shape = {"shallow": 0, "deep": 0}
        for prompt in (self.shallow, self.deep):
            if prompt is not None:
                shape.update(prompt.flops_shape())
        return shape

    def deep_prompt(self):
        """Context in which every attention site attends to its prefix."""
        if self.deep is None:
            return contextlib.nullcontext()
        return self.deep.injected(self.sites, self.active_sites, self.prefix_visible)

    def extend_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.shallow is None:
            return attention_mask
        ones = attention_mask.new_ones(attention_mask.shape[0], self.shallow.length)
        return torch.cat([ones, attention_mask], dim=1)

    def set_active_sites(self, active: list[bool] | None) -> None:
        """Growth: which sites' prefixes take part (None = all). An absent site's own tensors stop requiring
        grad (DDP needs every parameter that requires grad to take part) but stay trainable parameters."""
        self.active_sites = active
        if self.deep is not None:
            for i in range(self.deep.num_sites):
                for param in self.deep.site_modules(i):
                    param.requires_grad_(active is None or active[i])

    def set_gradient_checkpointing(self, on: bool, fraction: float | None = None) -> None:
        """trainer.gradient_checkpointing: recompute each transformer layer in the backward instead of keeping its
        activations (fpt/models/checkpointing.py); `fraction` (trainer.checkpoint_layers; None: unchanged): the
        share of each stack's layers, from the bottom, that is checkpointed."""
        self.gradient_checkpointing = bool(on)
        if fraction is not None:
            self.checkpoint_layers = checkpointing.check_fraction(fraction)
        if on:
            self.apply_gradient_checkpointing()
        else:
            checkpointing.disable(self.backbone)

    def apply_gradient_checkpointing(self) -> None:
        """(Re-)apply checkpointing to the layers the model runs now, when it is on; growth calls this after
        building a stage's model (layers dropped or restored, FFNs narrowed)."""
        if not self.gradient_checkpointing:
            return
        stacks = self.family.layer_stacks(self.backbone)
        checkpointing.enable(self.backbone, self.sites, stacks, self.checkpoint_layers)
        checkpointing.check_layers(stacks, self.model_cfg.name, self.checkpoint_layers)

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """What the optimizer holds and checkpoints save: the prompt (every site's prefix, also those of sites
        absent from the current growth stage), the head, and the backbone when it trains (prompt=none)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad or n.startswith("deep.")]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.trainable_parameters()}


def _init_token_ids(prompt_cfg, tokenizer, vocab_size: int):
    if prompt_cfg.init == "text":
        if not prompt_cfg.init_text:
            raise ValueError("prompt.init=text needs prompt.init_text")
        return tokenizer(prompt_cfg.init_text, add_special_tokens=False)["input_ids"]
    if prompt_cfg.init == "vocab":  # Lester et al.: sample among the 5,000 most common (lowest-id) real words
        g = torch.Generator().manual_seed(0)
        words = _common_word_ids(tokenizer, vocab_size)
        return [words[i] for i in torch.randint(len(words), (prompt_cfg.length,), generator=g).tolist()]
    return None


def _common_word_ids(tokenizer, vocab_size: int, count: int = 5000) -> list[int]:
    """Ids of whole alphabetic words (no special, unused or sub-word pieces), lowest ids first."""
    special = set(tokenizer.all_special_ids)
    ids = []
    for i, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))):
        word = token.lstrip("\u2581\u0120")  # sentencepiece / byte-level BPE word-start marks
        if i not in special and word.isalpha() and word.isascii() and len(word) > 1:
            ids.append(i)
            if len(ids) == count:
                break
    return ids


class PromptedEncoder(PromptedModel):
    """`make_head(hidden, pooler)` builds the task's head (its kind's `head`), after the prompt is initialised."""

    def __init__(self, backbone, family, prompt_cfg, tokenizer, model_cfg,
                 make_head: Callable[[int, nn.Module | None], nn.Module], gradient_checkpointing: bool = False,
                 checkpoint_layers: float = 1.0):
        super().__init__(backbone, family, prompt_cfg, tokenizer, model_cfg, gradient_checkpointing, checkpoint_layers)
        self.head = make_head(family.dims(backbone.config)["hidden"], getattr(backbone, "pooler", None))
        if self.shallow is not None:  # after the embeddings so real tokens keep their positions
            backbone.embeddings.register_forward_hook(self._prepend_shallow)

    @torch.no_grad()
    def _token_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """The shallow prompt joins after the embeddings module: a real token there is word + position + type
        embedding through its LayerNorm (positions 0.., type 0, no dropout)."""
        embeddings = self.backbone.embeddings
        was_training = embeddings.training
        embeddings.eval()
        try:
            return embeddings(input_ids=ids.unsqueeze(0))[0]
        finally:
            embeddings.train(was_training)

    def _prepend_shallow(self, module, inputs, output):
        return torch.cat([self.shallow(output.shape[0]).to(output.dtype), output], dim=1)

    def encode(self, batch) -> torch.Tensor:
        """Hidden states of the real tokens (the shallow prompt's positions removed)."""
        with self.deep_prompt():
            out = self.backbone(input_ids=batch["input_ids"], attention_mask=self.extend_mask(batch["attention_mask"]),
                                token_type_ids=batch.get("token_type_ids"))
        return out.last_hidden_state[:, self.shallow_length:]

    def forward(self, batch) -> dict:
        """The head's logits, and its loss when the batch has targets (fpt/models/heads.py)."""
        logits = self.head(self.encode(batch), batch)
        loss = self.head.loss(logits, batch)
        return {"logits": logits} if loss is None else {"logits": logits, "loss": loss}


class PromptedSeq2Seq(PromptedModel):
    def __init__(self, backbone, family, prompt_cfg, tokenizer, model_cfg, gradient_checkpointing: bool = False,
                 checkpoint_layers: float = 1.0):
        super().__init__(backbone, family, prompt_cfg, tokenizer, model_cfg, gradient_checkpointing, checkpoint_layers)
        self.tokenizer = tokenizer

    def encoder_inputs(self, batch):
        embeds = self.backbone.get_input_embeddings()(batch["input_ids"])
        if self.shallow is not None:
            embeds = torch.cat([self.shallow(embeds.shape[0]).to(embeds.dtype), embeds], dim=1)
        return embeds, self.extend_mask(batch["attention_mask"])

    def forward(self, batch) -> dict:
        embeds, mask = self.encoder_inputs(batch)
        with self.deep_prompt():
            out = self.backbone(inputs_embeds=embeds, attention_mask=mask, labels=batch["labels"])
        return {"loss": out.loss, "logits": out.logits}

    @torch.no_grad()
    def generate(self, batch, max_new_tokens: int | None = None, min_new_tokens: int = 0) -> torch.Tensor:
        """Greedy decoding (with the KV cache), as FPT scores text-to-text tasks."""
        embeds, mask = self.encoder_inputs(batch)
        with self.deep_prompt():
            return self.backbone.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False, num_beams=1,
                                          max_new_tokens=max_new_tokens or self.model_cfg.max_new_tokens,
                                          min_new_tokens=min_new_tokens or None)

    @torch.no_grad()
    def predict_text(self, batch, max_new_tokens: int | None = None, min_new_tokens: int = 0) -> list[str]:
        ids = self.generate(batch, max_new_tokens, min_new_tokens)
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        prefix = self.model_cfg.target_prefix.strip()
        return [t.replace(prefix, "", 1).strip() if prefix else t.strip() for t in texts]
