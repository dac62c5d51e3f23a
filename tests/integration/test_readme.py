"""README.md runs top to bottom (issue 23, item 1): its ```bash blocks, pasted in order into a fresh copy of the
repository, work (the plan read from it: tests/unit/test_readme_plan.py; the links in the Markdown files:
tests/unit/test_docs_links.py).

The convention, which README.md follows:
- A ```bash block whose first line is the comment `# GPU` holds paper-scale jobs: each command without `-m` runs
  with `--cfg job` appended (it composes and prints its config, nothing trains); `-m` sweeps and `torchrun` are
  not run here (`--cfg` does not combine with `-m`; tests/unit/test_docs_commands.py composes them).
- Every other `python train.py` / `eval.py` / `-m fpt.*` line runs as written, in order, in one copy of the
  repository (so `outputs/demo` must be made before a later line uses it), shortened: a `train.py` command's
  trainer.max_steps / trainer.eval_every of N become max(2, N // 10) (so that configs that differ still differ,
  and a repeated command is skipped as documented), and helpers.README_SHORTEN's values are appended where the
  command does not give the key (a 2-step run, 16 dev examples, one thread).
- Installation lines (pip, venv) and the test command itself are not run (helpers.README_SKIPPED).
"""
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import README_DEMO as DEMO, ROOT, readme_plan as plan, shortened_command as shortened, subprocess_env


def fresh_copy(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".ci", "outputs", "multirun", "__pycache__", "*.pyc", ".pytest_cache", ".venv", "*.egg-info"))
    return dest


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
