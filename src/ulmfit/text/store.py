"""The token store: what `ulmfit tokenize` writes and every later stage reads.

A prepared dataset folder DIR holds

    dataset.json            manifest of `ulmfit prepare`: classes, splits, counts, sources
    documents.jsonl         one JSON object per document: {"id", "split", "text", "label"}
    labels.npy              int64 class index per document, -1 when unlabelled; multi-label datasets:
                            multi-hot rows [n_docs, n_classes], all -1 when unlabelled
    splits/NAME.npy         int64 document indices of each split (train, test, lm_train, lm_valid, ...)
    tokens/                 written by `ulmfit tokenize`
        manifest.json       tokenizer settings, vocab hash, counts, fingerprint of the inputs
        vocab.json          {"itos": [...]}: special tokens first
        ids.npy             all documents' token ids end to end (uint16 if the vocab fits, else int32)
        offsets.npy         int64 [n_docs + 1]: document d is ids[offsets[d]:offsets[d + 1]]

Every document's ids begin with the bos id. The arrays load memory-mapped; batching is slicing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UlmfitError
from ..io import load_npy, read_json, save_npy, write_json
from .vocab import Vocab

DATASET_FORMAT = "ulmfit-dataset"
TOKENS_DIR = "tokens"


def labelled(labels) -> np.ndarray:
    """Which documents carry a label: class index >= 0, or (multi-label) a multi-hot row rather than -1s."""
    labels = np.asarray(labels)
    return (labels[:, 0] if labels.ndim == 2 else labels) >= 0


class Split:
    """A named subset of a store's documents, in split order."""

    def __init__(self, store: "TokenStore", name: str, index: np.ndarray, labels: np.ndarray | None = None):
        """labels: the documents' labels if not the store's (pseudo-labels of self-training)."""
        self.store, self.name = store, name
        self.index = np.asarray(index, dtype=np.int64)
        self.starts = store.offsets[:-1][self.index]
        self.lengths = store.offsets[1:][self.index] - self.starts
        if labels is not None:
            self.labels = np.asarray(labels, dtype=np.int64)
        else:
            self.labels = store.labels[self.index] if store.labels is not None else np.full(len(self.index), -1)

    def __len__(self):
        return len(self.index)

    @property
    def ids(self):
        """The store's flat id array (all documents); slice it with `starts` and `lengths`."""
        return self.store.ids

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def doc(self, i: int) -> np.ndarray:
        s = int(self.starts[i])
        return self.store.ids[s : s + int(self.lengths[i])]

    def stream(self) -> np.ndarray:
        """All documents of the split end to end, as one contiguous array (the LM's input)."""
        ids = self.store.ids
        if len(self.index) and np.all(np.diff(self.index) == 1):
            return ids[self.starts[0] : self.starts[0] + self.n_tokens]
        out = np.empty(self.n_tokens, dtype=ids.dtype)
        pos = 0
        for s, n in zip(self.starts.tolist(), self.lengths.tolist()):
            out[pos : pos + n] = ids[s : s + n]
            pos += n
        return out


class TokenStore:
    """Read access to a tokenized dataset folder (see the module docstring for the layout)."""

    def __init__(self, root):
        self.root = Path(root)
        tok = self.root / TOKENS_DIR
        if not (tok / "manifest.json").exists():
            raise UlmfitError(f"{self.root} has no token store: run `ulmfit tokenize {self.root}` first")
        self.dataset = read_json(self.root / "dataset.json")
        self.manifest = read_json(tok / "manifest.json")
        made_from = (self.manifest.get("key") or {}).get("dataset")
        if made_from is not None and self.dataset.get("fingerprint") not in (None, made_from):
            # `prepare` ran again after `tokenize`: these ids belong to other documents than dataset.json's
            raise UlmfitError(
                f"{tok}: the token store was made from another version of {self.root} (prepared "
                f"again since); run `ulmfit tokenize {self.root}` again"
            )
        self.vocab = Vocab.load(tok / "vocab.json")
        self.ids = load_npy(tok / "ids.npy")
        self.offsets = np.asarray(load_npy(tok / "offsets.npy", mmap=False), dtype=np.int64)
        labels = self.root / "labels.npy"
        self.labels = np.asarray(np.load(labels), dtype=np.int64) if labels.exists() else None
        self._splits = {}

    open = classmethod(lambda cls, root: cls(root))

    @property
    def classes(self):
        return self.dataset.get("classes")

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def split_names(self):
        return sorted(p.stem for p in (self.root / "splits").glob("*.npy"))

    @property
    def tokenizer_settings(self) -> dict:
        return self.manifest["tokenizer"]

    def has_split(self, name) -> bool:
        return (self.root / "splits" / f"{name}.npy").exists()

    def split(self, name: str) -> Split:
        if name not in self._splits:
            path = self.root / "splits" / f"{name}.npy"
            if not path.exists():
                raise UlmfitError(f"{self.root} has no split {name!r} (it has: {', '.join(self.split_names)})")
            self._splits[name] = Split(self, name, np.load(path))
        return self._splits[name]


def write_splits(root, splits: dict):
    for name, index in splits.items():
        save_npy(Path(root) / "splits" / f"{name}.npy", np.asarray(index, dtype=np.int64))


def write_store(root, docs, itos, labels=None, classes=None, splits=None, tokenizer=None) -> TokenStore:
    """Write a complete store from already-numericalized documents (lists/arrays of ids).

    For tests and synthetic data; `ulmfit prepare` + `ulmfit tokenize` write the same layout from text.
    `splits` maps split names to document indices (default: everything in `train`).
    """
    import json

    root = Path(root)
    vocab = Vocab(itos)
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs]) if docs else np.zeros(0, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= len(vocab)):
        raise UlmfitError("document ids out of the vocab's range")
    labels_arr = np.full(len(docs), -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    splits = splits if splits is not None else {"train": np.arange(len(docs))}
    write_splits(root, splits)
    save_npy(root / "labels.npy", labels_arr)
    with open(root / "documents.jsonl", "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            lab = classes[labels_arr[i]] if classes is not None and labels_arr[i] >= 0 else None
            f.write(json.dumps({"id": str(i), "split": None, "text": vocab.textify(d[1:]), "label": lab}) + "\n")
    write_json(
        root / "dataset.json",
        {
            "format": DATASET_FORMAT,
            "version": 1,
            "kind": "synthetic",
            "classes": classes,
            "n_docs": len(docs),
            "splits": {k: int(len(v)) for k, v in splits.items()},
        },
    )
    tok = root / TOKENS_DIR
    save_npy(tok / "ids.npy", ids.astype(vocab.dtype))
    save_npy(tok / "offsets.npy", offsets)
    vocab.save(tok / "vocab.json")
    write_json(
        tok / "manifest.json",
        {
            "tokenizer": tokenizer or {"backend": "pretokenized"},
            "vocab_size": len(vocab),
            "vocab_hash": vocab.hash,
            "n_docs": len(docs),
            "n_tokens": int(ids.size),
            "dtype": str(vocab.dtype.__name__),
        },
    )
    return TokenStore(root)
