"""The wheel: built offline from this checkout, it ships every config and the console scripts, the installed
package composes from its own configs in any folder, and every console script runs from another folder after a
non-editable install (tests/unit/test_package.py: the checkout's layout)."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT, tiny_run


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


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """The wheel pip-installed (not editable) into a new virtual environment, which finds the dependencies
    (torch, transformers, hydra, ...) of this one through a .pth file instead of installing them again."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def console(venv, script: str, *args: str, cwd: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    proc = subprocess.run([str(venv / "bin" / script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{script}: " + proc.stderr[-3000:]
    return proc


def test_every_console_script_runs_from_another_folder(venv, tmp_path):
    """fpt-train trains a tiny run and fpt-eval re-scores its best prompt, from a folder without a checkout,
    with the package's own configs (and no PYTHONPATH: the installed fpt, not this checkout's)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"fpt-train", "fpt-eval"}  # a new console script gets its run below
    where = console(venv, "python", "-c", "import fpt; print(fpt.__file__)", cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv)), where

    console(venv, "fpt-train", *tiny_run(2, 2, 20), "logger=csv", "hydra.run.dir=run", "output_root=.", cwd=tmp_path)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "completed" and results["steps"] == 2, results
    assert (tmp_path / "run" / "train.log").is_file()

    console(venv, "fpt-eval", "run=run", "trainer.device=cpu", cwd=tmp_path)
    [out] = (tmp_path / "run" / "eval").iterdir()  # the default folder: <run>/eval/best-<date>_<time>
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["run"] == str((tmp_path / "run").resolve()) and summary["metrics"] == results["best"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == summary["examples"] == 20
    assert (out / "eval.log").is_file() and "accuracy" in (out / "eval.log").read_text()
