"""`python train.py task=X --cfg job` on the command line itself (every task composing in-process:
tests/unit/test_compose.py)."""
from helpers import run_python


def test_cfg_job_on_the_command_line():
    out = run_python("train.py", "task=squad_v2", "model=t5-base", "--cfg", "job", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "name: squad_v2" in out.stdout and "type: span_qa" in out.stdout and "google/t5-base-lm-adapt" in out.stdout
