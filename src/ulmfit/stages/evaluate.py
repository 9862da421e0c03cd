"""The classifier stages after training: predict, evaluate (+ ensembles), export (settings in `ulmfit.settings`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UlmfitError
from ..io import check_output_dir, check_output_file
from ..settings import EvaluateSettings, ExportSettings, PredictSettings


def _workers(s) -> int:
    from ..inference import default_workers

    return s.workers or default_workers(s.threads)


def _proba(clf, kind, docs, s, progress=False):
    """One classifier's probabilities for token ids ("ids") or raw texts, with the settings' batch and workers."""
    if kind == "ids":
        return clf.predict_ids(docs, s.bs, _workers(s), progress=progress)
    return clf.predict_proba(docs, s.bs, _workers(s), progress=progress)


def _load_all(s, dirs):
    """The classifiers, with torch's threads set (ONNX sessions get their share of them per worker: the
    workers' batches run side by side)."""
    import os

    import torch

    from ..inference import TextClassifier

    threads = s.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if s.onnx:
        each = max(1, threads // _workers(s))
        return [TextClassifier.load(d, int8=s.int8, backend="onnx", threads=each) for d in dirs]
    return [TextClassifier.load(d, int8=s.int8) for d in dirs]


def read_texts(texts=None, input=None, text_col=PredictSettings.text_col, tsv_quotes=False):
    """Texts given (a list, maybe empty), or read from `input` (.txt: one per line; a table: its `text_col`),
    or from stdin (texts None). No texts (an empty list, file or stdin) are no texts, not one empty text."""
    import sys

    if texts and input:
        raise UlmfitError("give texts or an input file (input), not both")
    if texts is not None and not input:
        if isinstance(texts, str):
            raise UlmfitError("give a list of texts (a single string would be read as a list of characters)")
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
        for line, row in iter_rows(path, [text_col], tsv_quotes=tsv_quotes):
            v = row[text_col]
            texts.append(text_value(v, path, line, text_col))
        return texts
    if sys.stdin.isatty():
        raise UlmfitError("no texts: give them as a list, an input file (input), or on stdin")
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
        from ..inference import CLASSIFIER_FILES
        from ..io import check_not_an_input

        read = [("--input", s.input)] + [
            ("classifier", Path(d) / name) for d in [model, *s.ensemble] for name in CLASSIFIER_FILES
        ]
        if s.blend:
            read += [("--blend", Path(s.blend) / name) for name in ("tfidf.json", "tfidf.safetensors")]
        check_not_an_input(s.output, read, "--output", inside=False)
    texts = read_texts(texts, s.input, s.text_col, s.tsv_quotes)
    clfs = _load_all(s, [model, *s.ensemble])
    probs = ensemble_proba(clfs, texts, s.bs, progress=not s.quiet, workers=_workers(s))
    if s.blend:
        if s.blend_weight is None:
            raise UlmfitError(
                "--blend needs --blend-weight here (`ulmfit evaluate --blend` chooses one on validation "
                "and writes it in evaluation.json)"
            )
        probs = _blend_with(s, clfs[0], probs, texts)
    rows = clfs[0].labels_of(probs)
    if s.output:
        write_text(s.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"wrote {len(rows)} predictions to {s.output}", file=sys.stderr)
    return rows


def _table_rows(path, s, classes, cidx):
    """(texts, class indices in `classes`) of every row of the table file `path`, each checked: a label among
    the classifier's classes (read as `prepare table` reads it) and a text that is not empty."""
    from ..data.table import _is_missing, iter_rows, label_value, text_value
    from ..errors import InputError

    texts, y = [], []
    for line, row in iter_rows(path, [s.text_col, s.label_col], tsv_quotes=s.tsv_quotes):
        if _is_missing(row[s.label_col]):
            raise InputError("missing label", path=path, line=line, field=s.label_col)
        lab = label_value(row[s.label_col], path, line, s.label_col)  # as `prepare table` reads it
        raw = str(row[s.label_col]).strip()
        if lab not in cidx and raw in cidx:  # a classifier trained before labels were normalised ("1.0")
            lab = raw
        if lab not in cidx:
            raise InputError(
                f"label {lab!r} is not one of the classifier's classes {classes}",
                path=path,
                line=line,
                field=s.label_col,
            )
        text = text_value(row[s.text_col], path, line, s.text_col)
        if not text.strip():
            raise InputError("the text is empty: nothing to evaluate", path=path, line=line, field=s.text_col)
        texts.append(text)
        y.append(cidx[lab])
    if not y:
        raise InputError("the table has no rows to evaluate", path=path)
    return texts, y


def _labelled_data(data, s, clfs):
    """(list of per-classifier inputs: texts or id arrays, true class indices in clfs[0].classes)."""
    import numpy as np

    from ..batching.documents import SUBSET_SEED

    classes = clfs[0].classes
    cidx = {c: i for i, c in enumerate(classes)}
    path = Path(data)
    multi = clfs[0].settings.multi_label
    if path.is_file() and multi:
        raise UlmfitError(
            f"{path}: evaluate a multi-label classifier on a prepared dataset folder "
            "(prepared with label_sep, or several label_col)"
        )
    if path.is_file():
        texts, y = _table_rows(path, s, classes, cidx)
        idx = np.arange(len(y))
        if s.limit and s.limit < len(idx):
            idx = np.sort(np.random.default_rng(SUBSET_SEED).permutation(idx)[: s.limit])
        return [("texts", [texts[i] for i in idx])] * len(clfs), np.asarray(y)[idx], None, None

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
        raise UlmfitError(f"{path} has no split {split or 'test or valid'!r}; choose one (split)")
    index = np.load(path / "splits" / f"{split}.npy")
    labels = np.load(path / "labels.npy")[index]
    if (labels.ndim == 2) != multi:
        raise UlmfitError(
            f"{path / 'labels.npy'}: the dataset is {'multi' if labels.ndim == 2 else 'single'}-label, "
            f"the classifier {'multi' if multi else 'single'}-label"
        )
    keep = labelled(labels)
    index, labels = index[keep], labels[keep]
    if not len(index):
        raise UlmfitError(f"{path}: split {split!r} has no labelled documents to evaluate")
    if s.limit and s.limit < len(index):
        pick = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(index))[: s.limit])
        index, labels = index[pick], labels[pick]
    if multi:  # multi-hot columns in the classifier's class order
        y = np.zeros((len(labels), len(classes)), dtype=np.int64)
        for k, c in enumerate(data_classes):
            y[:, cidx[c]] = labels[:, k]
    else:
        y = np.array([cidx[data_classes[k]] for k in labels], dtype=np.int64)
    return _inputs(path, index, clfs), y, split, index


