"""What a run writes and reads back: checkpoints and tensor files carry a sha256 that every reader checks (a damaged
file is refused naming it and the way back, never used), a failed write names the file and the OS error and loses
nothing already on disk, and the best checkpoint is never a NaN evaluation while a number exists."""
import errno
import logging
import math
import os
from pathlib import Path

import pytest
import torch
from helpers import assert_same_run, compose, run_in_process as run, tiny_run

from fpt.runs.checkpoint import CheckpointError, load_checkpoint, read_tensors, save_checkpoint, save_tensors
from fpt.runs.results import improves
from fpt.runs.folder import RunFolderError
from fpt.runs.trained import read_trained
from fpt.trainer import Trainer

TINY = tiny_run(12, 4, 100)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def flip(path: Path, offset: int, count: int = 64) -> None:
    """Overwrite `count` bytes in place (the size stays), as a broken disk or copy would."""
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = bytes(b ^ 0xFF for b in data[offset:offset + count])
    path.write_bytes(bytes(data))


def tensor_offset(path: Path, tensor: torch.Tensor) -> int:
    """Where `tensor`'s bytes are in the file: damage there loads without any error, as other values."""
    offset = path.read_bytes().find(tensor.contiguous().numpy().tobytes()[:64])
    assert offset > 0
    return offset


# --------------------------------------------------------------------------- checkpoints
def test_bit_rot_in_last_pt_is_refused_naming_it_and_previous_pt_resumes_equal(tmp_path):
    """64 bytes of a prompt tensor overwritten in last.pt (same size): the run refuses before writing anything,
    naming the file and `mv previous.pt last.pt`; after that move it resumes to the uninterrupted run's end."""
    folder = tmp_path / "run"
    assert run(folder, "trainer.save_every=2", "trainer.stop_at_step=5")["status"] == "stopped"
    last, previous = folder / "checkpoint" / "last.pt", folder / "checkpoint" / "previous.pt"
    state = torch.load(last, weights_only=False)
    assert state["step"] == 5 and torch.load(previous, weights_only=False)["step"] == 4
    flip(last, tensor_offset(last, next(iter(state["trainable"].values()))))
    assert torch.load(last, weights_only=False)["step"] == 5  # still loads: only the checksum tells
    before = snapshot(folder)
    with pytest.raises(RunFolderError) as err:
        run(folder, "trainer.save_every=2")
    message = str(err.value)
    assert f"the checkpoint {last} is damaged: its sha256 starts " in message, message
    assert f"mv {previous} {last}" in message and "trainer.resume=false" in message
    assert snapshot(folder) == before
    with pytest.raises(CheckpointError, match="is damaged"):  # every reader checks: the trainer's resume too
        load_checkpoint(last)
    os.replace(previous, last)  # the way back the message gives
    assert run(folder, "trainer.save_every=2")["status"] == "completed"
    full = tmp_path / "full"
    run(full, "trainer.save_every=2")
    assert_same_run(full, folder)


def test_damaged_previous_pt_is_not_offered_as_the_way_back(tmp_path):
    last = tmp_path / "last.pt"
    for step in (1, 2):
        save_checkpoint(last, {"step": step, "x": torch.arange(64.0)})
    flip(tmp_path / "previous.pt", tensor_offset(tmp_path / "previous.pt", torch.arange(64.0)))
    flip(last, tensor_offset(last, torch.arange(64.0)))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(last)
    assert "previous.pt" not in str(err.value) and "trainer.resume=false" in str(err.value)


def test_checkpoint_without_its_checksum_line(tmp_path, caplog):
    """An fpt checkpoint whose last line (the sha256) is gone is refused; one of an older fpt, which wrote none,
    is read with a warning."""
    ours, old = tmp_path / "ours" / "last.pt", tmp_path / "old" / "last.pt"
    save_checkpoint(ours, {"step": 3})
    assert load_checkpoint(ours) == {"step": 3}
    flip(ours, ours.stat().st_size - 30, 10)  # in the sha256 line: no longer one
    with pytest.raises(CheckpointError, match=f"{ours} is damaged: its last line, the sha256 written with it, is "
                                              f"missing or garbled"):
        load_checkpoint(ours)
    old.parent.mkdir()
    torch.save({"step": 3}, old)
    with caplog.at_level(logging.WARNING, logger="fpt"):
        assert load_checkpoint(old) == {"step": 3}
    assert f"{old} has no sha256 (written by an older fpt): read unverified" in caplog.text


def test_old_format_checkpoint_fails_naming_the_file(tmp_path):
    """A checkpoint of the single-tensor layout (one `deep.embeds` for all sites) is refused, not half-loaded."""
    cfg = compose(*TINY, f"output_root={tmp_path}")
    trainer = Trainer(cfg, tmp_path / "run")
    width = 2 * trainer.model.deep.num_heads * trainer.model.deep.head_dim * trainer.model.deep.num_sites
    old = {"step": 4, "trainable": {"deep.embeds": torch.zeros(4, width)}, "optimizer": {}, "lr_schedule": {},
           "rng": None, "best": {}, "train_flops": 0, "train_seconds": 0.0}
    save_checkpoint(trainer.ckpt_path, old)
    with pytest.raises(ValueError, match="checkpoint format 1") as err:
        trainer.load()
    assert str(trainer.ckpt_path) in str(err.value) and "deep.embeds" in str(err.value)
    # the current format loads
    trainer.save()
    assert trainer.load() and trainer.step == 0


