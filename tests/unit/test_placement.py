"""model.device_map: a Hugging Face-sharded backbone stays where it was put; prompt and head follow it."""
import pytest
import torch
from helpers import compose

from fpt import distributed as dist
from fpt import models
from fpt.trainer import Trainer


def _cfg(tmp_path, *more):
    return compose("model=minilm", "prompt=deep", "prompt.length=4", "trainer.max_steps=2", "trainer.eval_every=2",
                   "trainer.batch_size=4", "task.max_eval_samples=8", "trainer.progress=false",
                   f"output_root={tmp_path}", *more)


def test_device_mapped_model_is_not_moved_and_trains(tmp_path, monkeypatch):
    real_auto_model, real_to = models.AutoModel, torch.nn.Module.to
    loaded_with, moved = [], []

    class SpyAutoModel:
        @staticmethod
        def from_pretrained(path, **kwargs):
            loaded_with.append(kwargs)
            return real_auto_model.from_pretrained(path, **kwargs)

    def spy_to(module, *args, **kwargs):
        moved.append(type(module).__name__)
        return real_to(module, *args, **kwargs)

    monkeypatch.setattr(models, "AutoModel", SpyAutoModel)
    monkeypatch.setattr(torch.nn.Module, "to", spy_to)
    trainer = Trainer(_cfg(tmp_path, "model.device_map=cpu"), tmp_path / "run")
    assert loaded_with and loaded_with[0]["device_map"] == "cpu"       # transformers placed the backbone
    assert "PromptedEncoder" not in moved and "BertModel" not in moved  # and the trainer never moved it whole
    assert {"DeepPrompt", "ClassificationHead"} <= set(moved)                  # only the prompt and the head
    assert trainer.device == trainer.model.backbone.get_input_embeddings().weight.device
    before = trainer.model.deep.prefixes[0].detach().clone()
    results = trainer.run()
    assert results["status"] == "completed"
    assert not torch.equal(before, trainer.model.deep.prefixes[0])


def test_device_map_refuses_ddp(tmp_path, monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="device_map.*DDP"):
        Trainer(_cfg(tmp_path, "model.device_map=cpu"), tmp_path / "run")
