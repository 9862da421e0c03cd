"""`ulmfit train-classifier`, `ulmfit predict`, `ulmfit evaluate`, `ulmfit export-classifier`.

A classifier folder is a model folder (config.json with kind "classifier", model.safetensors,
tokenizer.json, vocab.json) that train-classifier also fills with its training files (log.csv,
history.json, metrics.json, confusion.json/.png, training_curve.png, checkpoint.safetensors) and a
best/ sub-folder (the epoch with the best valid accuracy). Heavy imports stay inside the functions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PRESETS = ("paper", "small", "cpu", "tiny")
DEFAULT_STAGES = "1:1:2e-2,2:1:1e-2,3:1:5e-3,all:2:1e-3"  # ulmfit.classifier.task.PAPER_STAGES


def _floats(text):
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(sub):
    p = sub.add_parser(
        "train-classifier", help="train a text classifier on a fine-tuned language model's encoder",
        description="ULMFiT stage 3: a concat-pooling classifier over the AWD-LSTM encoder of a fine-tuned "
        "language model (--encoder), run over whole documents (BPT3C). The default schedule is the paper's: "
        "gradual unfreezing (head, then one more layer group per epoch, then all), discriminative lrs "
        "(group k from the top gets lr / 2.6^k), slanted triangular lrs, Adam betas (0.7, 0.99). "
        "Writes a self-contained classifier folder to --out after every epoch.",
        epilog="example: ulmfit train-classifier data/imdb --encoder models/imdb-lm --out models/imdb-clas "
        "--max-minutes 60",
    )
    p.add_argument("data", metavar="DATA", help="a tokenized labelled dataset folder (`ulmfit prepare` + `ulmfit tokenize`)")
    p.add_argument("--encoder", metavar="LM_DIR",
                   help="the fine-tuned language-model folder whose encoder to start from (without it: a fresh "
                   "encoder of --preset, for experiments)")
    p.add_argument("--out", required=True, metavar="DIR", help="the classifier folder to write")
    p.add_argument("--backwards", action="store_true", default=None,
                   help="read documents backwards (default: as the --encoder LM was trained)")
    p.add_argument("--preset", choices=PRESETS, default="small", help="model size without --encoder (default small)")
    g = p.add_argument_group("data")
    g.add_argument("--train-split", default="train", help="split to train on (default train)")
    g.add_argument("--valid-split", help="split to validate on (default: valid if the dataset has one, else test)")
    g.add_argument("--valid-frac", type=float, metavar="F",
                   help="validate on a fixed random fraction F of the train split instead (stratified by class), "
                   "which is then left out of training: keeps the test split unseen until `ulmfit evaluate`")
    g.add_argument("--limit-train", type=int, metavar="N", help="train on a fixed random N documents only")
    g.add_argument("--limit-valid", type=int, metavar="N", help="validate on a fixed random N documents only")
    g.add_argument("--bs", type=int, default=64, metavar="N", help="documents per batch (default 64)")
    g.add_argument("--bptt", type=int, default=70, metavar="N", help="tokens per BPT3C chunk (default 70)")
    g.add_argument("--max-len", type=int, default=20 * 70, metavar="N",
                   help="pool over each document's last N tokens (default 1400)")
    g.add_argument("--eos", action="store_true", help="append an end-of-document token")
    g = p.add_argument_group("model")
    g.add_argument("--drop-mult", type=float, default=0.5,
                   help="multiplier of the classifier dropouts (fastai's awd_lstm_clas_config) (default 0.5)")
    g.add_argument("--head", type=lambda s: [int(x) for x in s.split(",") if x], default=[50], metavar="N[,N]",
                   help="hidden sizes of the head (default 50)")
    g.add_argument("--multi-label", action="store_true",
                   help="independent labels (sigmoid + threshold); the default when the dataset is multi-label")
    g.add_argument("--threshold", type=float, default=0.5, help="multi-label decision threshold (default 0.5)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--stages", default=DEFAULT_STAGES, metavar="N:E:LR,...",
                   help="training phases as TRAINABLE:EPOCHS:LR: the top TRAINABLE layer groups train (1 = the "
                   "head, 2 = + the top LSTM, ..., all), for EPOCHS epochs at peak lr LR (the head's) "
                   f"(default {DEFAULT_STAGES})")
    g.add_argument("--lr-mult", type=float, default=1.0, help="multiply every stage's lr (default 1)")
    g.add_argument("--lr-div", type=float, default=2.6, help="discriminative lr factor between groups (default 2.6)")
    g.add_argument("--schedule", choices=["stlr", "one_cycle", "constant"], default="stlr",
                   help="lr schedule of each stage (default stlr: slanted triangular, cut_frac 0.1, ratio 32)")
    g.add_argument("--betas", type=_floats, default=(0.7, 0.99), metavar="B1,B2", help="Adam betas (default 0.7,0.99)")
    g.add_argument("--moms", type=_floats, default=(0.8, 0.7, 0.8), metavar="M0,M1,M2",
                   help="beta1 cycle under --schedule one_cycle (default 0.8,0.7,0.8)")
    g.add_argument("--wd", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    g.add_argument("--clip", type=float, default=0.0, help="gradient norm clipping, 0 for none (default 0)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g = p.add_argument_group("learning-rate finder")
    g.add_argument("--lr-find", action="store_true",
                   help="instead of training: sweep the lr over --lr-find-steps batches with the first stage's "
                   "layers trainable, write lr_find.csv/.json/.png to --out and print the suggested lr")
    g.add_argument("--lr-find-steps", type=int, default=100, metavar="N", help="batches in the sweep (default 100)")
    g.add_argument("--lr-find-range", type=_floats, default=(1e-7, 10.0), metavar="START,END",
                   help="lrs swept, exponentially (default 1e-7,10)")
    g = p.add_argument_group("run control")
    g.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps in all (--resume continues)")
    g.add_argument("--max-minutes", type=float, metavar="M", help="stop after M minutes (--resume continues)")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (same settings)")
    g.add_argument("--ckpt-every", type=int, default=0, metavar="N", help="also checkpoint every N steps")
    g.add_argument("--device", help="torch device (default: cuda if available)")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "predict", help="classify raw texts with a classifier folder",
        description="Classify texts given as arguments, read from --input (.txt: one text per line; "
        ".csv/.tsv/.jsonl/.parquet: the --text-col column) or from stdin (one text per line). Prints one JSON "
        "object per text, in input order: {\"label\", \"probability\"} (multi-label: {\"labels\", \"probabilities\"}).",
        epilog="example: ulmfit predict models/imdb-clas 'What a wonderful film.' --int8",
    )
    p.add_argument("model_dir", metavar="DIR", help="a classifier folder")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--input", metavar="FILE", help="read texts from FILE (.txt, .csv, .tsv, .jsonl, .parquet)")
    p.add_argument("--text-col", default="text", help="the text column of a table --input (default text)")
    p.add_argument("--output", metavar="FILE", help="write the JSON lines to FILE (default stdout)")
    p.add_argument("--ensemble", metavar="DIR2", action="append", default=[],
                   help="average probabilities with this classifier too (e.g. the backward model); repeatable")
    _add_inference_args(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "evaluate", help="accuracy, macro-F1 and confusion matrix of a classifier on labelled data",
        description="Evaluate a classifier (or the mean of several: --ensemble) on a labelled split of a prepared "
        "dataset folder, or on a labelled table file (--text-col/--label-col). Raw text goes through each "
        "folder's own tokenizer (a tokenized dataset with the same vocab is read directly). Prints one JSON "
        "line; --out writes evaluation.json and evaluation.png (the confusion matrix).",
        epilog="example: ulmfit evaluate models/imdb-fwd data/imdb --ensemble models/imdb-bwd --out reports/",
    )
    p.add_argument("model_dir", metavar="DIR", help="a classifier folder")
    p.add_argument("data", metavar="DATA", help="a prepared dataset folder, or a .csv/.tsv/.jsonl/.parquet file")
    p.add_argument("--ensemble", metavar="DIR2", action="append", default=[],
                   help="average probabilities with this classifier too; repeatable")
    p.add_argument("--split", help="the dataset split (default: test, else valid)")
    p.add_argument("--text-col", default="text", help="text column of a table file (default text)")
    p.add_argument("--label-col", default="label", help="label column of a table file (default label)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate a fixed random N documents only")
    p.add_argument("--out", metavar="DIR", help="write evaluation.json + evaluation.png here")
    _add_inference_args(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "export-classifier", help="copy a classifier folder's model files only, optionally marked for int8",
        description="Write a serving copy of a classifier folder: config.json, model.safetensors, tokenizer.json, "
        "vocab.json (no checkpoints or logs). --int8 marks it to load with int8 dynamic quantized LSTMs "
        "(2-4x faster on CPU; the accuracy cost is measured by `ulmfit evaluate --int8`).",
    )
    p.add_argument("model_dir", metavar="DIR", help="a classifier folder")
    p.add_argument("out", metavar="OUT", help="the folder to write")
    p.add_argument("--int8", action="store_true", help="load quantized (int8 dynamic LSTMs) by default")
    p.set_defaults(func=_export)


def _add_inference_args(p):
    p.add_argument("--int8", action="store_true", default=None,
                   help="int8 dynamic quantized LSTMs (fast CPU serving); default: as the folder says")
    p.add_argument("--float32", dest="int8", action="store_false", help="float32 even if the folder says int8")
    p.add_argument("--bs", type=int, default=64, metavar="N", help="documents per batch (default 64)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# ------------------------------------------------------------------------------------ training


def _train(args):
    from .train import train_classifier

    return train_classifier(args)


# ---------------------------------------------------------------------------------- prediction


def _load_all(args, dirs):
    import os


    import torch

    from ..inference import TextClassifier

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    return [TextClassifier.load(d, int8=args.int8) for d in dirs]


def read_texts(args):
    """Texts from the arguments, --input, or stdin (one per line)."""
    import sys

    from ..errors import UlmfitError

    if args.texts and args.input:
        raise UlmfitError("give texts as arguments or with --input, not both")
    if args.texts:
        return list(args.texts)
    if args.input:
        from ..data.table import file_format, iter_rows

        path = Path(args.input)
        if not path.exists():
            raise UlmfitError(f"{path}: no such file")
        if file_format(path) == "text":
            from ..data.table import _decoded_lines

            return [line.rstrip("\r\n") for line in _decoded_lines(path, [0])]
        texts = []
        for _, row in iter_rows(path, [args.text_col]):
            v = row[args.text_col]
            texts.append("" if v is None else str(v))
        return texts
    if sys.stdin.isatty():
        raise UlmfitError("no texts: give them as arguments, with --input FILE, or on stdin")
    return [line.rstrip("\r\n") for line in sys.stdin]


def _predict(args):
    import json
    import sys

    from ..inference import ensemble_proba
    from ..io import write_text

    texts = read_texts(args)
    clfs = _load_all(args, [args.model_dir, *args.ensemble])
    probs = ensemble_proba(clfs, texts, args.bs, progress=not args.quiet)
    lines = [json.dumps(r, ensure_ascii=False) for r in clfs[0].labels_of(probs)]
    if args.output:
        write_text(args.output, "".join(line + "\n" for line in lines))
        print(f"wrote {len(lines)} predictions to {args.output}", file=sys.stderr)
    else:
        for line in lines:
            print(line)
    return 0


def _labelled_data(args, clfs):
    """(list of per-classifier inputs: texts or id arrays, true class indices in clfs[0].classes)."""
    import numpy as np

    from ..errors import InputError, UlmfitError

    classes = clfs[0].classes
    cidx = {c: i for i, c in enumerate(classes)}
    path = Path(args.data)
    multi = clfs[0].settings.multi_label
    if path.is_file() and multi:
        raise UlmfitError(f"{path}: evaluate a multi-label classifier on a prepared dataset folder "
                          "(`ulmfit prepare table ... --label-sep SEP`)")
    if path.is_file():
        from ..data.table import iter_rows

        texts, y = [], []
        for line, row in iter_rows(path, [args.text_col, args.label_col]):
            lab = str(row[args.label_col]).strip()
            if isinstance(row[args.label_col], float) and row[args.label_col].is_integer():
                lab = str(int(row[args.label_col]))
            if lab not in cidx:
                raise InputError(f"label {lab!r} is not one of the classifier's classes {classes}",
                                 path=path, line=line, field=args.label_col)
            texts.append(str(row[args.text_col]))
            y.append(cidx[lab])
        idx = np.arange(len(y))
        if args.limit and args.limit < len(idx):
            idx = np.sort(np.random.default_rng(1234).permutation(idx)[: args.limit])
        return [("texts", [texts[i] for i in idx])] * len(clfs), np.asarray(y)[idx]

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
    split = args.split or next((s for s in ("test", "valid") if (path / "splits" / f"{s}.npy").exists()), None)
    if split is None or not (path / "splits" / f"{split}.npy").exists():
        raise UlmfitError(f"{path} has no split {split or 'test or valid'!r}; choose one with --split")
    args.split = split  # reported with the metrics
    index = np.load(path / "splits" / f"{split}.npy")
    labels = np.load(path / "labels.npy")[index]
    if (labels.ndim == 2) != multi:
        raise UlmfitError(f"{path / 'labels.npy'}: the dataset is {'multi' if labels.ndim == 2 else 'single'}-label, "
                          f"the classifier {'multi' if multi else 'single'}-label")
    keep = labelled(labels)
    index, labels = index[keep], labels[keep]
    if args.limit and args.limit < len(index):
        pick = np.sort(np.random.default_rng(1234).permutation(len(index))[: args.limit])
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
                texts = _read_texts_jsonl(path / "documents.jsonl", set(index.tolist()))
                texts = [texts[i] for i in index.tolist()]
            inputs.append(("texts", texts))
    return inputs, y


def _same_vocab_store(path):
    from ..text.store import TokenStore

    try:
        return TokenStore(path)
    except Exception:  # not tokenized (or unreadable): fall back to raw text
        return None


def _read_texts_jsonl(path, wanted):
    import json

    out = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i in wanted:
                t = json.loads(line)["text"]
                out[i] = t if isinstance(t, str) else list(t)
    return out


def _evaluate(args):
    import json
    import time

    import numpy as np

    from .metrics import confusion, scores, write_report

    from ..errors import UlmfitError

    clfs = _load_all(args, [args.model_dir, *args.ensemble])
    if any(c.classes != clfs[0].classes or c.settings.multi_label != clfs[0].settings.multi_label for c in clfs):
        raise UlmfitError(f"the classifiers' classes differ: {[c.classes for c in clfs]}")
    inputs, y = _labelled_data(args, clfs)
    t0 = time.time()
    probs = []
    for clf, (kind, data) in zip(clfs, inputs):
        probs.append(clf.predict_ids(data, args.bs, progress=not args.quiet) if kind == "ids"
                     else clf.predict_proba(data, args.bs, progress=not args.quiet))
    p = np.mean(probs, axis=0)
    extra = {"models": [str(args.model_dir), *args.ensemble], "int8": [c.int8 for c in clfs],
             "data": str(args.data), "split": args.split, "seconds": round(time.time() - t0, 2)}
    if clfs[0].settings.multi_label:
        return _evaluate_multi_label(args, clfs, p, y, extra)
    n_classes = len(clfs[0].classes)
    cm = confusion(y, p.argmax(1), n_classes)
    if len(clfs) > 1:
        extra["single_accuracy"] = [float((q.argmax(1) == y).mean()) for q in probs]
    if args.out:
        report = write_report(args.out, "evaluation", cm, clfs[0].classes, extra)
    else:
        report = {**scores(cm), "classes": clfs[0].classes, "confusion_matrix": cm.tolist(), **extra}
    print(json.dumps({k: report[k] for k in ("accuracy", "macro_f1", "n", "confusion_matrix", "classes", *extra)}))
    return 0


def _evaluate_multi_label(args, clfs, p, y, extra):
    """Exact-match accuracy over documents, macro-F1 and per-label precision/recall/F1 at the threshold."""
    import json

    from ..io import write_json
    from .metrics import multilabel_scores

    pred, true = p > clfs[0].settings.threshold, y > 0
    tp, fp, fn = ((pred & true).sum(0), (pred & ~true).sum(0), (~pred & true).sum(0))
    report = {**multilabel_scores(tp, fp, fn, (pred == true).all(1).sum(), len(y)),
              "support": true.sum(0).tolist(), "threshold": clfs[0].settings.threshold,
              "classes": clfs[0].classes, **extra}
    if args.out:
        write_json(Path(args.out) / "evaluation.json", report)
    print(json.dumps(report))
    return 0


def _export(args):
    from ..inference import TextClassifier

    clf = TextClassifier.load(args.model_dir, int8=False)
    out = clf.export(args.out, int8=args.int8)
    print(f"wrote {out}" + (" (loads with int8 LSTMs)" if args.int8 else ""))
    return 0
