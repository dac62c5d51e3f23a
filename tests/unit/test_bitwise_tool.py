"""tools/bitwise: the renovation's proof tool sees a changed tensor or metric, and only that."""
import json

import torch
from safetensors.torch import save_file

from tools.bitwise import compare, fingerprint


def _run(folder, value: float, accuracy: float, tmp_name: str):
    folder.mkdir()
    save_file({"deep.prefixes.0": torch.full((2, 3), value)}, str(folder / "trainable_final.safetensors"))
    (folder / "results.json").write_text(json.dumps({"best": {"accuracy": accuracy}, "train_seconds": value}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5, "eval_seconds": value}) + "\n")
    (folder / "config.yaml").write_text(f"run_dir: {folder}\noutput_root: /tmp/{tmp_name}/outputs\nseed: 1\n")
    return fingerprint(folder)


def test_compare_sees_a_changed_tensor_or_metric_and_ignores_time_and_folders(tmp_path, capsys):
    prints = {"same": _run(tmp_path / "a", 1.0, 0.5, "tmpaaaa"), "again": _run(tmp_path / "b", 1.0, 0.5, "tmpbbbb"),
              "tensor": _run(tmp_path / "c", 2.0, 0.5, "tmpcccc"), "metric": _run(tmp_path / "d", 1.0, 0.6, "tmpdddd")}
    files = {}
    for name, fp in prints.items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps({"demo": fp}))
    # the same numbers in another temporary folder (run_dir, output_root): equal
    assert compare(files["same"], files["again"]) == 0
    assert "all equal" in capsys.readouterr().out
    assert compare(files["same"], files["metric"]) == 1
    assert "accuracy" in capsys.readouterr().out
    assert compare(files["same"], files["tensor"]) == 1
    assert "deep.prefixes.0" in capsys.readouterr().out
