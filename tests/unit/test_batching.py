"""fpt/batching.py: the length-grouped training stream (trainer.group_by_length) and length-sorted evaluation.

The grouped stream is a pure function of (seed, step) within a run's steps, trains every epoch on exactly the
examples of the ungrouped stream, and pads much less; a run with it, killed and resumed, equals the uninterrupted
run bitwise. Evaluation in length-sorted batches returns the same outputs, in input order, and the same metrics
as the file-order batches it replaced, for every task kind's predict path (tiny random models), under DDP
sharding too.
"""
import collections
import json
import random

import pytest
import torch
from helpers import CONLL, COPA, RECORD, SQUAD, compose, jsonl, write
from safetensors.torch import load_file

import fpt.trainer
from fpt import distributed as dist
from fpt.batching import (BatchStream, GroupedBatchStream, collate, feature_length, length_order, map_sorted,
                          train_stream)
from fpt.evaluation import evaluate
from fpt.runs.launch import main
from fpt.trainer import Trainer

torch.set_num_threads(1)


def lengths(n: int, seed: int = 0) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(3, 64), 0) for _ in range(n)]


# --------------------------------------------------------------------------- the grouped training stream
def test_grouped_stream_is_a_pure_function_of_the_step():
    lens = lengths(700)
    steps = list(range(5, 300))
    ahead = GroupedBatchStream(lens, 16, seed=3, start=5, end=300)
    in_order = [ahead.indices(s) for s in steps]
    shuffled = steps[:]
    random.Random(1).shuffle(shuffled)
    jumping = GroupedBatchStream(lens, 16, seed=3, start=5, end=300)
    picked = {s: jumping.indices(s) for s in shuffled}  # any order, as a run resumed anywhere asks
    assert [picked[s] for s in steps] == in_order
    assert [GroupedBatchStream(lens, 16, seed=3, start=5, end=300).indices(s) for s in (7, 123, 299)] == \
        [in_order[2], in_order[118], in_order[294]]  # a fresh stream (a resumed process) agrees
    other_seed = GroupedBatchStream(lens, 16, seed=4, start=5, end=300)
    assert [other_seed.indices(s) for s in steps] != in_order
    with pytest.raises(ValueError, match="outside this run's steps"):
        ahead.indices(300)


@pytest.mark.parametrize("n,batch,start,end", [(700, 16, 0, 300), (1000, 32, 0, 750), (640, 32, 7, 131),
                                               (30, 8, 0, 40), (4000, 16, 0, 600)])
