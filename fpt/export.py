"""Export a run's trained prompt for other tools: `python -m fpt.export RUN_DIR --format peft [--out DIR]`.

What PEFT (Hugging Face; facts from peft 0.21 with transformers 5) can represent; the rest is refused with the reason:

- T5 shallow -> PromptTuning (SEQ_2_SEQ_LM, encoder only): exact, both prepend the vectors to the encoder's
  input embeddings.
- BERT-family deep (with or without projection) -> PrefixTuning (FEATURE_EXTRACTION): the same per-layer
  key/value prefixes (with projection: the MLP's output, as PEFT itself saves it), but not exact, so written
  only with --allow-inexact: BERT treats PEFT's prefix as cached past tokens and moves the real tokens to
  positions P..P+L-1, where fpt keeps them at 0..L-1 (and PEFT drops token_type_ids).
- BERT-family shallow: refused. fpt puts the vectors after the embedding layer (no position or type embedding,
  no LayerNorm; real tokens keep positions 0..L-1); PEFT's PromptTuning puts them before it and shifts the
  real tokens' positions by P.
- T5 deep: refused. fpt prefixes encoder self-, decoder self- and cross-attention; PEFT's PrefixTuning on T5
  gives the decoder's self-attention a prefix only (the encoder ignores it, the cross-attention cache is reset).
- prompt=none (full fine-tuning) and prompts trained on a partial model (partial_* schedules): refused.

The head of a BERT-family run (classifier over the pooled output) is not part of a PEFT prompt adapter:
it is written beside the adapter as `fpt_head.safetensors` (its `classifier.weight` / `classifier.bias` over
the pooled hidden states, pooling as the run's model.pooling).
Every export writes `fpt_export.json` beside the adapter: whether it is exact, and why not.
A run whose backbone was built from a config with random weights (tiny test models) has no checkpoint to
point PEFT at: the backbone is saved to `<out>/base_model` and the adapter config points there.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .checkpoint import save_tensors, write_json

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class NotRepresentable(ValueError):
    """PEFT has no method that computes what this fpt prompt computes."""


# --------------------------------------------------------------------------- layouts
@torch.no_grad()
def prefix_layout(model) -> torch.Tensor:
    """The deep prompt's prefixes as PEFT's PrefixTuning stores them: [P, sites * 2 * width], row p holding
    site 0's key, site 0's value, site 1's key, ... (each width = heads * head_dim, head-major) for prefix
    position p. Built from DeepPrompt's per-site outputs ([2, H, P, D] each), dropout off."""
    deep = model.deep
    was_training = deep.training
    deep.eval()
    try:
        prefixes = torch.stack(deep())  # [sites, 2, H, P, D]
    finally:
        deep.train(was_training)
    sites, _, heads, length, head_dim = prefixes.shape
    return prefixes.permute(3, 0, 1, 2, 4).reshape(length, sites * 2 * heads * head_dim).detach().float().cpu()


def shallow_layout(model) -> torch.Tensor:
    """The shallow prompt's vectors [P, d_model] (PEFT PromptTuning's prompt_embeddings)."""
    return model.shallow(1)[0].detach().float().cpu()


# --------------------------------------------------------------------------- what PEFT gets
POSITION_SHIFT = ("PEFT passes the prefix to BERT as a cache of past tokens, so BERT gives the real tokens positions "
                  "P..P+L-1 (P = prefix length); fpt's deep prompt leaves them at 0..L-1. The prefixes are the same, "
                  "the hidden states are not. (PEFT's feature-extraction model also drops token_type_ids: sentence "
                  "pairs lose their segment embeddings)")


