"""fpt as an installed package: the checkout's conf/ is the package's; outputs follow the umask. The wheel's
contents, installed layout and console scripts (run from another folder): tests/integration/test_wheel.py.

(CI also installs the package into a fresh virtual environment and runs `fpt-train` and `fpt-eval` from another
folder: .ci/run.)
"""
import os

import pytest
import torch
from helpers import ROOT

import fpt
from fpt.runs.checkpoint import save_checkpoint, save_tensors, write_json, write_text


def test_conf_dir_is_the_checkouts_conf():
    assert fpt.CONF_DIR == (ROOT / "conf").resolve()
    assert (ROOT / "fpt" / "conf").resolve() == fpt.CONF_DIR  # the symlink the wheel copies from


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=oct)
def test_outputs_are_as_readable_as_the_umask_says(tmp_path, umask):
    from fpt.scores import save_scores
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_text(tmp_path / "b.yaml", "x: 1\n")
        save_tensors(tmp_path / "c.safetensors", {"w": torch.ones(2)})
        save_checkpoint(tmp_path / "d.pt", {"step": 1})
        save_scores(tmp_path / "e.safetensors", {"s": torch.ones(2)}, {"k": 1})
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["a.json", "b.yaml", "c.safetensors", "d.pt", "e.safetensors"], 0o666 & ~umask)

