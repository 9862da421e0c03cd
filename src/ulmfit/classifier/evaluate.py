"""The classifier stages after training: predict, evaluate (+ ensembles), export (settings in `ulmfit.settings`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UlmfitError
from ..io import check_output_dir, check_output_file
from ..settings import EvaluateSettings, ExportSettings, PredictSettings


def _load_all(s, dirs):
    import os

    import torch

    from ..inference import TextClassifier

    torch.set_num_threads(s.threads or os.cpu_count() or 1)
    return [TextClassifier.load(d, int8=s.int8) for d in dirs]


def read_texts(texts=None, input=None, text_col="text"):
    """Texts given, or read from `input` (.txt: one per line; a table: its `text_col`), or from stdin."""
    import sys

    if texts and input:
        raise UlmfitError("give texts as arguments or with --input, not both")
    if texts:
        return list(texts)
    if input:
        from ..data.table import file_format, iter_rows, text_value

        path = Path(input)
        if not path.exists():
            raise UlmfitError(f"{path}: no such file")
        if file_format(path) == "text":
            from ..data.table import _decoded_lines

            return [line.rstrip("\r\n") for line in _decoded_lines(path, [0])]
        texts = []
        for line, row in iter_rows(path, [text_col]):
            v = row[text_col]
            texts.append(text_value(v, path, line, text_col))
        return texts
    if sys.stdin.isatty():
        raise UlmfitError("no texts: give them as arguments, with --input FILE, or on stdin")
    # Bytes that are not UTF-8 become U+FFFD rather than a traceback (as arguments' bad bytes do: they arrive
    # as lone surrogates, which the cleaning rules replace).
    stream = getattr(sys.stdin, "buffer", None)
    lines = (b.decode("utf-8", "replace") for b in stream) if stream is not None else sys.stdin
    return [line.rstrip("\r\n") for line in lines]


def predict(model, texts=None, settings: PredictSettings | None = None) -> list:
    """Labels and probabilities for raw texts (or settings.input's), in input order: one dict per text,
    {"label", "probability"} (multi-label: {"labels", "probabilities"}). `model`: a classifier folder;
    settings.ensemble adds more whose probabilities are averaged. settings.output: also write JSON lines."""
    import json
    import sys

    from ..inference import ensemble_proba
    from ..io import write_text

    s = settings or PredictSettings()
    if s.output:
        check_output_file(s.output)  # before reading or predicting anything
    texts = read_texts(texts, s.input, s.text_col)
    clfs = _load_all(s, [model, *s.ensemble])
    probs = ensemble_proba(clfs, texts, s.bs, progress=not s.quiet)
    rows = clfs[0].labels_of(probs)
    if s.output:
        write_text(s.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"wrote {len(rows)} predictions to {s.output}", file=sys.stderr)
    return rows


def _labelled_data(data, s, clfs):
    """(list of per-classifier inputs: texts or id arrays, true class indices in clfs[0].classes)."""
    import numpy as np

    from ..errors import InputError

    classes = clfs[0].classes
    cidx = {c: i for i, c in enumerate(classes)}
    path = Path(data)
    multi = clfs[0].settings.multi_label
    if path.is_file() and multi:
        raise UlmfitError(f"{path}: evaluate a multi-label classifier on a prepared dataset folder "
                          "(`ulmfit prepare table ... --label-sep SEP`)")
    if path.is_file():
        from ..data.table import iter_rows, text_value

        texts, y = [], []
        for line, row in iter_rows(path, [s.text_col, s.label_col]):
            lab = str(row[s.label_col]).strip()
            if isinstance(row[s.label_col], float) and row[s.label_col].is_integer():
                lab = str(int(row[s.label_col]))
            if lab not in cidx:
                raise InputError(f"label {lab!r} is not one of the classifier's classes {classes}",
                                 path=path, line=line, field=s.label_col)
            text = text_value(row[s.text_col], path, line, s.text_col)
            if not text.strip():
                raise InputError("the text is empty: nothing to evaluate", path=path, line=line, field=s.text_col)
            texts.append(text)
            y.append(cidx[lab])
        idx = np.arange(len(y))
        if s.limit and s.limit < len(idx):
            idx = np.sort(np.random.default_rng(1234).permutation(idx)[: s.limit])
        return [("texts", [texts[i] for i in idx])] * len(clfs), np.asarray(y)[idx], None

    from ..io import read_json
    from ..text.store import labelled

    if not (path / "dataset.json").exists():
        raise UlmfitError(f"{path} is neither a file nor a prepared dataset folder (no dataset.json)")
    meta = read_json(path / "dataset.json")
    data_classes = meta.get("classes")
    if not data_classes:
        raise UlmfitError(f"{path / 'dataset.json'}: field 'classes' is empty: the dataset has no labels")
    missing = [c for c in data_classes if c not in cidx]
    if missing:
        raise UlmfitError(f"{path / 'dataset.json'}: classes {missing} are unknown to the classifier {classes}")
    split = s.split or next((n for n in ("test", "valid") if (path / "splits" / f"{n}.npy").exists()), None)
    if split is None or not (path / "splits" / f"{split}.npy").exists():
        raise UlmfitError(f"{path} has no split {split or 'test or valid'!r}; choose one with --split")
    index = np.load(path / "splits" / f"{split}.npy")
    labels = np.load(path / "labels.npy")[index]
    if (labels.ndim == 2) != multi:
        raise UlmfitError(f"{path / 'labels.npy'}: the dataset is {'multi' if labels.ndim == 2 else 'single'}-label, "
                          f"the classifier {'multi' if multi else 'single'}-label")
    keep = labelled(labels)
    index, labels = index[keep], labels[keep]
    if s.limit and s.limit < len(index):
        pick = np.sort(np.random.default_rng(1234).permutation(len(index))[: s.limit])
        index, labels = index[pick], labels[pick]
    if multi:  # multi-hot columns in the classifier's class order
        y = np.zeros((len(labels), len(classes)), dtype=np.int64)
        for k, c in enumerate(data_classes):
            y[:, cidx[c]] = labels[:, k]
    else:
        y = np.array([cidx[data_classes[k]] for k in labels], dtype=np.int64)
    inputs, texts = [], None
    store = _same_vocab_store(path)
    for clf in clfs:
        if store is not None and store.vocab.hash == clf.encoder.vocab.hash and \
                store.tokenizer_settings == clf.encoder.settings:
            inputs.append(("ids", [np.asarray(store.ids[store.offsets[i]:store.offsets[i + 1]], dtype=np.int64)
                                   for i in index.tolist()]))
        else:
            if texts is None:
                from ..data.dataset import read_texts as read_documents

                texts = read_documents(path, set(index.tolist()))
                texts = [texts[i] for i in index.tolist()]
            inputs.append(("texts", texts))
    return inputs, y, split


def _same_vocab_store(path):
    from ..text.store import TokenStore

    try:
        return TokenStore(path)
    except Exception:  # not tokenized (or unreadable): fall back to raw text
        return None


def evaluate(model, data, settings: EvaluateSettings | None = None) -> dict:
    """Accuracy, macro-F1 and the confusion matrix of a classifier folder (or the mean of several:
    settings.ensemble) on a labelled split of a prepared dataset folder, or on a labelled table file.
    settings.out: also write evaluation.json and evaluation.png there. -> the report dict."""
    import time

    import numpy as np

    from .metrics import confusion, scores, write_report

    s = settings or EvaluateSettings()
    if s.out:
        check_output_dir(s.out)
    clfs = _load_all(s, [model, *s.ensemble])
    if any(c.classes != clfs[0].classes or c.settings.multi_label != clfs[0].settings.multi_label for c in clfs):
        raise UlmfitError(f"the classifiers' classes differ: {[c.classes for c in clfs]}")
    inputs, y, split = _labelled_data(data, s, clfs)
    t0 = time.time()
    probs = []
    for clf, (kind, docs) in zip(clfs, inputs):
        probs.append(clf.predict_ids(docs, s.bs, progress=not s.quiet) if kind == "ids"
                     else clf.predict_proba(docs, s.bs, progress=not s.quiet))
    p = np.mean(probs, axis=0)
    extra = {"models": [str(model), *s.ensemble], "int8": [c.int8 for c in clfs],
             "data": str(data), "split": split, "seconds": round(time.time() - t0, 2)}
    if clfs[0].settings.multi_label:
        return _evaluate_multi_label(s, clfs, p, y, extra)
    n_classes = len(clfs[0].classes)
    cm = confusion(y, p.argmax(1), n_classes)
    if len(clfs) > 1:
        extra["single_accuracy"] = [float((q.argmax(1) == y).mean()) for q in probs]
    if s.out:
        report = write_report(s.out, "evaluation", cm, clfs[0].classes, extra)
    else:
        report = {**scores(cm), "classes": clfs[0].classes, "confusion_matrix": cm.tolist(), **extra}
    return {k: report[k] for k in ("accuracy", "macro_f1", "n", "confusion_matrix", "classes", *extra)}


def _evaluate_multi_label(s, clfs, p, y, extra):
    """Exact-match accuracy over documents, macro-F1 and per-label precision/recall/F1 at the threshold."""
    from ..io import write_json
    from .metrics import multilabel_scores

    pred, true = p > clfs[0].settings.threshold, y > 0
    tp, fp, fn = ((pred & true).sum(0), (pred & ~true).sum(0), (~pred & true).sum(0))
    report = {**multilabel_scores(tp, fp, fn, (pred == true).all(1).sum(), len(y)),
              "support": true.sum(0).tolist(), "threshold": clfs[0].settings.threshold,
              "classes": clfs[0].classes, **extra}
    if s.out:
        write_json(Path(s.out) / "evaluation.json", report)
    return report


def export_classifier(model, out, settings: ExportSettings | None = None) -> Path:
    """A serving copy of a classifier folder (model files only; settings.int8: loads quantized by default)."""
    from ..inference import TextClassifier

    s = settings or ExportSettings()
    check_output_dir(out)
    return TextClassifier.load(model, int8=False).export(out, int8=s.int8)