def test_grouped_stream_trains_each_epoch_and_the_run_on_the_ungrouped_examples(n, batch, start, end):
    """Chunks start anew at every epoch's first step and end with the run: per epoch and over the whole run,
    each example is trained exactly as often as without grouping."""
    lens = lengths(n, seed=n)
    grouped, plain = GroupedBatchStream(lens, batch, 42, start, end), BatchStream(n, batch, 42)
    by_epoch = collections.defaultdict(lambda: (collections.Counter(), collections.Counter()))
    for s in range(start, end):
        g, p = grouped.indices(s), plain.indices(s)
        assert len(g) == batch and sorted(lens[i] for i in g) == [lens[i] for i in g]  # short to long
        by_epoch[s * batch // n][0].update(g)
        by_epoch[s * batch // n][1].update(p)
    for epoch, (g, p) in by_epoch.items():
        assert g == p, f"epoch {epoch}"
    chunks = sorted({grouped.chunk(s) for s in range(start, end)})
    assert chunks[0][0] == start and chunks[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))  # they tile the run's steps
    assert all(b - a <= 50 and a * batch // n == (b - 1) * batch // n for a, b in chunks)  # within one epoch
    if n // batch > 100:
        assert sum(b - a == 50 for a, b in chunks) >= len(chunks) // 2


def test_grouped_batches_pad_much_less_than_random_ones():
    lens = lengths(4000)
    grouped, plain = GroupedBatchStream(lens, 32, 42, 0, 500), BatchStream(4000, 32, 42)

    def padding(stream) -> float:
        """Share of a padded batch's tokens that are padding, over all steps."""
        padded = real = 0
        for s in range(500):
            width = [lens[i][0] for i in stream.indices(s)]
            padded, real = padded + max(width) * len(width), real + sum(width)
        return 1 - real / padded

    assert padding(plain) > 0.4
    assert padding(grouped) < 0.1 * padding(plain)


def test_grouped_batches_are_spread_over_each_chunk_in_random_order():
    """Within a chunk the batches are not dealt short to long: the order is shuffled (by seed and chunk)."""
    lens = lengths(3200)
    stream = GroupedBatchStream(lens, 32, 42, 0, 100)
    widths = [max(lens[i][0] for i in stream.indices(s)) for s in range(50)]
    assert sorted(widths) != widths and sorted(widths, reverse=True) != widths
    assert len({tuple(stream.indices(s)) for s in range(100)}) == 100


def test_off_is_the_ungrouped_stream_of_before():
    """trainer.group_by_length=false: epoch e is torch.randperm seeded by seed * 1000003 + e, cut in steps."""
    feats = [{"input_ids": [0] * n} for n, _ in lengths(50)]
    stream = train_stream(feats, 8, 42, group_by_length=False)
    assert type(stream) is BatchStream
    flat = [torch.randperm(50, generator=torch.Generator().manual_seed(42 * 1000003 + e)).tolist() for e in range(3)]
    flat = [i for perm in flat for i in perm]
    assert [stream.indices(s) for s in range(18)] == [flat[8 * s:8 * s + 8] for s in range(18)]
    assert type(train_stream(feats, 8, 42, group_by_length=True, end=18)) is GroupedBatchStream


def test_feature_length_of_each_kind_of_feature():
    assert feature_length({"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "label": 0}) == (3, 0)
    assert feature_length({"input_ids": [1, 2], "labels": [5, 6, 7, 1]}) == (2, 4)  # text-to-text
    assert feature_length({"input_ids": [[1, 2], [1, 2, 3, 4]], "label": 1}) == (4, 0)  # multiple choice
    assert feature_length({"input_ids": [1, 2, 3], "tag_ids": [-100, 1, 2]}) == (3, 0)


def test_ddp_shards_and_micro_batches_of_a_grouped_step_cover_it(monkeypatch):
    stream = GroupedBatchStream(lengths(500), 16, 42, 0, 100)
    step = stream.indices(37)
    parts = []
    for rank in range(2):
        monkeypatch.setattr(dist, "world_size", lambda: 2)
        monkeypatch.setattr(dist, "rank", lambda r=rank: r)
        mine = dist.shard(step)
        parts += [mine[k * 4:(k + 1) * 4] for k in range(2)]  # grad_accum=2: micro-batches of 4
    assert [i for p in parts for i in p] == step


# --------------------------------------------------------------------------- a run with grouping, killed and resumed
class Killed(BaseException):
    """Stands for SIGKILL: nothing of the run's own clean-up handles it."""


TINY = ["model=tiny-bert", "prompt=deep", "prompt.length=4", "trainer.max_steps=10", "trainer.eval_every=5",
        "trainer.save_every=2", "trainer.batch_size=8", "trainer.eval_batch_size=16", "task.max_eval_samples=60",
        "trainer.threads=1", "trainer.progress=false", "trainer.log_every=1", "logger=none"]


def _train(folder, *overrides):
    cfg = compose(*TINY, *overrides, f"output_root={folder}")
    return main(cfg, folder)


def test_grouped_run_killed_mid_chunk_and_resumed_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    assert compose(*TINY).trainer.group_by_length is True  # the default
    full = _train(tmp_path / "full")

    def fault(point, step):
        if point == "after_step" and step == 5:
            raise Killed
    monkeypatch.setattr(fpt.trainer, "_fault", fault)
    with pytest.raises(Killed):
        _train(tmp_path / "killed")
    assert torch.load(tmp_path / "killed" / "checkpoint" / "last.pt", weights_only=False)["step"] == 4
    monkeypatch.undo()
    resumed = _train(tmp_path / "killed")  # from step 4, inside the chunk of steps 0-9
    for key in ("final", "best", "best_step", "train_flops", "steps"):
        assert resumed[key] == full[key], key
    for name in ("trainable_final.safetensors", "trainable_best.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "killed" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    logs = [[{k: v for k, v in json.loads(x).items() if k != "train_seconds"}
             for x in (f / "metrics.jsonl").read_text().splitlines()] for f in (tmp_path / "full", tmp_path / "killed")]
    assert logs[0] == logs[1]

    ungrouped = _train(tmp_path / "off", "trainer.group_by_length=false")
    assert ungrouped["train_flops"] > full["train_flops"]  # same examples, more padding (counted FLOPs)


def test_grouped_run_with_grad_accum_trains_the_same_prompt(tmp_path):
    """grad_accum=2 splits each grouped batch in two contiguous micro-batches: the same gradient (dropout off)."""
    off = ["trainer.max_steps=4", "trainer.eval_every=4", "model.dropout=0", "model.head_dropout=0"]
    whole, split = _train(tmp_path / "a", *off), _train(tmp_path / "b", *off, "trainer.grad_accum=2")
    assert whole["final"] == split["final"]
    a, b = (load_file(tmp_path / f / "trainable_final.safetensors") for f in ("a", "b"))
    for name in a:
        assert ((a[name] - b[name]).norm() / a[name].norm()).item() < 1e-5, name


# --------------------------------------------------------------------------- length-sorted evaluation
def test_map_sorted_runs_longest_first_and_returns_input_order():
    feats = [{"input_ids": list(range(n))} for n in (3, 9, 1, 9, 5, 2, 7)]
    widths = []

    def fn(batch):
        widths.append(batch["input_ids"].shape[1])
        return [int((row != 0).sum()) + 1 for row in batch["input_ids"]]  # its length, from the padded batch

    assert map_sorted(fn, feats, [6, 0, 1, 2, 3, 4, 5], 2, pad_id=0) == [7, 3, 9, 1, 9, 5, 2]
    assert widths == [9, 7, 3, 1]  # [9, 9], [7, 5], [3, 2], [1]
    assert length_order(feats, [0, 1, 2, 3]) == [1, 3, 0, 2]  # ties keep their order
    with pytest.raises(RuntimeError, match="one output per feature"):
        map_sorted(lambda batch: [0], feats, range(7), 2, pad_id=0)


def _file_order_outputs(trainer, features, batch_size):
    """Evaluation as it was before length sorting: batches in file order."""
    outputs = []
    trainer.model.eval()
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            batch = collate([features[i] for i in range(start, min(start + batch_size, len(features)))],
                            trainer.pad_id)
            outputs += trainer.kind.predict(trainer.model, batch, trainer.task, trainer.seq2seq)
    return outputs


def _check_sorted_evaluation(trainer, monkeypatch, exact_outputs=True):
    """fpt.evaluation.evaluate (length-sorted) gives the file-order evaluation's outputs and identical metrics."""
    features = trainer.eval_set
    widths = [feature_length(features[i]) for i in range(len(features))]
    assert len(set(widths)) > 1, "the check needs features of different lengths"
    batch_size = trainer.tcfg.eval_batch_size
    assert batch_size < len(features)
    seen = []
    score = trainer.kind.score
    monkeypatch.setattr(trainer.kind, "score", lambda task, feats, outputs, seq2seq:
                        seen.append(outputs) or score(task, feats, outputs, seq2seq))
    trainer.model.eval()
    sorted_metrics = evaluate(trainer.model, trainer.kind, trainer.task, features, seq2seq=trainer.seq2seq,
                              batch_size=batch_size, device=trainer.device, pad_id=trainer.pad_id)
    monkeypatch.undo()
    reference = _file_order_outputs(trainer, features, batch_size)
    assert len(seen[0]) == len(reference) == len(features)
    if exact_outputs:
        assert seen[0] == reference
    expected = {k: float(v) for k, v in trainer.kind.score(trainer.task, features, reference,
                                                           trainer.seq2seq).items()}
    assert sorted_metrics == expected
    return seen[0], reference


def _trainer(tmp_path, *overrides):
    cfg = compose("trainer.threads=1", "trainer.progress=false", "logger=none", "trainer.max_steps=1", *overrides)
    return Trainer(cfg, tmp_path / "run")


def test_sorted_evaluation_equals_file_order_classification(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "model=tiny-bert", "trainer.eval_batch_size=8", "task.max_eval_samples=80")
    _check_sorted_evaluation(trainer, monkeypatch)
    # a random model's class may be the same for every row: its logits show that each row got its own output
    model, features = trainer.model, trainer.eval_set
    with torch.no_grad():
        logits = map_sorted(lambda batch: model(batch)["logits"].tolist(), features, range(len(features)), 8, 0)
        plain = [row for start in range(0, len(features), 8) for row in
                 model(collate([features[i] for i in range(start, min(start + 8, len(features)))], 0))["logits"]
                 .tolist()]
    assert torch.tensor(logits) == pytest.approx(torch.tensor(plain), abs=1e-5)
    assert len({tuple(row) for row in logits}) > 40


def test_sorted_evaluation_equals_file_order_t5_generation(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "model=tiny-t5", "trainer.eval_batch_size=6", "task.max_eval_samples=30",
                       "task.generate_max_tokens=5")
    outputs, _ = _check_sorted_evaluation(trainer, monkeypatch)
    assert len(set(outputs)) > 3  # random generated texts, one per input, in input order


@pytest.mark.parametrize("task,files,extra", [
    ("squad_v2", {"train-v2.0.json": json.dumps(SQUAD), "dev-v2.0.json": json.dumps(SQUAD)},
     ["task.max_length=24", "task.doc_stride=8"]),
    ("conll03", {"eng.train": CONLL, "eng.testa": CONLL, "eng.testb": CONLL}, []),
    ("record", {"train.jsonl": jsonl([RECORD]), "val.jsonl": jsonl([RECORD])}, []),
    ("copa", {"train.jsonl": jsonl(COPA), "val.jsonl": jsonl(COPA)}, []),
])
def test_sorted_evaluation_equals_file_order_for_every_bert_head(tmp_path, monkeypatch, task, files, extra):
    data = write(tmp_path / "d", files)
    trainer = _trainer(tmp_path, f"task={task}", "model=tiny-bert", f"task.data_dir={data}", "prompt=none",
                       "trainer.eval_batch_size=2", *extra)
    sorted_outputs, reference = _check_sorted_evaluation(trainer, monkeypatch, exact_outputs=False)
    if task == "squad_v2":  # (start candidates, end candidates, null score) of each window: the candidates that
        for a, b in zip(sorted_outputs, reference):  # are tokens, not padding (masked to the lowest float)
            for k in (0, 1):
                real = [[(i, v) for i, v in x[k] if v > -1e30] for x in (a, b)]
                assert [i for i, _ in real[0]] == [i for i, _ in real[1]]
                assert [v for _, v in real[0]] == pytest.approx([v for _, v in real[1]], abs=1e-5)
            assert a[2] == pytest.approx(b[2], abs=1e-5)
    elif task == "record":
        assert sorted_outputs == pytest.approx(reference, abs=1e-5)
    else:
        assert sorted_outputs == reference


def test_sorted_evaluation_under_ddp_shards_gathers_in_input_order(tmp_path, monkeypatch):
    """Each of two ranks sorts its own shard; the gathered outputs are in input order (ranks simulated)."""
    trainer = _trainer(tmp_path, "model=tiny-bert", "trainer.eval_batch_size=8", "task.max_eval_samples=70")
    kind = trainer.kind  # outputs that differ per row: the logits
    monkeypatch.setattr(kind, "predict", lambda model, batch, task, seq2seq: model(batch)["logits"].tolist())
    reference = _file_order_outputs(trainer, trainer.eval_set, 8)
    shards = []
    monkeypatch.setattr(kind, "score", lambda task, feats, outputs, seq2seq: shards.append(outputs) or {"accuracy": 0})
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "gather_lists", lambda items: items)  # each rank's own list: joined below
    for rank in (0, 1):
        monkeypatch.setattr(dist, "rank", lambda r=rank: r)
        trainer.evaluate()
    assert len(shards[0]) == 35 and len({tuple(x) for x in reference}) == 70
    assert torch.tensor(shards[0] + shards[1]) == pytest.approx(torch.tensor(reference), abs=1e-5)
