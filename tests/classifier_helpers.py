"""Shared helpers for the classifier tests: a stand-in encoder, tiny real models and a learnable store."""

import numpy as np
import torch
from torch import nn

from ulmfit.text.special import BOS_ID, SPECIAL_TOKENS

import pytest

# Tiny models run fastest on one thread, and the test machine is shared: several threads spin-wait
# against other processes and can be 100x slower. Commands under test may change the thread count
# (`--threads`, all cores by default), so every classifier test starts from one thread again.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


class StandInEncoder(nn.Module):
    """Follows the encoder contract `raw, out, state = enc(ids, state, embedded=None)`, `enc.embed(ids)` with
    plain nn.LSTMs."""

    def __init__(self, vocab_size=40, emb=8, hidden=12, n_layers=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb, padding_idx=1)
        sizes = [emb] + [hidden] * (n_layers - 1) + [emb]
        self.rnns = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes[:-1], sizes[1:]))

    def embed(self, ids):
        return self.embedding(ids)

    def forward(self, ids, state=None, embedded=None):
        x = self.embed(ids) if embedded is None else embedded
        new = []
        for k, rnn in enumerate(self.rnns):
            x, (h, c) = rnn(x, None if state is None else state[k])
            new.append((h, c))
        return x, x, new

    def param_groups(self):
        return [[self.embedding.weight]] + [list(r.parameters()) for r in self.rnns]


def train_tiny_classifier(root, n_docs, n_test):
    """A tiny classifier trained on a synthetic store: root/data and root/clas (shared by modules' fixtures)."""
    import ulmfit
    from ulmfit.settings import TrainClassifierSettings

    synthetic_store(root / "data", n_docs=n_docs, n_test=n_test)
    ulmfit.train_classifier(root / "data", root / "clas", settings=TrainClassifierSettings(
        preset="tiny", stages="all:1:1e-2", bs=16, threads=1, quiet=True))
    return root


def edit_json(path, **changes):
    """Set dotted keys of a JSON file (`**{"classifier.threshold": "high"}`): a damaged folder for a test."""
    import json

    d = json.loads(path.read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = d
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(json.dumps(d))


def tiny_classifier(vocab_size=40, n_classes=2, bptt=7, max_len=20, n_layers=3, seed=0, arch="awd_lstm", **kw):
    """A real classifier of the tiny preset (3 layers: groups emb, rnn1-3, head); AWD-LSTM unless `arch`."""
    from ulmfit.models.classifier import ClassifierSettings, build_classifier
    from ulmfit.models.config import preset

    torch.manual_seed(seed)
    mcfg = preset("tiny", vocab_size=vocab_size, n_layers=n_layers, drop_mult=kw.pop("drop_mult", 1.0), arch=arch)
    settings = ClassifierSettings(classes=[f"c{i}" for i in range(n_classes)], bptt=bptt, max_len=max_len, **kw)
    return build_classifier(mcfg, settings)


def synthetic_docs(n_docs=200, n_words=20, seed=0, min_len=5, max_len=40):
    """Two classes: class 1 documents contain the word `w0` somewhere, class 0 ones `w1`; the rest is noise."""
    rng = np.random.default_rng(seed)
    itos = SPECIAL_TOKENS + [f"w{i}" for i in range(n_words)]
    base = len(SPECIAL_TOKENS)
    docs, labels = [], []
    for _ in range(n_docs):
        y = int(rng.integers(2))
        n = int(rng.integers(min_len, max_len))
        body = rng.integers(base + 2, base + n_words, size=n)
        body[rng.integers(n)] = base + (0 if y else 1)
        docs.append([BOS_ID] + body.tolist())
        labels.append(y)
    return docs, labels, itos


def synthetic_store(root, n_docs=400, n_test=100, seed=0, max_len=60):
    """A tokenized labelled dataset whose tokenizer settings a TextEncoder can rebuild (spaCy keeps `w12` whole)."""
    from ulmfit.text.pipeline import tokenizer_settings
    from ulmfit.text.store import write_store

    docs, labels, itos = synthetic_docs(n_docs, seed=seed, max_len=max_len)
    n_train = n_docs - n_test
    return write_store(root, docs, itos, labels=labels, classes=["neg", "pos"],
                       splits={"train": range(n_train), "test": range(n_train, n_docs)},
                       tokenizer=tokenizer_settings("spacy"))
