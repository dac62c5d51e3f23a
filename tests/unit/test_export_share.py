"""fpt.export through PEFT and to the hub (issue 23, items 7 and 8): PEFT writes adapter_config.json when it is
installed, base_model_name_or_path is a hub id (never an installed package's folder), an adapter is not overwritten
without --force, the folder gets a model card, and --push-to-hub uploads it (a fake HfApi here; --dry-run prints
what it would upload and sends nothing)."""
import json
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fpt.evaluate_run import load_run
from fpt.export import ADAPTER_CONFIG, ExportRefused, base_model_id, export_peft, main, push_to_hub


@pytest.fixture
def loaded(bert_run):
    run, _ = bert_run
    return load_run(run, "best", "cpu")


def test_peft_writes_the_adapter_config(loaded, tmp_path):
    peft = pytest.importorskip("peft")
    config = export_peft(loaded, tmp_path / "peft", allow_inexact=True)
    written = json.loads((tmp_path / "peft" / ADAPTER_CONFIG).read_text())
    assert written["peft_version"] == peft.__version__  # PEFT's own writer (fpt's dict has no such field)
    assert {k: written[k] for k in config} == config  # every field fpt chose, as PEFT serialises it
    assert peft.PeftConfig.from_pretrained(tmp_path / "peft").to_dict()["num_virtual_tokens"] == 4
    assert not [p for p in (tmp_path / "peft").iterdir() if p.is_dir() and p.name != "base_model"]  # no temp left


def test_without_peft_fpt_writes_the_same_fields(loaded, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # as if not installed
    config = export_peft(loaded, tmp_path / "peft", allow_inexact=True)
    assert json.loads((tmp_path / "peft" / ADAPTER_CONFIG).read_text()) == config


def test_base_model_is_the_hub_id_never_the_installed_packages_folder(loaded, tmp_path, monkeypatch):
    assert base_model_id("bundled:minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_id("roberta-large") == "roberta-large" and base_model_id("/data/m") == "/data/m"
    # the loaded run as if its model were the bundled MiniLM (the adapter config is what is checked)
    monkeypatch.setattr(loaded.cfg.model, "from_config", None)
    monkeypatch.setattr(loaded.cfg.model, "name_or_path", "bundled:minilm")
    config = export_peft(loaded, tmp_path / "peft", allow_inexact=True)
    written = json.loads((tmp_path / "peft" / ADAPTER_CONFIG).read_text())
    assert config["base_model_name_or_path"] == written["base_model_name_or_path"] == \
        "sentence-transformers/all-MiniLM-L6-v2"
    assert "site-packages" not in (tmp_path / "peft" / "README.md").read_text()
    assert not (tmp_path / "peft" / "base_model").exists()


def test_an_adapter_is_overwritten_only_with_force(loaded, bert_run, tmp_path, capsys):
    out = tmp_path / "peft"
    export_peft(loaded, out, allow_inexact=True)
    before = load_file(out / "adapter_model.safetensors")
    with pytest.raises(ExportRefused, match=r"already holds an adapter \(adapter_config.json, adapter_model"
                                            r".safetensors\); pass --force"):
        export_peft(loaded, out, allow_inexact=True)
    run, _ = bert_run
    with pytest.raises(SystemExit, match="not exported: .*pass --force"):
        main([str(run), "--out", str(out), "--allow-inexact"])
    main([str(run), "--out", str(out), "--allow-inexact", "--force"])
    after = load_file(out / "adapter_model.safetensors")
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)  # written again


def test_the_model_card_holds_the_runs_config_and_metrics(loaded, bert_run, tmp_path):
    _, results = bert_run
    export_peft(loaded, tmp_path / "peft", allow_inexact=True)
    card = (tmp_path / "peft" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "peft" and front["base_model"] == str((tmp_path / "peft" / "base_model").resolve())
    assert f"| best | accuracy | {results['best']['accuracy']:.4f} |" in card
    assert f"| final | accuracy | {results['final']['accuracy']:.4f} |" in card
    assert "**Not exact**" in card and "fpt_head.safetensors" in card
    config = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert config["model"]["name"] == "tiny-bert" and config["prompt"]["length"] == 4 and config["seed"] == 42


class FakeHub:
    """Records what fpt asks of huggingface_hub.HfApi; sends nothing."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))


def test_push_to_hub_dry_run_prints_and_sends_nothing(bert_run, tmp_path, capsys, monkeypatch):
    import huggingface_hub
    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    run, _ = bert_run
    out = tmp_path / "peft"
    main([str(run), "--out", str(out), "--allow-inexact", "--push-to-hub", "me/tiny-prompt", "--dry-run"])
    text = capsys.readouterr().out
    assert "would upload" in text and "https://huggingface.co/me/tiny-prompt" in text
    for name in ("README.md", "adapter_config.json", "adapter_model.safetensors", "fpt_head.safetensors"):
        assert f"  {name} (" in text
    assert hub.calls == []


def test_push_to_hub_uploads_the_folder(bert_run, tmp_path, capsys, monkeypatch):
    import huggingface_hub
    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    run, _ = bert_run
    out = tmp_path / "peft"
    main([str(run), "--out", str(out), "--allow-inexact", "--push-to-hub", "me/tiny-prompt"])
    [(what, repo, create), (what2, repo2, upload)] = hub.calls
    assert (what, repo, create) == ("create_repo", "me/tiny-prompt", {"repo_type": "model", "exist_ok": True})
    assert (what2, repo2) == ("upload_folder", "me/tiny-prompt") and upload["folder_path"] == str(out)
    files = push_to_hub(out, "me/tiny-prompt", dry_run=True)
    assert "adapter_config.json" in files and "README.md" in files


def test_dry_run_needs_push_to_hub(bert_run):
    run, _ = bert_run
    with pytest.raises(SystemExit):
        main([str(run), "--dry-run"])
