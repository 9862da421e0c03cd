"""Language-model batches: contiguous streams cut from the flat id array (documents: `documents.py`).

Language model batches (`LMBatches`)
------------------------------------
The flat id stream (all documents end to end) is cut into `bs` equal contiguous rows; batch after
batch walks along the rows, so row r of batch i+1 continues row r of batch i and the model's hidden
state can be carried across batches. Each batch is x = ids[:, p:p+seq] and y = ids[:, p+1:p+seq+1].

The sequence length varies per batch as in AWD-LSTM: bptt with probability 0.95, else bptt/2, then
drawn from N(that, 5), at least `MIN_SEQ`, at most bptt + `MAX_EXTRA` (so memory stays bounded).
For training, each epoch also starts the stream at a random offset (the stream is read cyclically),
so the rows cut the text at different places every epoch. Both are drawn from a generator seeded
by (seed, epoch): an epoch is reproducible, and `iterate(epoch, start=k)` resumes at batch k without
touching the earlier ones. Nothing is copied: each batch is one fancy index into the (memory-mapped)
stream, and `backwards=True` reads it reversed by index arithmetic.
"""

from __future__ import annotations

import numpy as np

from ..errors import UlmfitError

MIN_SEQ = 5  # shortest LM sequence; a shorter tail is merged into the batch before it
MAX_EXTRA = 25  # a sequence is at most bptt + 5 standard deviations long


class LMBatches:
    """Language-model batches over a flat id stream: see the module docstring.

    `stream`: 1-D integer array (e.g. `TokenStore.split("lm_train").stream()`, may be a memmap).
    `variable`: variable sequence lengths (training); False gives fixed `bptt` (validation).
    `shuffle`: a random start offset per epoch (training); False always starts at token 0.
    """

    def __init__(self, stream, bs: int, bptt: int, backwards=False, seed=0, variable=True, shuffle=None):
        self.stream = stream
        self.bs, self.bptt = int(bs), int(bptt)
        self.backwards, self.seed, self.variable = bool(backwards), int(seed), bool(variable)
        self.shuffle = self.variable if shuffle is None else bool(shuffle)
        self.n_tokens = len(stream)
        if self.bs < 1 or self.bptt < 1:
            raise UlmfitError(f"batch size and bptt must be positive (got bs={bs}, bptt={bptt})")
        # Each row holds `row_len` inputs and one more token for the last target.
        self.row_len = (self.n_tokens - 1) // self.bs
        if self.row_len < 1:
            raise UlmfitError(f"a stream of {self.n_tokens} tokens is too short for {self.bs} rows (batch size)")

    def _rng(self, epoch):
        return np.random.default_rng([self.seed, int(epoch), 0x4C4D])

    def _plan(self, epoch):
        """(start offset, sequence lengths) of an epoch, from (seed, epoch) only."""
        rng = self._rng(epoch)
        offset = int(rng.integers(self.n_tokens)) if self.shuffle else 0
        if not self.variable:
            n_full, rest = divmod(self.row_len, self.bptt)
            lens = [self.bptt] * n_full + ([rest] if rest else [])
        else:
            # Draw in chunks: generously more than needed, then cut at the row length.
            lens, total = [], 0
            while total < self.row_len:
                k = max(16, 2 * (self.row_len - total) // max(1, self.bptt // 2) + 1)
                base = np.where(rng.random(k) < 0.95, self.bptt, self.bptt / 2)
                seq = np.clip(rng.normal(base, 5).astype(np.int64), MIN_SEQ, self.bptt + MAX_EXTRA)
                for s in seq.tolist():
                    lens.append(s)
                    total += s
                    if total >= self.row_len:
                        break
            lens[-1] -= total - self.row_len  # the last one ends exactly at the row's end
        if len(lens) > 1 and lens[-1] < MIN_SEQ:  # too short a tail joins the sequence before it
            tail = lens.pop()  # (not `lens[-2] += lens.pop()`: the target index is taken before the pop)
            lens[-1] += tail
        return offset, np.asarray(lens, dtype=np.int64)

    def seq_lens(self, epoch) -> np.ndarray:
        return self._plan(epoch)[1]

    def n_batches(self, epoch) -> int:
        return len(self.seq_lens(epoch))

    def __len__(self):
        """Approximate number of batches per epoch (exact: `n_batches(epoch)`)."""
        return max(1, round(self.row_len / self.bptt))

    def epoch(self, epoch: int) -> "LMEpoch":
        return LMEpoch(self, epoch)

    def iterate(self, epoch: int, start: int = 0):
        """Yield the epoch's batches (x, y), LongTensors [bs, seq], from batch `start` on."""
        import torch

        offset, lens = self._plan(epoch)
        positions = np.concatenate([[0], np.cumsum(lens)])
        row_starts = (np.arange(self.bs, dtype=np.int64) * self.row_len + offset)[:, None]
        n = self.n_tokens
        for i in range(int(start), len(lens)):
            idx = (row_starts + positions[i] + np.arange(lens[i] + 1)) % n
            if self.backwards:
                idx = n - 1 - idx
            block = torch.from_numpy(np.asarray(self.stream[idx], dtype=np.int64))
            yield block[:, :-1], block[:, 1:]


class LMEpoch:
    """One epoch of `LMBatches`: a sized iterable (exact length) that can start at any batch."""

    def __init__(self, batches: LMBatches, epoch: int):
        self.batches, self.index = batches, int(epoch)
        self._len = batches.n_batches(epoch)

    def __len__(self):
        return self._len

    def __iter__(self):
        return self.batches.iterate(self.index)

    def iterate(self, start=0):
        return self.batches.iterate(self.index, start)