def peft_adapter(cfg, model, base_model_path: str) -> tuple[dict, dict[str, torch.Tensor], str | None]:
    """(adapter_config, adapter weights, why it is not exact or None), or NotRepresentable saying why not."""
    family, kind = model.family, cfg.prompt.type
    dims = family.dims(model.backbone.config)
    common = {"base_model_name_or_path": base_model_path, "inference_mode": True, "revision": None}
    if kind == "shallow" and family.seq2seq:
        config = {**common, "peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM",
                  "num_virtual_tokens": model.shallow.length, "token_dim": dims["hidden"],
                  "num_transformer_submodules": 1, "num_attention_heads": dims["heads"],
                  "num_layers": dims["layers"]["encoder"], "prompt_tuning_init": "RANDOM"}
        return config, {"prompt_embeddings": shallow_layout(model)}, None
    if kind == "deep" and not family.seq2seq:
        width = dims["heads"] * dims["head_dim"]
        config = {**common, "peft_type": "PREFIX_TUNING", "task_type": "FEATURE_EXTRACTION",
                  "num_virtual_tokens": model.deep.length, "token_dim": width,
                  "num_transformer_submodules": 1, "num_attention_heads": dims["heads"],
                  "num_layers": len(model.site_names), "encoder_hidden_size": width, "prefix_projection": False}
        return config, {"prompt_embeddings": prefix_layout(model)}, POSITION_SHIFT
    reasons = {
        ("shallow", False): "fpt's BERT-family shallow prompt goes after the embedding layer (no position or "
                            "token-type embedding, no LayerNorm, the real tokens keep positions 0..L-1); PEFT's "
                            "PromptTuning prepends to the word embeddings before that layer and shifts the real "
                            "tokens' positions by the prompt length, so it computes something else",
        ("deep", True): "fpt's T5 deep prompt prefixes the encoder's self-attention and the decoder's self- and "
                        "cross-attention; PEFT's PrefixTuning on T5 gives the decoder's self-attention a prefix only",
    }
    if kind == "none":
        raise NotRepresentable("prompt=none is full fine-tuning: there is no prompt to export (the trained "
                               "backbone is in the run's trainable_*.safetensors)")
    raise NotRepresentable(reasons[kind, family.seq2seq])


def export_peft(loaded, out_dir, allow_inexact: bool = False) -> dict:
    """Write a PEFT adapter folder for a loaded run (fpt.evaluate_run.load_run); return its adapter config.
    An adapter PEFT would run differently from fpt is written only with allow_inexact=True."""
    from .models import resolve_path

    cfg, model, out_dir = loaded.cfg, loaded.model, Path(out_dir)
    base = None if cfg.model.from_config else resolve_path(cfg.model.name_or_path)
    if loaded.partial:
        raise NotRepresentable(f"the run's prompt was trained on a partial model (schedule={cfg.schedule.name}); "
                               f"PEFT would apply it to the full {cfg.model.name}")
    config, weights, inexact = peft_adapter(cfg, model, base or str((out_dir / "base_model").resolve()))
    if inexact and not allow_inexact:
        raise NotRepresentable(f"{inexact}. Pass --allow-inexact to write the adapter anyway")
    out_dir.mkdir(parents=True, exist_ok=True)
    if base is None:  # a random from_config backbone exists nowhere else
        model.backbone.save_pretrained(out_dir / "base_model")
        loaded.tokenizer.save_pretrained(out_dir / "base_model")
    meta = {"exported_from": str(loaded.path), **{k: v for k, v in loaded.header.items() if k != "keys"}}
    save_tensors(out_dir / ADAPTER_WEIGHTS, weights, meta)
    head = {k[len("head."):]: v for k, v in model.trainable_state_dict().items() if k.startswith("head.")}
    if head:
        save_tensors(out_dir / "fpt_head.safetensors", head, meta)
    write_json(out_dir / "fpt_export.json", {"exact": inexact is None, "not_exact_because": inexact,
                                              "peft_type": config["peft_type"], "source": str(loaded.path)})
    write_json(out_dir / ADAPTER_CONFIG, config)
    return config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fpt.export", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the training run's folder")
    parser.add_argument("--format", default="peft", choices=["peft"])
    parser.add_argument("--checkpoint", default="best", choices=["best", "final"])
    parser.add_argument("--out", help="output folder (default: <run>/export/peft-<checkpoint>)")
    parser.add_argument("--allow-inexact", action="store_true",
                        help="write an adapter PEFT runs differently from fpt (BERT deep prompts: position shift)")
    args = parser.parse_args(argv)
    from .evaluate_run import load_run
    loaded = load_run(args.run, args.checkpoint, device="cpu")
    out = Path(args.out or Path(args.run) / "export" / f"peft-{args.checkpoint}")
    try:
        config = export_peft(loaded, out, args.allow_inexact)
    except NotRepresentable as err:
        raise SystemExit(f"cannot export {args.run} ({loaded.cfg.model.family} {loaded.cfg.prompt.type} prompt) "
                         f"to PEFT: {err}") from None
    print(f"wrote {config['peft_type']} adapter to {out}: " + json.dumps(
        {k: config[k] for k in ("num_virtual_tokens", "token_dim", "num_layers")}))


if __name__ == "__main__":
    main()
