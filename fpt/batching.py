"""Batching: features, padding a batch (`collate`), which examples each training step takes (`BatchStream`,
`GroupedBatchStream`) and length-sorted batches for evaluation (`map_sorted`).

Training batches are a pure function of (seed, step): a run resumed at any step draws exactly the batches an
uninterrupted run draws. `trainer.group_by_length` (GroupedBatchStream) reorders the same stream of examples
into batches of similar length, so less of every batch is padding. Evaluation always runs in length-sorted
batches and puts the outputs back in input order: only the padding changes, not what is predicted.

torch is imported where used: task kinds import `Features` from here before any model is needed.
"""
from __future__ import annotations

import os
import random
from typing import Callable, Sequence

PAD_MINUS_100 = ("labels", "tag_ids")  # targets the loss ignores at padding
# FPT_EVAL_ORDER=file: evaluation batches in input order instead of length-sorted (benchmarks/group_by_length.py
# times fpt before length-sorted evaluation with it); only the padding of the batches differs
EVAL_ORDER_ENV = "FPT_EVAL_ORDER"
GROUP_CHUNK_STEPS = 50  # GroupedBatchStream: consecutive steps whose examples are sorted by length together


# --------------------------------------------------------------------------- features and padding
class Features:
    """Tokenized examples (dicts of lists/ints, padded later by `collate`), plus what scoring needs:
    `meta[i]` belongs to feature i (e.g. its reference), `examples` to whole rows (span QA)."""

    def __init__(self, items: list[dict], meta: list | None = None, examples: list | None = None):
        self.items, self.meta, self.examples = items, meta if meta is not None else [None] * len(items), examples

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _pad(values: list[list], fill: int) -> list[list]:
    width = max(len(v) for v in values)
    return [v + [fill] * (width - len(v)) for v in values]


def collate(batch: list[dict], pad_id: int) -> dict:
    """Pad to the longest example in the batch; seq2seq targets and tag ids are padded with -100.

    Multiple-choice features hold one token list per choice: they become B*C rows (choices padded with
    dummy rows) and "choice_mask" [B, C] marks the real ones.
    """
    import torch  # lazy: task kinds import Features from here in the start-up checks, before torch is needed
    out = {}
    for key in batch[0]:
        values = [ex[key] for ex in batch]
        fill = -100 if key in PAD_MINUS_100 else (pad_id if key == "input_ids" else 0)
        if isinstance(values[0], list) and values[0] and isinstance(values[0][0], list):
            choices = max(len(v) for v in values)
            dummy = [1] if key == "attention_mask" else [fill]  # a dummy row sees one token: no all-masked rows
            flat = [c for v in values for c in v + [dummy] * (choices - len(v))]
            out[key] = torch.tensor(_pad(flat, fill))
            out["choice_mask"] = torch.tensor([[c < len(v) for c in range(choices)] for v in values])
        elif isinstance(values[0], list):
            out[key] = torch.tensor(_pad(values, fill))
        else:
            out[key] = torch.tensor(values)
    return out


def _tokens(value) -> int:
    """The padded width a token list (or a multiple-choice list of token lists: its longest) needs."""
    if value and isinstance(value[0], list):
        return max(len(v) for v in value)
    return len(value)


def feature_length(item: dict) -> tuple[int, int]:
    """What padding a feature needs: (input tokens, target tokens); the target is 0 without `labels` tokens
    (BERT heads). Sorting by this tuple groups inputs of one length, then targets of one length (T5)."""
    labels = item.get("labels")
    return _tokens(item["input_ids"]), _tokens(labels) if isinstance(labels, list) else 0


