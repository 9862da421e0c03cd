"""Vocabulary: special tokens first, then the most frequent tokens. Saved as JSON."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import UlmfitError
from ..io import read_json, write_json
from .special import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID


class Vocab:
    def __init__(self, itos):
        itos = list(itos)
        if itos[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise UlmfitError(f"a vocab must start with the special tokens {SPECIAL_TOKENS}")
        if len(set(itos)) != len(itos):
            raise UlmfitError("a vocab may not hold the same token twice")
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}

    unk_id, pad_id, bos_id, eos_id = UNK_ID, PAD_ID, BOS_ID, EOS_ID

    def __len__(self):
        return len(self.itos)

    def __contains__(self, token):
        return token in self.stoi

    @classmethod
    def from_counts(cls, counts: dict, max_size: int, min_freq: int):
        """The `max_size` most frequent tokens with count >= min_freq (ties broken by token text),
        after the specials. `max_size` does not count the special tokens."""
        cands = [(c, t) for t, c in counts.items() if c >= min_freq and t not in SPECIAL_TOKENS]
        cands.sort(key=lambda x: (-x[0], x[1]))
        return cls(SPECIAL_TOKENS + [t for _, t in cands[:max_size]])

    def numericalize(self, tokens):
        get, unk = self.stoi.get, UNK_ID
        return np.array([get(t, unk) for t in tokens], dtype=np.int64)

    def textify(self, ids, sep=" "):
        return sep.join(self.itos[int(i)] for i in ids)

    @property
    def dtype(self):
        """The smallest id dtype for a flat token array of this vocab."""
        return np.uint16 if len(self) <= np.iinfo(np.uint16).max + 1 else np.int32

    @property
    def hash(self):
        return hashlib.sha256(json.dumps(self.itos, ensure_ascii=False).encode()).hexdigest()[:16]

    def save(self, path):
        write_json(path, {"itos": self.itos}, indent=None)

    @classmethod
    def load(cls, path):
        data = read_json(path)
        return cls(data["itos"] if isinstance(data, dict) else data)
