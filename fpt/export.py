"""Export a run's trained prompt for other tools: `python -m fpt.export RUN_DIR --format peft [--out DIR]`.

    python -m fpt.export RUN --format peft --out DIR [--force]          # a PEFT adapter folder + README.md
    python -m fpt.export RUN --push-to-hub USER/NAME --dry-run          # what would be uploaded, nothing sent
    python -m fpt.export RUN --push-to-hub USER/NAME                    # upload it (huggingface_hub; needs a login)

With peft installed, adapter_config.json is written by PEFT itself (`PromptTuningConfig` / `PrefixTuningConfig`
`.save_pretrained`), so its schema is always the installed PEFT's; without peft, fpt writes the same fields.
`base_model_name_or_path` is the model's hub id (the bundled MiniLM: sentence-transformers/all-MiniLM-L6-v2), never
the folder of an installed package. A folder that already holds an adapter is overwritten only with --force.
Every export also writes a model card, README.md: the run's task, model, prompt, metrics (results.json), whether
the adapter is exact, how to load it, and the run's config.

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
import os
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .evaluate_run import load_run
from .runs.checkpoint import save_tensors, write_json, write_text

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CARD = "README.md"
# bundled models and the hub model each one is (base_model_name_or_path: not the installed package's folder)
HUB_IDS = {"bundled:minilm": "sentence-transformers/all-MiniLM-L6-v2"}


class ExportRefused(ValueError):
    """The export would overwrite an adapter (without --force)."""


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


def base_model_id(name_or_path: str) -> str:
    """What base_model_name_or_path says: a bundled model's hub id; a hub id or a folder the user gave, as given."""
    if name_or_path.startswith("bundled:"):
        if name_or_path not in HUB_IDS:
            raise NotRepresentable(f"model.name_or_path={name_or_path!r}: no hub id known for this bundled model "
                                   f"(fpt/export.py HUB_IDS)")
        return HUB_IDS[name_or_path]
    return name_or_path


def write_adapter_config(out_dir: Path, config: dict) -> None:
    """adapter_config.json, by PEFT's own config class when peft is installed (its schema, its version field),
    else as fpt's dict; atomically either way."""
    try:
        import peft  # optional (the dev extra): fpt trains and exports without it
    except ImportError:
        write_json(out_dir / ADAPTER_CONFIG, config)
        return
    kinds = {"PROMPT_TUNING": peft.PromptTuningConfig, "PREFIX_TUNING": peft.PrefixTuningConfig}
    made = kinds[config["peft_type"]](**{k: v for k, v in config.items() if k != "peft_type"})
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        made.save_pretrained(tmp)
        os.replace(Path(tmp) / ADAPTER_CONFIG, out_dir / ADAPTER_CONFIG)


def export_peft(loaded, out_dir, allow_inexact: bool = False, force: bool = False) -> dict:
    """Write a PEFT adapter folder for a loaded run (fpt.evaluate_run.load_run) and its model card; return its
    adapter config. An adapter PEFT would run differently from fpt is written only with allow_inexact=True; a
    folder that holds an adapter is overwritten only with force=True."""

    cfg, model, out_dir = loaded.cfg, loaded.model, Path(out_dir)
    base = None if cfg.model.from_config else base_model_id(cfg.model.name_or_path)
    if loaded.partial:
        raise NotRepresentable(f"the run's prompt was trained on a partial model (schedule={cfg.schedule.name}); "
                               f"PEFT would apply it to the full {cfg.model.name}")
    config, weights, inexact = peft_adapter(cfg, model, base or str((out_dir / "base_model").resolve()))
    if inexact and not allow_inexact:
        raise NotRepresentable(f"{inexact}. Pass --allow-inexact to write the adapter anyway")
    held = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if (out_dir / name).exists()]
    if held and not force:
        raise ExportRefused(f"{out_dir} already holds an adapter ({', '.join(held)}); pass --force to overwrite it, "
                            f"or choose another --out")
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
    write_text(out_dir / MODEL_CARD, model_card(loaded, config, inexact, bool(head)))
    write_adapter_config(out_dir, config)  # last: a folder with adapter_config.json is a complete adapter
    return config


