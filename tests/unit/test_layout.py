"""docs/layout.md is the floor plan: every file it names exists, and every module of fpt/ is named in it."""
import re

from helpers import ROOT

LAYOUT = ROOT / "docs" / "layout.md"
# a repository path in backquotes or a link: fpt/..., tests/..., conf/..., tools/..., docs/..., benchmarks/...
# (a template such as conf/task/<name>.yaml is read whole and left out)
PATH = re.compile(r"(?:^|[\s`(\[]|\.\./)((?:fpt|tests|conf|tools|benchmarks|docs)/[\w./<>-]*[\w>])", re.MULTILINE)


def named_paths() -> set[str]:
    return {m.rstrip(".") for m in PATH.findall(LAYOUT.read_text()) if "<" not in m}


def test_every_named_file_exists():
    missing = sorted(p for p in named_paths() if not (ROOT / p).exists())
    assert not missing, f"docs/layout.md names files that do not exist: {missing}"


def test_every_fpt_module_is_named():
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "fpt").rglob("*.py")}
    unnamed = sorted(modules - named_paths())
    assert not unnamed, f"fpt modules docs/layout.md does not name (say where each kind of change goes): {unnamed}"


def test_the_path_pattern_reads_backquoted_paths_and_links():
    text = "`fpt/metrics.py` and [growth](../fpt/growth.py), `conf/task/<name>.yaml`, tests/unit/test_x.py."
    assert {m.rstrip(".") for m in PATH.findall(text) if "<" not in m} == \
        {"fpt/metrics.py", "fpt/growth.py", "tests/unit/test_x.py"}
