"""The TF-IDF + logistic regression baseline as a model folder any tool can read, and blending it with ULMFiT.

A fitted baseline is stored as `tfidf.json` (the vectorizer's settings, the n-gram vocabulary in column
order, the classes) + `tfidf.safetensors` (idf, coef, intercept): no pickle. `TfidfModel` rebuilds the
vectorizer from them and computes the probabilities itself (sigmoid for two classes or multi-label,
softmax otherwise), exactly as scikit-learn's LogisticRegression does.

Blending: the mean of ULMFiT's and the baseline's class probabilities with weight w on ULMFiT's, w chosen
on held-out labelled documents (never the test split), and only where it beats the better model alone by more
than the noise of those documents (`choose_weight`). The two models err on different reviews (an LM
reads order and negation, n-grams count words), so the blend beats both on IMDb (docs/benchmarks.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UlmfitError

FORMAT = "ulmfit-tfidf-1"
WEIGHTS = np.round(np.arange(0, 1.0001, 0.05), 2)  # the blend weights tried on the validation documents


def save_tfidf(folder, vectorizer, model, classes, multi_label: bool):
    """Write a fitted TfidfVectorizer + LogisticRegression (or OneVsRest of them) into `folder`."""
    from .io import write_json, write_safetensors

    folder = Path(folder)
    if multi_label:
        coef = np.concatenate([e.coef_ for e in model.estimators_])
        intercept = np.concatenate([e.intercept_ for e in model.estimators_])
    else:
        coef, intercept = model.coef_, model.intercept_
    vocab = [""] * len(vectorizer.vocabulary_)
    for gram, col in vectorizer.vocabulary_.items():
        vocab[col] = gram
    write_json(
        folder / "tfidf.json",
        {
            "format": FORMAT,
            "classes": list(classes),
            "multi_label": bool(multi_label),
            "ngram_range": list(vectorizer.ngram_range),
            "sublinear_tf": bool(vectorizer.sublinear_tf),
            "lowercase": bool(vectorizer.lowercase),
            "token_pattern": vectorizer.token_pattern,
            "vocabulary": vocab,
        },
    )
    tensors = {"idf": vectorizer.idf_, "coef": coef, "intercept": intercept}
    # C order: scikit-learn's multinomial coef_ is Fortran-ordered, and safetensors writes the raw buffer
    write_safetensors(
        folder / "tfidf.safetensors",
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
        numpy=True,
    )


class TfidfModel:
    """A saved baseline: predict_proba(texts) -> [n, n_classes] float64."""

    def __init__(self, meta: dict, tensors: dict):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.classes, self.multi_label = meta["classes"], meta["multi_label"]
        self.vectorizer = TfidfVectorizer(
            ngram_range=tuple(meta["ngram_range"]),
            sublinear_tf=meta["sublinear_tf"],
            lowercase=meta["lowercase"],
            token_pattern=meta["token_pattern"],
            vocabulary={g: i for i, g in enumerate(meta["vocabulary"])},
            dtype=np.float32,
        )
        self.vectorizer.idf_ = tensors["idf"]
        self.coef, self.intercept = tensors["coef"], tensors["intercept"]

    @classmethod
    def load(cls, folder) -> "TfidfModel":
        from safetensors.numpy import load_file

        folder = Path(folder)
        path = folder / "tfidf.json"
        if not path.exists():
            raise UlmfitError(
                f"{folder} holds no saved baseline (no tfidf.json): `ulmfit baseline DATA --out {folder}` writes one"
            )
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise UlmfitError(f"{path}: field 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(meta, load_file(str(folder / "tfidf.safetensors")))

    def predict_proba(self, texts) -> np.ndarray:
        z = np.asarray(self.vectorizer.transform(list(texts)) @ self.coef.T, dtype=np.float64) + self.intercept
        if self.multi_label or z.shape[1] == 1:  # one logit per label, or the binary case's one column
            p = 1.0 / (1.0 + np.exp(-z))
            return p if self.multi_label else np.concatenate([1.0 - p, p], axis=1)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def blend(p_ulmfit: np.ndarray, p_tfidf: np.ndarray, weight: float) -> np.ndarray:
    return weight * p_ulmfit + (1.0 - weight) * p_tfidf


def choose_weight(p_ulmfit: np.ndarray, p_tfidf: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The blend weight for held-out documents -> (weight, its accuracy there). Single-label only.

    The weight of WEIGHTS with the best accuracy (ties: the one nearest 0.5), but only when it beats the better
    of the two models alone by more than one standard error of the paired difference; otherwise that model alone
    (1 or 0). On a few hundred documents the best of 21 weights is mostly noise: it made a review table's test
    score worse than the baseline alone (79.3 vs 81.4 %, issue 24)."""
    y = np.asarray(y)
    right = [blend(p_ulmfit, p_tfidf, w).argmax(1) == y for w in WEIGHTS]
    acc = [float(r.mean()) for r in right]
    best = max(range(len(WEIGHTS)), key=lambda k: (acc[k], -abs(WEIGHTS[k] - 0.5)))
    single = len(WEIGHTS) - 1 if acc[-1] >= acc[0] else 0  # WEIGHTS[-1] = 1: ULMFiT alone; [0] = 0: TF-IDF alone
    d = right[best].astype(np.float64) - right[single]
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.inf
    if best != single and d.mean() <= se:
        best = single
    return float(WEIGHTS[best]), acc[best]