def model_card(loaded, config: dict, inexact: str | None, has_head: bool) -> str:
    """README.md of the adapter folder: what was trained, its metrics, how to load it, the run's config."""
    cfg = loaded.cfg
    results_file = Path(loaded.path).parent / "results.json"  # the run folder of the trained tensors
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    peft_class = {"PROMPT_TUNING": "PromptTuning", "PREFIX_TUNING": "PrefixTuning"}[config["peft_type"]]
    rows = [f"| {split} | {metric} | {value:.4f} |" for split in ("best", "final")
            for metric, value in (results.get(split) or {}).items() if isinstance(value, (int, float))]
    auto = "AutoModelForSeq2SeqLM" if config["task_type"] == "SEQ_2_SEQ_LM" else "AutoModel"
    lines = ["---", "library_name: peft", f"base_model: {config['base_model_name_or_path']}",
             f"tags: [fpt, {cfg.prompt.type}-prompt, {peft_class.lower()}, {cfg.task.name}]", "---", "",
             f"# {cfg.prompt.type} prompt for {cfg.model.name} on {cfg.task.name}", "",
             f"Trained with fpt (`prompt={cfg.prompt.type}`, {config['num_virtual_tokens']} "
             f"virtual tokens, `schedule={cfg.schedule.name}`, seed {cfg.seed}) and exported as a PEFT {peft_class} "
             f"adapter for `{config['base_model_name_or_path']}`.", "",
             "Exact: PEFT computes what fpt computed." if inexact is None else f"**Not exact**: {inexact}.", ""]
    if has_head:
        lines += ["The classification head is not part of a PEFT prompt adapter: it is `fpt_head.safetensors` "
                  f"(`classifier.weight`, `classifier.bias` over the pooled hidden states, pooling "
                  f"`{cfg.model.pooling}`).", ""]
    if rows:
        lines += [f"## Dev metrics ({results.get('steps')} steps; best at step {results.get('best_step')})", "",
                  "| checkpoint | metric | value |", "|---|---|---|", *rows, ""]
    lines += ["## Load", "", "```python", f"from transformers import {auto}", "from peft import PeftModel", "",
              f"base = {auto}.from_pretrained({config['base_model_name_or_path']!r})",
              "model = PeftModel.from_pretrained(base, \"<this folder or repo>\")", "```", "",
              "## The run's config", "", "```yaml", OmegaConf.to_yaml(cfg, resolve=True).rstrip(), "```", ""]
    return "\n".join(lines)


def push_to_hub(folder: Path, repo_id: str, dry_run: bool, api=None) -> list[str]:
    """Upload the export folder to a hub model repository (created if missing); returns the files. A dry run only
    prints what would be uploaded. `api`: an `huggingface_hub.HfApi` (a fake one in the tests)."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    total = sum((folder / f).stat().st_size for f in files)
    print(f"{'would upload' if dry_run else 'uploading'} {len(files)} files ({total / 1e6:.1f} MB) from {folder} "
          f"to https://huggingface.co/{repo_id}:")
    for name in files:
        print(f"  {name} ({(folder / name).stat().st_size} bytes)")
    if dry_run:
        return files
    if api is None:
        from huggingface_hub import HfApi  # a dependency of transformers; loaded only to push
        api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      commit_message=f"fpt export of {folder.name}")
    print(f"uploaded to https://huggingface.co/{repo_id}")
    return files


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fpt.export", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the training run's folder")
    parser.add_argument("--format", default="peft", choices=["peft"])
    parser.add_argument("--checkpoint", default="best", choices=["best", "final"])
    parser.add_argument("--out", help="output folder (default: <run>/export/peft-<checkpoint>)")
    parser.add_argument("--allow-inexact", action="store_true",
                        help="write an adapter PEFT runs differently from fpt (BERT deep prompts: position shift)")
    parser.add_argument("--force", action="store_true", help="overwrite an adapter already in the output folder")
    parser.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to this hub model repository")
    parser.add_argument("--dry-run", action="store_true", help="with --push-to-hub: list what would be uploaded")
    args = parser.parse_args(argv)
    if args.dry_run and not args.push_to_hub:
        parser.error("--dry-run goes with --push-to-hub REPO")
    loaded = load_run(args.run, args.checkpoint, device="cpu")
    out = Path(args.out or Path(args.run) / "export" / f"peft-{args.checkpoint}")
    try:
        config = export_peft(loaded, out, args.allow_inexact, args.force)
    except NotRepresentable as err:
        raise SystemExit(f"cannot export {args.run} ({loaded.cfg.model.family} {loaded.cfg.prompt.type} prompt) "
                         f"to PEFT: {err}") from None
    except ExportRefused as err:
        raise SystemExit(f"not exported: {err}") from None
    print(f"wrote {config['peft_type']} adapter to {out}: " + json.dumps(
        {k: config[k] for k in ("num_virtual_tokens", "token_dim", "num_layers")}))
    if args.push_to_hub:
        push_to_hub(out, args.push_to_hub, args.dry_run)


if __name__ == "__main__":
    main()
