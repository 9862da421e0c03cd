"""The cheap bag-of-words peers every ULMFiT claim is measured against, on the same split, in seconds:

- tfidf_lr: TF-IDF (1-2 grams, sublinear tf, min_df 2) + logistic regression (C=4): ulmfit's own baseline
  (`ulmfit baseline`, the same settings as ulmfit.baseline);
- nbsvm: NB-SVM (Wang & Manning 2012): binarized uni+bigram counts scaled by the naive-Bayes log-count ratio,
  then a linear model per class (one-vs-rest, logistic loss, C=4: the "NBSVM-LR" variant fast.ai teaches);
- fasttext: fastText-style (Joulin et al. 2016): the mean of word and hashed-bigram embeddings (dim 100, 2M
  buckets) into a linear softmax, trained with SGD for 25 epochs with a linearly decaying lr (0.5 at the start:
  fastText's supervised defaults with -wordNgrams 2 -epoch 25), written here in torch (no fastText package).

Tables: CSV with a header (`--label-col`, `--text-col`: label,text by default), or IMDb's tarball (`--imdb`).
With `--valid-frac F` the models are scored on a held-out share of the training rows instead of the test
split (for tuning: report a test split once). Prints one JSON line.

  PYTHONPATH=src python benchmarks/peers.py --train ../shared/data/trec6/train.csv --test ../shared/data/trec6/test.csv
  PYTHONPATH=src python benchmarks/peers.py --imdb ../shared/data/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

TOKEN = re.compile(r"(?u)\b\w\w+\b|[^\w\s]")  # words, and punctuation marks as tokens (NB-SVM, fastText)


def read_csv(path, label_col, text_col):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [r[text_col] for r in rows], [r[label_col] for r in rows]


def read_imdb(tar):
    from predict_imdb import read_reviews

    out = {}
    for split in ("train", "test"):
        texts, y = read_reviews(tar, split)
        out[split] = ([t.replace("<br />", " ") for t in texts], ["pos" if v else "neg" for v in y])
    return out["train"], out["test"]


def tfidf_lr(train, y, test, seed):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    clf = LogisticRegression(C=4.0, max_iter=1000, random_state=seed)
    clf.fit(vec.fit_transform(train), y)
    return clf.predict(vec.transform(test))


def nbsvm(train, y, test, seed, alpha=1.0, C=4.0):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=None, tokenizer=TOKEN.findall,
                          lowercase=True)
    X, Xt = vec.fit_transform(train), vec.transform(test)
    classes = np.unique(y)
    scores = np.zeros((len(test), len(classes)))
    for k, c in enumerate(classes):
        pos = y == c
        p = alpha + np.asarray(X[pos].sum(0)).ravel()
        q = alpha + np.asarray(X[~pos].sum(0)).ravel()
        r = np.log((p / p.sum()) / (q / q.sum()))
        clf = LogisticRegression(C=C, max_iter=1000, random_state=seed)
        clf.fit(X.multiply(r).tocsr(), pos)
        scores[:, k] = clf.decision_function(Xt.multiply(r).tocsr())
    return classes[scores.argmax(1)]


def fasttext(train, y, test, seed, dim=100, buckets=2_000_000, epochs=25, lr=0.5):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    vocab = {}
    for t in train:
        for w in TOKEN.findall(t.lower()):
            vocab.setdefault(w, len(vocab))

    def features(text):
        words = TOKEN.findall(text.lower())
        ids = [vocab[w] for w in words if w in vocab]
        # hashed bigrams (Python's hash of a str is salted per process: a fixed polynomial hash instead)
        ids += [len(vocab) + (_hash(a + " " + b) % buckets) for a, b in zip(words, words[1:])]
        return ids or [0]

    classes = np.unique(y)
    target = torch.tensor(np.searchsorted(classes, y))
    feats = [features(t) for t in train]
    emb = nn.EmbeddingBag(len(vocab) + buckets, dim, mode="mean", sparse=True)
    nn.init.uniform_(emb.weight, -1.0 / dim, 1.0 / dim)
    out = nn.Linear(dim, len(classes))
    nn.init.zeros_(out.weight), nn.init.zeros_(out.bias)
    opt = torch.optim.SGD(list(emb.parameters()) + list(out.parameters()), lr=lr)
    steps, step, bs = epochs * len(feats), 0, 1  # fastText: one example per update
    rng = np.random.default_rng(seed)
    torch.set_num_threads(1)
    for _ in range(epochs):
        for i in rng.permutation(len(feats)):
            for g in opt.param_groups:
                g["lr"] = lr * (1 - step / steps)
            ids = torch.tensor(feats[i])
            loss = nn.functional.cross_entropy(out(emb(ids, torch.tensor([0]))), target[i : i + bs])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        ft = [features(t) for t in test]
        offsets = torch.tensor(np.cumsum([0] + [len(f) for f in ft[:-1]]))
        logits = out(emb(torch.tensor([i for f in ft for i in f]), offsets))
    return classes[logits.argmax(1).numpy()]


def _hash(s: str) -> int:
    h = 2166136261  # FNV-1a, 32 bits
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


PEERS = {"tfidf_lr": tfidf_lr, "nbsvm": nbsvm, "fasttext": fasttext}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", help="training table (CSV with a header)")
    p.add_argument("--test", help="test table (CSV with a header)")
    p.add_argument("--imdb", help="IMDb's aclImdb tarball instead of --train/--test")
    p.add_argument("--label-col", default="label")
    p.add_argument("--text-col", default="text")
    p.add_argument("--valid-frac", type=float, default=None,
                   help="score on this held-out share of the training rows instead of the test split")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of: {', '.join(PEERS)}")
    p.add_argument("--fasttext-epochs", type=int, default=25)
    p.add_argument("--fasttext-buckets", type=int, default=2_000_000, help="hashed bigram rows (fastText's default)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.imdb:
        (train, y), (test, yt) = read_imdb(a.imdb)
    elif a.train and a.test:
        (train, y), (test, yt) = read_csv(a.train, a.label_col, a.text_col), read_csv(a.test, a.label_col, a.text_col)
    else:
        p.error("give --train and --test, or --imdb")
    y, yt = np.array(y), np.array(yt)
    if a.valid_frac:
        idx = np.random.default_rng(a.seed).permutation(len(train))
        n_va = int(round(a.valid_frac * len(train)))
        va, tr = idx[:n_va], idx[n_va:]
        test, yt = [train[i] for i in va], y[va]
        train, y = [train[i] for i in tr], y[tr]
    res = {"benchmark": "peers", "train": a.imdb or a.train, "scored_on": "valid" if a.valid_frac else "test",
           "n_train": len(train), "n_scored": len(test), "results": {}}
    for name in a.peers.split(","):
        t0 = time.perf_counter()
        kw = {"epochs": a.fasttext_epochs, "buckets": a.fasttext_buckets} if name == "fasttext" else {}
        pred = PEERS[name](train, y, test, a.seed, **kw)
        res["results"][name] = {"accuracy": round(float((pred == yt).mean()), 4),
                                "seconds": round(time.perf_counter() - t0, 1)}
        print(f"# {name}: {res['results'][name]}", file=sys.stderr)
    res["threads"] = 1
    res["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