def _inputs(path, index, clfs):
    """Per classifier ("ids", id arrays) of dataset documents `index` when the folder's token store has its
    vocab and tokenizer, else ("texts", raw texts)."""
    import numpy as np

    inputs = []
    store = _same_vocab_store(path)
    for clf in clfs:
        if (
            store is not None
            and store.vocab.hash == clf.encoder.vocab.hash
            and store.tokenizer_settings == clf.encoder.settings
        ):
            inputs.append(
                (
                    "ids",
                    [
                        np.asarray(store.ids[store.offsets[i] : store.offsets[i + 1]], dtype=np.int64)
                        for i in index.tolist()
                    ],
                )
            )
        else:
            inputs.append(("texts", _raw_texts(path, index)))
    return inputs


def _raw_texts(path, index) -> list:
    from ..data.dataset import read_texts as read_documents

    texts = read_documents(path, set(index.tolist()))
    return [t if isinstance(t, str) else " ".join(t) for t in (texts[i] for i in index.tolist())]


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

    from ..inference import check_ensemble
    from ..classifier.metrics import confusion, scores, write_report

    s = settings or EvaluateSettings()
    if s.out:
        check_output_dir(s.out)
    clfs = _load_all(s, [model, *s.ensemble])
    check_ensemble(clfs)
    inputs, y, split, index = _labelled_data(data, s, clfs)
    t0 = time.time()
    probs = [_proba(clf, kind, docs, s, progress=not s.quiet) for clf, (kind, docs) in zip(clfs, inputs)]
    p = np.mean(probs, axis=0)
    extra = {
        "models": [str(model), *s.ensemble],
        "int8": [c.int8 for c in clfs],
        "data": str(data),
        "split": split,
        "seconds": round(time.time() - t0, 2),
    }
    if clfs[0].settings.multi_label:
        if s.blend:
            raise UlmfitError("blending with a TF-IDF baseline (blend) is for single-label classifiers")
        return _evaluate_multi_label(s, clfs, p, y, extra)
    n_classes = len(clfs[0].classes)
    cm = confusion(y, p.argmax(1), n_classes)
    if len(clfs) > 1:
        extra["single_accuracy"] = [float((q.argmax(1) == y).mean()) for q in probs]
    if s.blend:  # the baseline reads raw texts: a table file's, or the dataset documents'
        texts = inputs[0][1] if inputs[0][0] == "texts" else _raw_texts(Path(data), index)
        extra["blend"] = _evaluate_blend(s, clfs, data, p, y, texts)
    if s.out:
        report = write_report(s.out, "evaluation", cm, clfs[0].classes, extra)
    else:
        report = {**scores(cm), "classes": clfs[0].classes, "confusion_matrix": cm.tolist(), **extra}
    return {k: report[k] for k in ("accuracy", "macro_f1", "n", "confusion_matrix", "classes", *extra)}


def _evaluate_multi_label(s, clfs, p, y, extra):
    """Exact-match accuracy over documents, macro-F1 and per-label precision/recall/F1 at the threshold."""
    from ..io import write_json
    from ..classifier.metrics import multilabel_scores

    pred, true = p > clfs[0].settings.threshold, y > 0
    tp, fp, fn = ((pred & true).sum(0), (pred & ~true).sum(0), (~pred & true).sum(0))
    report = {
        **multilabel_scores(tp, fp, fn, (pred == true).all(1).sum(), len(y)),
        "support": true.sum(0).tolist(),
        "threshold": clfs[0].settings.threshold,
        "classes": clfs[0].classes,
        **extra,
    }
    if s.out:
        write_json(Path(s.out) / "evaluation.json", report)
    return report