# --------------------------------------------------------------------------- write failures
class _Full:
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_failed_checkpoint_write_names_the_file_and_the_os_error(tmp_path, monkeypatch):
    """torch's zip writer turns a failed write into `RuntimeError: [enforce fail at inline_container.cc...]`: the
    error names the checkpoint and the OS error instead, and the checkpoints already there stay as they were."""
    last = tmp_path / "checkpoint" / "last.pt"
    for step in (1, 2):
        save_checkpoint(last, {"step": step, "x": torch.zeros(10)})
    before = snapshot(tmp_path)
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: _Full(real(fd, mode), 4096))
    with pytest.raises(OSError) as err:
        save_checkpoint(last, {"step": 3, "x": torch.zeros(100_000)})
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == f"[Errno 28] could not write {last}: No space left on device"
    assert snapshot(tmp_path) == before  # no temporary file left, last.pt and previous.pt untouched
    assert load_checkpoint(last)["step"] == 2


# --------------------------------------------------------------------------- trained-tensor files
def test_damaged_trained_tensor_file_is_refused_by_eval_and_init_from(tmp_path):
    from fpt.evaluate_run import load_run
    folder = tmp_path / "run"
    assert run(folder)["status"] == "completed"
    best = folder / "trainable_best.safetensors"
    tensors, meta = read_trained(best)
    assert "sha256" not in meta and meta["checkpoint"] == "best"
    good = best.read_bytes()
    flip(best, tensor_offset(best, next(iter(tensors.values()))))
    with pytest.raises(CheckpointError, match=f"the trained-tensor file {best} is damaged: its content does not "
                                              f"match the sha256 written with it"):
        load_run(folder, "best", "cpu")
    with pytest.raises(CheckpointError, match=f"the trained-tensor file {best} is damaged"):
        run(tmp_path / "continued", f"init_from={best}")
    # the header is covered too: another step number of the same length
    step = meta["step"].encode()
    best.write_bytes(good.replace(b'"step":"' + step + b'"', b'"step":"' + str(int(step) - 1).encode() + b'"'))
    assert best.read_bytes() != good
    with pytest.raises(CheckpointError, match="is damaged"):
        read_trained(best)
    best.write_bytes(good[:100])  # truncated: the reader's own error, named
    with pytest.raises(CheckpointError, match=f"cannot read the trained-tensor file {best} \\(SafetensorError"):
        read_trained(best)


def test_tensor_file_digest_covers_dtype_shape_and_values_and_old_files_are_read(tmp_path, caplog):
    path = tmp_path / "t.safetensors"
    x = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    save_tensors(path, {"x": x, "y": torch.tensor(True)}, {"k": "v"})
    tensors, meta = read_tensors(path)
    assert meta == {"k": "v"} and torch.equal(tensors["x"], x) and bool(tensors["y"])
    good = path.read_bytes()
    for old, new in ((b'"BF16"', b'"I16" '), (b'[2,3]', b'[3,2]'), (b'"v"', b'"w"')):  # the same bytes, other meaning
        assert old in good
        path.write_bytes(good.replace(old, new))
        with pytest.raises(CheckpointError, match=f"the tensor file {path} is damaged"):
            read_tensors(path)
    from safetensors.torch import save_file
    save_file({"x": x}, str(path), metadata={"k": "v"})  # written without a digest (an older fpt)
    with caplog.at_level(logging.WARNING, logger="fpt"):
        assert read_tensors(path)[1] == {"k": "v"}
    assert f"{path} has no sha256" in caplog.text


# --------------------------------------------------------------------------- the best checkpoint
def test_improves_never_picks_nan():
    nan = math.nan
    assert improves(nan, None) and improves(0.7, nan) and improves(0.85, 0.7)
    assert not improves(nan, 0.7) and not improves(nan, nan) and not improves(0.7, 0.7) and not improves(0.6, 0.7)


def test_nan_evaluation_does_not_lock_the_best_checkpoint(tmp_path, monkeypatch):
    """Scripted dev scores NaN, 0.70, 0.85 (STS-B's correlation is NaN on constant predictions): the best is 0.85
    at its step, in results.json and in trainable_best.safetensors."""
    from fpt.trainer import Trainer
    scores = iter([math.nan, 0.70, 0.85])
    monkeypatch.setattr(Trainer, "evaluate", lambda self: {self.task.metric: next(scores)})
    results = run(tmp_path / "run", "trainer.eval_every=2")
    assert results["best"] == {results["metric"]: 0.85} and results["best_step"] == 6
    assert read_trained(tmp_path / "run" / "trainable_best.safetensors")[1]["step"] == "6"
