"""fpt: prompt tuning experiments (FPT progressive training, P-tuning v2 deep prompts) on one Hydra config tree."""
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
