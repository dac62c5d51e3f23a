"""fpt: prompt tuning experiments (FPT progressive training, P-tuning v2 deep prompts) on one Hydra config tree."""
from pathlib import Path

__version__ = "0.1.0"  # the one place of the version (pyproject.toml reads it)


def _conf_dir() -> Path:
    """The Hydra config tree: `fpt/conf` (in a checkout a symlink to the top-level `conf/`, in an installed
    package a copy of it; pyproject.toml ships it as package data), or `conf/` next to the package on a
    checkout whose file system dropped the symlink."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"fpt's config tree is missing: neither {here / 'conf'} nor {here.parent / 'conf'} "
                            f"holds config.yaml (reinstall fpt, or run from a full checkout)")


CONF_DIR = _conf_dir()
