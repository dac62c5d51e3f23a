"""How tests/integration/test_readme.py reads README.md: which commands run, which only compose (`--cfg job`),
which are skipped, and how a train.py command is shortened (helpers.readme_plan, helpers.shortened_command)."""
from helpers import README_DEMO as DEMO, ROOT, readme_plan as plan, shortened_command as shortened


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
