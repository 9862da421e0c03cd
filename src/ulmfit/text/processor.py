"""Documents -> token ids: the cleaning rules and a tokenizer backend, cached per distinct chunk.

The hot path of `ulmfit tokenize` and of prediction. A document is fix_html-ed as a whole and cut at
whitespace; every chunk not seen before goes through the chunk rules and the tokenizer (all misses
of a batch in one tokenizer call); after that a chunk is one dict look-up. Word repeats are marked on
the id array at the end.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

from .rules import CHUNK_RULES, fix_html, mark_word_repeats
from .special import BOS, FLD, WREP


class TextProcessor:
    """`token_id(str) -> int` decides what ids mean: a growing local table while a vocab is being
    built, or a fixed vocab's look-up (unknown -> unk id) afterwards."""

    def __init__(self, tokenizer, token_id, max_cache=1_000_000):
        self.tokenizer = tokenizer
        self.token_id = token_id
        self.max_cache = max_cache
        self.cache: dict[str, tuple] = {}
        self.bos, self.fld, self.wrep = token_id(BOS), token_id(FLD), token_id(WREP)
        self._numbers: dict[int, int] = {}

    def number_id(self, n: int) -> int:
        i = self._numbers.get(n)
        if i is None:
            i = self._numbers[n] = self.token_id(str(n))
        return i

    def _fill(self, misses):
        pieces, owners = [], []
        for c in misses:
            for rule in CHUNK_RULES:
                c = rule(c)
            sub = c.split()
            pieces.extend(sub)
            owners.append(len(sub))
        toks = self.tokenizer.tokenize_chunks(pieces)
        tid, pos, cache = self.token_id, 0, self.cache
        for c, k in zip(misses, owners):
            cache[c] = tuple(tid(t) for tt in toks[pos : pos + k] for t in tt)
            pos += k

    def encode_batch(self, docs):
        """docs: list of str or list of fields -> (flat int32 ids of all docs, int64 lengths)."""
        chunks, n_chunks = [], []
        for d in docs:
            start = len(chunks)
            # The markers go through the cache like words: "xxbos" tokenizes to itself.
            chunks.append(BOS)
            if isinstance(d, str):
                chunks.extend(fix_html(d).split())
            else:
                for i, f in enumerate(d, 1):
                    if len(d) > 1:
                        chunks.append(FLD)
                        chunks.append(str(i))
                    chunks.extend(fix_html(f).split())
            n_chunks.append(len(chunks) - start)
        if len(self.cache) > self.max_cache:
            self.cache.clear()  # bound memory on huge corpora; the cost is re-tokenizing some chunks
        misses = set(chunks).difference(self.cache)  # the loops below run in C, not per token in Python
        if misses:
            self._fill(list(misses))
        per_chunk = list(map(self.cache.__getitem__, chunks))
        flat = np.fromiter(chain.from_iterable(per_chunk), dtype=np.int32)
        chunk_len = np.fromiter(map(len, per_chunk), dtype=np.int64, count=len(per_chunk))
        starts = np.concatenate([[0], np.cumsum(n_chunks)[:-1]]).astype(np.int64)
        lengths = np.add.reduceat(chunk_len, starts) if len(chunks) else np.zeros(0, np.int64)
        flat, dropped = mark_word_repeats(flat, self.wrep, self.number_id)
        if len(dropped):
            doc_of = np.searchsorted(np.cumsum(lengths), dropped, side="right")
            lengths -= np.bincount(doc_of, minlength=len(lengths))
        return flat, lengths

    def encode(self, docs):
        """docs -> list of int64 id arrays, one per document (none for none: np.split would give one)."""
        if not len(docs):
            return []
        flat, lengths = self.encode_batch(docs)
        return [a.astype(np.int64) for a in np.split(flat, np.cumsum(lengths)[:-1])]


class TokenTable:
    """A growing token -> id table (ids in first-seen order), used while counting a corpus."""

    def __init__(self, initial=()):
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(initial)}
        self.new: list[str] = []  # tokens added since the last take_new(), `initial` not included

    def __call__(self, token: str) -> int:
        i = self.stoi.get(token)
        if i is None:
            i = self.stoi[token] = len(self.stoi)
            self.new.append(token)
        return i

    def take_new(self) -> list[str]:
        new, self.new = self.new, []
        return new