def _tfidf_for(s, clf):
    """The saved baseline of s.blend, checked against the classifier: single-label, the same classes."""
    from ..tfidf import TfidfModel

    if clf.settings.multi_label:
        raise UlmfitError("blending with a TF-IDF baseline (blend) is for single-label classifiers")
    base = TfidfModel.load(s.blend)
    if sorted(base.classes) != sorted(clf.classes):
        raise UlmfitError(
            f"{Path(s.blend) / 'tfidf.json'}: field 'classes' {base.classes} differs from the "
            f"classifier's {clf.classes}"
        )
    return base


def _tfidf_proba(base, clf, texts):
    """The baseline's probabilities in the classifier's class order."""
    import numpy as np

    p = base.predict_proba(texts)
    return p[:, np.array([base.classes.index(c) for c in clf.classes])]


def _blend_with(s, clf, probs, texts):
    from ..tfidf import blend

    return blend(probs, _tfidf_proba(_tfidf_for(s, clf), clf, texts), s.blend_weight)


def _evaluate_blend(s, clfs, data, p, y, texts) -> dict:
    """ULMFiT's probabilities p (on the evaluated documents: raw texts, labels y) blended with a saved baseline's. The
    weight is s.blend_weight, or the one that does best on the documents the classifier held out of its
    training (`--valid-frac`): the test documents never choose it."""
    import numpy as np

    from ..io import read_json
    from ..tfidf import blend, choose_weight
    from ..classifier.metrics import confusion, scores

    clf = clfs[0]
    base = _tfidf_for(s, clf)
    q = _tfidf_proba(base, clf, texts)
    out = {"baseline": str(s.blend), "tfidf_accuracy": float((q.argmax(1) == y).mean())}
    if s.blend_weight is not None:
        w, how = s.blend_weight, "given"
    else:
        valid = _held_out(clf, data)
        if valid is None:
            raise UlmfitError(
                "choosing the blend weight needs the documents the classifier held out of training: "
                "evaluate on the prepared dataset folder it was trained on (with valid_frac), or give "
                "blend_weight"
            )
        index, yv = valid
        trained = (
            read_json(Path(s.blend) / "baseline.json").get("valid_frac")
            if (Path(s.blend) / "baseline.json").exists()
            else None
        )
        if trained != clf.config.training["valid_frac"]:
            raise UlmfitError(
                f"{Path(s.blend) / 'baseline.json'}: field 'valid_frac' is {trained}, the classifier's "
                f"{clf.config.training['valid_frac']}: the baseline must hold out the same documents "
                "(the baseline's valid_frac), or they cannot choose the blend weight fairly"
            )
        pv = np.mean([_proba(c, kind, docs, s) for c, (kind, docs) in zip(clfs, _inputs(Path(data), index, clfs))], 0)
        w, acc = choose_weight(pv, _tfidf_proba(base, clf, _raw_texts(Path(data), index)), yv)
        how = (
            f"best of 0, 0.05, ..., 1 on the {len(index)} documents held out of the classifier's training "
            "(the better model alone unless the blend beats it there by more than one standard error)"
        )
        out["valid_accuracy"] = acc
    cm = confusion(y, blend(p, q, w).argmax(1), len(clf.classes))
    sc = scores(cm)
    return {
        **out,
        "weight": w,
        "weight_chosen": how,
        "accuracy": float(sc["accuracy"]),
        "macro_f1": float(sc["macro_f1"]),
        "confusion_matrix": cm.tolist(),
    }


def _held_out(clf, data):
    """(dataset indices, class ids in the classifier's order) of the documents the classifier validated on when
    trained with valid_frac on this dataset folder; None otherwise."""
    import numpy as np

    from ..io import read_json
    from ..classifier.task import holdout

    t = clf.config.training
    root = Path(data)
    store = _same_vocab_store(root) if (root / "dataset.json").exists() else None
    if not t.get("valid_frac") or store is None or store.vocab.hash != t.get("vocab_hash"):
        return None  # not the dataset (or a copy of it) the classifier was trained on
    from ..io import plain_file_name

    # the split's name comes from the classifier's config.json: it may only name a file of DATA/splits/
    name = plain_file_name(f"{t.get('train_split') or 'train'}.npy", clf.folder / "config.json", "training.train_split")
    train = np.load(root / "splits" / name)
    labels = np.load(root / "labels.npy")
    _, va = holdout(labels[train], t["valid_frac"])
    classes = read_json(root / "dataset.json")["classes"]
    return train[va], np.array([clf.classes.index(classes[k]) for k in labels[train[va]]])


def export_classifier(model, out, settings: ExportSettings | None = None) -> Path:
    """A serving copy of a classifier folder (model files only; settings.int8: loads quantized by default)."""
    from ..inference import TextClassifier

    s = settings or ExportSettings()
    check_output_dir(out, replaced=True)
    return TextClassifier.load(model, int8=False).export(out, int8=s.int8, onnx=s.onnx)