# --------------------------------------------------------------------------- training batches
class BatchStream:
    """Example indices for step s, the same whatever happened before: epoch e is a permutation
    seeded by (seed, e), and step s takes the global examples [s*B, (s+1)*B) of that endless stream."""

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = num_examples, batch_size, seed
        self._epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            import torch  # lazy, as in collate
            g = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g).tolist()
        return self._perm

    def positions(self, first: int, stop: int) -> list[int]:
        """Example indices at positions [first, stop) of the endless stream."""
        return [self._permutation(k // self.n)[k % self.n] for k in range(first, stop)]

    def indices(self, step: int) -> list[int]:
        return self.positions(step * self.batch_size, (step + 1) * self.batch_size)


class GroupedBatchStream(BatchStream):
    """BatchStream's examples, regrouped into batches of similar length (trainer.group_by_length).

    The run's steps [start, end) are cut into chunks of GROUP_CHUNK_STEPS consecutive steps, starting anew at
    the run's first step and at every epoch's first step (step s belongs to epoch s*B // n, as for the LR
    schedule), the last chunk of an epoch or of the run being shorter. A chunk's examples, exactly those
    BatchStream gives its steps, are sorted by `feature_length` (ties: stream position), cut into the chunk's
    batches, and the batches are dealt to the chunk's steps in an order shuffled by (seed, chunk's first step).
    So the batches of step s are a pure function of (seed, s, start, end), every epoch (and the whole run)
    trains on exactly the examples BatchStream gives it, and within a batch the examples go from short to long
    (DDP ranks and grad_accum micro-batches take contiguous slices: each of them is homogeneous too).
    """

    def __init__(self, lengths: Sequence, batch_size: int, seed: int, start: int = 0, end: int | None = None,
                 chunk_steps: int = GROUP_CHUNK_STEPS):
        super().__init__(len(lengths), batch_size, seed)
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps={chunk_steps}: expected at least 1")
        self.lengths, self.start, self.end, self.chunk_steps = list(lengths), start, end, chunk_steps
        self._chunk, self._batches = None, None

    def chunk(self, step: int) -> tuple[int, int]:
        """The steps [first, stop) of the chunk that holds `step`."""
        if step < self.start or (self.end is not None and step >= self.end):
            raise ValueError(f"step {step} is outside this run's steps [{self.start}, {self.end})")
        b, n = self.batch_size, self.n
        epoch = step * b // n
        lo = max(-(-epoch * n // b), self.start)  # the epoch's first step: ceil(epoch * n / b)
        hi = -(-(epoch + 1) * n // b)
        if self.end is not None:
            hi = min(hi, self.end)
        first = lo + (step - lo) // self.chunk_steps * self.chunk_steps
        return first, min(first + self.chunk_steps, hi)

    def _chunk_batches(self, first: int, stop: int) -> list[list[int]]:
        b = self.batch_size
        found = self.positions(first * b, stop * b)
        order = sorted(range(len(found)), key=lambda k: (self.lengths[found[k]], k))
        batches = [[found[k] for k in order[j * b:(j + 1) * b]] for j in range(stop - first)]
        random.Random(f"fpt-group:{self.seed}:{first}").shuffle(batches)
        return batches

    def indices(self, step: int) -> list[int]:
        first, stop = self.chunk(step)
        if self._chunk != first:
            self._chunk, self._batches = first, self._chunk_batches(first, stop)
        return self._batches[step - first]


def train_stream(features, batch_size: int, seed: int, group_by_length: bool, start: int = 0,
                 end: int | None = None) -> BatchStream:
    """The training batch stream: grouped by length over the run's steps [start, end), or BatchStream's."""
    if group_by_length:
        return GroupedBatchStream([feature_length(features[i]) for i in range(len(features))], batch_size, seed,
                                  start, end)
    return BatchStream(len(features), batch_size, seed)


# --------------------------------------------------------------------------- evaluation batches
def length_order(features, indices: Sequence[int]) -> list[int]:
    """Positions into `indices`, longest feature first (ties: position): the first batch is the biggest, so
    a batch that does not fit in memory fails at once."""
    key = [feature_length(features[i]) for i in indices]
    return sorted(range(len(indices)), key=lambda k: (tuple(-x for x in key[k]), k))


def map_sorted(fn: Callable[[dict], list], features, indices: Sequence[int], batch_size: int, pad_id: int,
               device=None) -> list:
    """`fn(batch)` (one output per row) over length-sorted batches of the features at `indices`; the outputs
    come back in the order of `indices`. A batch's rows are padded to its longest row only."""
    indices = list(indices)
    in_file_order = os.environ.get(EVAL_ORDER_ENV) == "file"
    order = list(range(len(indices))) if in_file_order else length_order(features, indices)
    out: list = [None] * len(indices)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = collate([features[indices[k]] for k in rows], pad_id)
        if device is not None:
            batch = {key: v.to(device) for key, v in batch.items()}
        results = list(fn(batch))
        if len(results) != len(rows):
            raise RuntimeError(f"{len(results)} outputs for a batch of {len(rows)} features: a task kind's predict "
                               f"must return one output per feature")
        for k, result in zip(rows, results):
            out[k] = result
    return out
