"""The baseline beside every result: TF-IDF word n-grams + logistic regression (scikit-learn), on the same
documents and splits as the classifier (the same held-out validation documents too), in seconds.

It reads the prepared dataset folder's raw texts (documents.jsonl), so it needs no tokenized store and no
language model: it is what a user would get without ULMFiT.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UlmfitError
from ..settings import BaselineSettings

NAME = "TF-IDF (sublinear tf) + logistic regression"


def _scores(y_true, y_pred, multi_label: bool, n_classes: int) -> dict:
    from ..classifier.metrics import confusion, multilabel_scores, scores

    if multi_label:
        pred, true = y_pred > 0, y_true > 0
        tp, fp, fn = (pred & true).sum(0), (pred & ~true).sum(0), (~pred & true).sum(0)
        s = multilabel_scores(tp, fp, fn, (pred == true).all(1).sum(), len(y_true))
    else:
        s = scores(confusion(y_true, y_pred, n_classes))
    return {"accuracy": float(s["accuracy"]), "macro_f1": float(s["macro_f1"]), "n": int(len(y_true))}


def _classes_and_split(root: Path, s: BaselineSettings):
    """(the dataset's classes, the split to report on: `s.split`, else test, else valid), once `root` is known
    to be a prepared dataset folder with labels, the training split and that one."""
    from ..io import read_json

    if not (root / "dataset.json").exists():
        raise UlmfitError(f"{root} is not a prepared dataset folder (no dataset.json): run `ulmfit prepare` first")
    meta = read_json(root / "dataset.json")
    classes = meta.get("classes") or []
    if not classes:
        raise UlmfitError(f"{root / 'dataset.json'}: field 'classes' is empty: the dataset has no labels")
    split = s.split or next((n for n in ("test", "valid") if (root / "splits" / f"{n}.npy").exists()), None)
    for name in (s.train_split, split):
        if name is None or not (root / "splits" / f"{name}.npy").exists():
            raise UlmfitError(f"{root} has no split {name or 'test or valid'!r}")
    return classes, split


def _add_pseudo(labels, train_idx, report_idx, valid_idx, multi: bool, pseudo):
    """The teacher's labels `pseudo` (document indices, class indices) added -> (a copy of `labels` with them,
    the training documents with them), once checked: single-label, and no document labelled or used already."""
    if multi:
        raise UlmfitError("pseudo-labels are for single-label datasets")
    docs, cls = np.asarray(pseudo[0], dtype=np.int64), np.asarray(pseudo[1], dtype=np.int64)
    taken = np.concatenate([train_idx, report_idx] + ([] if valid_idx is None else [valid_idx]))
    if len(docs) != len(cls) or len(np.unique(docs)) != len(docs) or np.isin(docs, taken).any():
        raise UlmfitError(
            "pseudo-labels: one label per document, each document once, none of them a labelled "
            "training, validation or report document"
        )
    labels = labels.copy()
    labels[docs] = cls
    return labels, np.concatenate([train_idx, docs])


def baseline(data, settings: BaselineSettings | None = None, pseudo=None) -> dict:
    """Train TF-IDF + logistic regression on a prepared dataset's train split (minus the held-out fraction,
    if any) and score it on the held-out documents and on the report split -> a dict (also baseline.json).
    pseudo: (document indices, class indices) of unlabelled documents labelled by a teacher, trained on too."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from ..data.dataset import read_texts
    from ..classifier.task import training_docs
    from ..io import check_output_dir, write_json
    from ..text.store import labelled

    s = settings or BaselineSettings()
    if s.out:
        check_output_dir(s.out)
    t0 = time.time()
    root = Path(data)
    classes, split = _classes_and_split(root, s)
    labels = np.load(root / "labels.npy")
    multi = labels.ndim == 2
    train_idx = np.load(root / "splits" / f"{s.train_split}.npy")
    report_idx = np.load(root / "splits" / f"{split}.npy")
    keep, va = training_docs(labels[train_idx], s.valid_frac, s.limit_train)  # as train-classifier takes them
    valid_idx = None if va is None else train_idx[va]
    train_idx = train_idx[keep]
    if pseudo is not None:  # a copy of the labels with the teacher's added: labels.npy stays as it is
        labels, train_idx = _add_pseudo(labels, train_idx, report_idx, valid_idx, multi, pseudo)
    report_idx = report_idx[labelled(labels[report_idx])]
    wanted = set(train_idx.tolist()) | set(report_idx.tolist()) | set([] if valid_idx is None else valid_idx.tolist())
    texts = {i: t if isinstance(t, str) else " ".join(t) for i, t in read_texts(root, wanted).items()}
    vec = TfidfVectorizer(ngram_range=(1, s.ngram_max), min_df=s.min_df, sublinear_tf=True)
    x_train = vec.fit_transform([texts[i] for i in train_idx.tolist()])
    lr = LogisticRegression(C=s.c, max_iter=1000)
    model = OneVsRestClassifier(lr) if multi else lr
    model.fit(x_train, labels[train_idx])

    def score(idx):
        pred = model.predict(vec.transform([texts[i] for i in idx.tolist()]))
        return _scores(labels[idx], pred, multi, len(classes))

    result = {
        "model": NAME,
        "ngrams": [1, s.ngram_max],
        "C": s.c,
        "features": len(vec.vocabulary_),
        "train_split": s.train_split,
        "n_train": int(len(train_idx)),
        "pseudo_labelled": 0 if pseudo is None else len(pseudo[0]),
        "valid_frac": s.valid_frac,
        "valid": score(valid_idx) if valid_idx is not None and len(valid_idx) else None,
        "split": split,
        **score(report_idx),
        "seconds": round(time.time() - t0, 2),
    }
    if s.out:
        from ..tfidf import save_tfidf

        save_tfidf(s.out, vec, model, classes, multi)  # a model folder: `evaluate --blend` and `predict` read it
        write_json(Path(s.out) / "baseline.json", result)
    if not s.quiet:
        print(
            f"baseline ({NAME}): {split} accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
            f"in {result['seconds']:.1f} s",
            file=sys.stderr,
        )
    return result
