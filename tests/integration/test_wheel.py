"""The wheel: built offline from this checkout, it ships every config and the console scripts, and the
installed package composes from its own configs in any folder (tests/unit/test_package.py: the checkout's layout)."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built (without network) from a copy of this checkout's package sources."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")
    src = tmp_path_factory.mktemp("src")
    for name in ("fpt", "conf", "hydra_plugins"):
        shutil.copytree(ROOT / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", str(src), "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [path] = out.glob("fpt-*.whl")
    return path


def test_wheel_ships_every_config_and_the_console_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("fpt/conf/") for n in names if n.startswith("fpt/conf/")}
    assert shipped == {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert "fpt/data/sample_sentiment/train.tsv" in names and "hydra_plugins/fpt_plugins/optuna_sweeper.py" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fpt-train = fpt.cli:train" in text and "fpt-eval = fpt.cli:evaluate" in text


def test_installed_layout_composes_from_its_own_configs_in_any_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import fpt, sys; from fpt.cli import train; print(fpt.__file__, fpt.CONF_DIR); "
            "sys.argv[0] = 'fpt-train'; train()")
    proc = subprocess.run([sys.executable, "-c", code, "--cfg", "job", "task=rte", "logger=csv"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, config = proc.stdout.split("\n", 1)
    assert first == f"{site / 'fpt' / '__init__.py'} {site / 'fpt' / 'conf'}"
    assert "name: rte" in config and "fpt.loggers.CSVLogger" in config and not any(elsewhere.iterdir())
