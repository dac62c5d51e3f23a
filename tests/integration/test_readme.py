"""README.md runs top to bottom (issue 23, item 1): its ```bash blocks, pasted in order into a fresh copy of the
repository, work; and every relative link or image in the Markdown files points at a file.

The convention, which README.md follows:
- A ```bash block whose first line is the comment `# GPU` holds paper-scale jobs: each command without `-m` runs
  with `--cfg job` appended (it composes and prints its config, nothing trains); `-m` sweeps and `torchrun` are
  not run here (`--cfg` does not combine with `-m`; tests/unit/test_docs_commands.py composes them).
- Every other `python train.py` / `eval.py` / `-m fpt.*` line runs as written, in order, in one copy of the
  repository (so `outputs/demo` must be made before a later line uses it), shortened: a `train.py` command's
  trainer.max_steps / trainer.eval_every of N become max(2, N // 10) (so that configs that differ still differ,
  and a repeated command is skipped as documented), and SHORTEN's values are appended where the command does not
  give the key (a 2-step run, 16 dev examples, one thread).
- Installation lines (pip, venv) and the test command itself are not run (SKIPPED).
"""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, subprocess_env

SCALED = ("trainer.max_steps", "trainer.eval_every")
SHORTEN = {"trainer.max_steps": "2", "trainer.eval_every": "2", "task.max_eval_samples": "16",
           "trainer.threads": "1", "trainer.progress": "false"}
SKIPPED = ("pip ", "python3 -m venv", "python -m venv", "python -m pytest")
DEMO = "train.py prompt=deep trainer.max_steps=40 trainer.eval_every=20 hydra.run.dir=outputs/demo"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def bash_blocks(text: str) -> list[list[str]]:
    """The lines of each ```bash block, in order."""
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.strip() == "```bash":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def plan(text: str) -> list[tuple[str, list[str]]]:
    """(how, words) per command line: how is "run", "cfg" (a GPU job: --cfg job) or "skip"."""
    out = []
    for block in bash_blocks(text):
        gpu = bool(block) and block[0].strip() == "# GPU"
        for line in block:
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if line.strip().startswith(SKIPPED) or words[0] not in ("python", "python3"):
                out.append(("skip", words))
            elif gpu:
                multirun = words[1] != "-m" and bool({"-m", "--multirun"} & set(words[2:]))
                out.append(("skip" if multirun else "cfg", words))
            else:
                out.append(("run", words))
    return out


def shortened(words: list[str]) -> list[str]:
    if not words[1].endswith("train.py"):
        return words
    given = {w.split("=", 1)[0]: i for i, w in enumerate(words) if "=" in w}
    words = list(words)
    for key in SCALED:
        if key in given:
            words[given[key]] = f"{key}={max(2, int(words[given[key]].split('=', 1)[1]) // 10)}"
    return words + [f"{key}={value}" for key, value in SHORTEN.items() if key not in given]


def fresh_copy(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".ci", "outputs", "multirun", "__pycache__", "*.pyc", ".pytest_cache", ".venv", "*.egg-info"))
    return dest


def test_the_plan_reads_the_readme_as_documented():
    steps = plan((ROOT / "README.md").read_text())
    cfg = [" ".join(w[1:]) for how, w in steps if how == "cfg"]
    ran = [" ".join(w[1:]) for how, w in steps if how == "run"]
    assert "train.py task=mnli model=t5-xl schedule=fpt" in cfg
    assert not [c for c in cfg if " -m " in f" {c} "]  # GPU sweeps are not run, nor composed with --cfg
    assert ran[0] == "train.py" and "-m pytest -q -x" not in ran  # the demo; not the tests themselves
    assert any(r.startswith("-m fpt.collect outputs/multirun") for r in ran)
    made = ran.index(DEMO)
    assert made < min(i for i, r in enumerate(ran) if "outputs/demo" in r and "hydra.run.dir=outputs/demo" not in r)
    assert shortened(["python", "train.py", "trainer.max_steps=40", "x=1"])[2:5] == [
        "trainer.max_steps=4", "x=1", "trainer.eval_every=2"]
    assert shortened(["python", "train.py"])[2:4] == ["trainer.max_steps=2", "trainer.eval_every=2"]


def test_readme_commands_run_in_order_on_a_fresh_copy(tmp_path):
    repo = fresh_copy(tmp_path / "fpt")
    env = {**subprocess_env(), "PYTHONPATH": str(repo)}  # the copy's fpt, as in a fresh clone
    env.pop("FPT_DATA_ROOT", None)
    outputs = []
    for how, words in plan((repo / "README.md").read_text()):
        if how == "skip":
            continue
        cmd = [sys.executable, *(shortened(words)[1:] if how == "run" else [*words[1:], "--cfg", "job"])]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        outputs.append((" ".join(words), proc.stdout + proc.stderr))
        assert proc.returncode == 0, f"README: `{' '.join(words)}` failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        if how == "cfg":
            assert "model:" in proc.stdout and "trainer:" in proc.stdout, proc.stdout[-1000:]
    assert (repo / "outputs" / "demo" / "results.json").is_file()
    assert (repo / "outputs" / "demo-peft" / "adapter_config.json").is_file()
    assert (repo / "outputs" / "demo" / "export" / "peft-best" / "adapter_config.json").is_file()
    assert list((repo / "outputs" / "multirun").rglob("curves.png"))
    again = [out for cmd, out in outputs if cmd == f"python {DEMO}"]  # in Common jobs and in After training
    assert len(again) == 2 and "skipping: this exact config already completed" in again[1]
    dry = [out for cmd, out in outputs if "--dry-run" in cmd]
    assert dry and "would upload" in dry[0]


DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_relative_links_and_images_point_at_files(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same file
        path = target.split("#")[0]
        if not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to missing files (relative to the file): {broken}"
