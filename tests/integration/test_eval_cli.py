"""eval.py on the command line: the T5 run's best prompt rescored, and an unlabeled file predicted (the in-process
evaluation and the rest of after training: tests/unit/test_after_training.py; docs/after-training.md)."""
import json
from pathlib import Path

import pytest
from helpers import ROOT, read_predictions, run_python


def eval_cli(*args: str):
    proc = run_python(str(ROOT / "eval.py"), *args, full_error="1", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_eval_cli_t5_reproduces_best_and_predicts_an_unlabeled_file(t5_run, tmp_path):
    run, results = t5_run
    assert 0 < results["best"]["accuracy"] < 1, results  # a discriminating score to reproduce
    eval_cli(f"run={run}", "split=eval", "checkpoint=best", f"hydra.run.dir={tmp_path / 'dev'}")
    summary = json.loads((tmp_path / "dev" / "metrics.json").read_text())
    assert summary["metrics"] == results["best"] and summary["split"] == "eval"
    dev = read_predictions(tmp_path / "dev")
    assert sum(p["prediction"] == p["gold"] for p in dev) / len(dev) == results["best"]["accuracy"]
    verbal = {"negative": "0", "positive": "1"}
    assert all(p["prediction"] == verbal.get(p["generated"]) for p in dev)  # label = the generated verbalizer
    assert all(0 < p["score"] <= 1 for p in dev)  # the generated tokens' mean probability

    source = Path(dev[0]["source"].rsplit(":", 1)[0]).read_text().splitlines()[1:4]
    unlabeled = tmp_path / "new.tsv"
    unlabeled.write_text("sentence\n" + "".join(line.split("\t")[0] + "\n" for line in source))
    eval_cli(f"run={run}", f"data={unlabeled}", f"hydra.run.dir={tmp_path / 'file'}")
    summary = json.loads((tmp_path / "file" / "metrics.json").read_text())
    assert summary["labeled"] is False and summary["metrics"] == {} and summary["examples"] == 3
    preds = read_predictions(tmp_path / "file")
    assert all("gold" not in p for p in preds)
    assert [p["generated"] for p in preds] == [p["generated"] for p in dev[:3]]  # same prompt, same sentences
    assert [p["score"] for p in preds] == pytest.approx([p["score"] for p in dev[:3]], abs=1e-5)
