"""Activation scores of the bundled MiniLM on real SST-2 (`python -m tools.scores`, in-process): the file's shape
and settings, and the same command twice writes the same bytes (what the scores measure, other seeds, the cache, on
tiny models: tests/unit/test_scores.py)."""
from fpt.scores import load_scores
from tools.scores import main


def test_score_command_on_sst2_writes_reproducible_scores(shared_data, tmp_path):
    args = ["model=minilm", "task=sst2", f"task.data_dir={shared_data / 'GLUE' / 'SST-2'}", "task.max_length=64",
            "schedule.num_score_examples=150", "trainer.eval_batch_size=50"]
    first = main([*args, f"schedule.scores_path={tmp_path / 'a.safetensors'}"])
    second = main([*args, f"schedule.scores_path={tmp_path / 'b.safetensors'}"])
    scores, settings = load_scores(first)
    assert scores["encoder"].shape == (6, 1536)  # MiniLM: 6 layers of 1536 FFN neurons
    assert settings["examples"] == 150 and settings["task"] == "sst2" and settings["model"] == "minilm"
    assert bool((scores["encoder"] > 0).all())
    assert first.read_bytes() == second.read_bytes()
