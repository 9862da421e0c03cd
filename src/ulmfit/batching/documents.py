"""Classifier batches: labelled documents straight from the token store, sorted by length, right-padded.

Documents are right-padded (padding at the end) so that a causal LSTM's outputs at a document's
real positions never see padding; the model pools only over each document's own positions, which
makes a document's result independent of the batch it is in.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UlmfitError
from ..text.special import EOS_ID, PAD_ID
from ..text.store import labelled

# The seed of every fixed random subset of documents (--limit-*, the classifier's hold-out, evaluate's limit):
# independent of the training seed, so that changing that seed does not change what is trained or measured on,
# and the same everywhere, so that the classifier and its baseline see the same documents.
SUBSET_SEED = 1234


def sort_order(lengths) -> np.ndarray:
    """Indices longest first (stable), for evaluation: batches of similar lengths, least padding."""
    lengths = np.asarray(lengths)
    return np.argsort(-lengths, kind="stable")


def sortish_batches(lengths, bs: int, rng: np.random.Generator, chunk_mult: int = 50) -> list:
    """Training batches: shuffle, sort inside chunks of `chunk_mult * bs` documents, cut into batches,
    shuffle the batches but put the one holding the longest document first (an out-of-memory error
    then shows at the first step, not hours in)."""
    lengths = np.asarray(lengths)
    n = len(lengths)
    if n == 0:
        return []
    idx = rng.permutation(n)
    chunk = chunk_mult * bs
    parts = []
    for s in range(0, n, chunk):
        c = idx[s : s + chunk]
        parts.append(c[np.argsort(-lengths[c], kind="stable")])
    idx = np.concatenate(parts)
    batches = [idx[s : s + bs] for s in range(0, n, bs)]
    longest = int(np.argmax([lengths[b].max() for b in batches]))
    batches[0], batches[longest] = batches[longest], batches[0]
    rest = batches[1:]
    order = rng.permutation(len(rest))
    return [batches[0]] + [rest[i] for i in order]


def sorted_batches(lengths, bs: int) -> list:
    idx = sort_order(lengths)
    return [idx[s : s + bs] for s in range(0, len(idx), bs)]


def pad_collate(
    docs, pad_id: int = PAD_ID, eos_id: int | None = None, backwards: bool = False, max_tokens: int | None = None
):
    """List of 1-D id arrays -> (ids LongTensor [bs, T] right-padded, lengths LongTensor [bs]).

    `eos_id` appends an end token; `backwards` reverses each document's own tokens (padding stays at
    the end), so a backward model reads `... c b a xxbos`, the order the backward LM was trained on.
    `max_tokens` keeps only each document's last tokens (for callers that bound memory themselves).
    """
    lens = [len(d) + (eos_id is not None) for d in docs]
    if max_tokens is not None:
        lens = [min(n, max_tokens) for n in lens]
    T = max(lens) if lens else 0
    out = np.full((len(docs), max(T, 1)), pad_id, dtype=np.int64)
    for i, (d, n) in enumerate(zip(docs, lens)):
        d = np.asarray(d, dtype=np.int64)
        if eos_id is not None:
            d = np.append(d, eos_id)
        d = d[len(d) - n :]
        if backwards:
            d = d[::-1]
        out[i, :n] = d
    return torch.from_numpy(out), torch.tensor(lens, dtype=torch.long)


def limit_docs(keep: np.ndarray, limit: int | None) -> np.ndarray:
    """A fixed random `limit` of the positions `keep` (not the first N: splits are often ordered by class),
    the same every epoch and for every caller (the classifier and its baseline see the same documents)."""
    if limit is None or limit >= len(keep):
        return keep
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(keep)[:limit])


class ClassifierBatches:
    """A sized, re-iterable sequence of (ids, lengths, labels) batches over one split.

    `shuffle=True` uses the sortish order, reproducible from `seed`; otherwise longest first. `docs`
    restricts the split to these document indices (a held-out part of it, say) before `limit`.
    Labels are int64 class indices ([bs]), or float multi-hot rows ([bs, n_classes]) for multi-label.
    """

    def __init__(
        self,
        split,
        bs: int,
        shuffle: bool = False,
        seed: int = 0,
        pad_id: int = PAD_ID,
        add_eos: bool = False,
        backwards: bool = False,
        limit: int | None = None,
        chunk_mult: int = 50,
        docs=None,
    ):
        if bs < 1:
            raise UlmfitError(f"batch size must be at least 1 (got {bs})")
        self.split, self.bs, self.pad_id = split, bs, pad_id
        self.eos_id = EOS_ID if add_eos else None
        self.backwards = backwards
        labels = np.asarray(split.labels)
        self.multi_label = labels.ndim == 2
        keep = np.arange(len(split)) if docs is None else np.asarray(docs, dtype=np.int64)
        # Unlabelled documents (IMDb's unsup; multi-label rows of -1) are not classifier data.
        keep = limit_docs(keep[labelled(labels[keep])], limit)
        self.keep = keep
        self.starts = np.asarray(split.starts)[keep]
        self.lengths = np.asarray(split.lengths)[keep]
        self.labels = labels[keep]
        if shuffle:
            self.batches = sortish_batches(self.lengths, bs, np.random.default_rng(seed), chunk_mult)
            # BatchNorm cannot train on a batch of one document: leave out such a leftover batch.
            self.batches = [b for b in self.batches if len(b) > 1] or self.batches
        else:
            self.batches = sorted_batches(self.lengths, bs)

    def __len__(self):
        return len(self.batches)

    @property
    def n_docs(self):
        return len(self.keep)

    def batch(self, idx):
        ids = self.split.ids
        docs = [ids[s : s + n] for s, n in zip(self.starts[idx].tolist(), self.lengths[idx].tolist())]
        x, lengths = pad_collate(docs, self.pad_id, self.eos_id, self.backwards)
        y = self.labels[idx]
        y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32 if self.multi_label else np.int64))
        return x, lengths, y

    def __iter__(self):
        for idx in self.batches:
            yield self.batch(idx)
