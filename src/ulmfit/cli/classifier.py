"""`ulmfit train-classifier`, `predict`, `evaluate`, `export-classifier`: parsers built from the settings.

A classifier folder is a model folder (config.json with kind "classifier", model.safetensors,
tokenizer.json, vocab.json) that train-classifier also fills with its training files (log.csv,
history.json, metrics.json, confusion.json/.png, training_curve.png, checkpoint.safetensors) and a
best/ sub-folder (the epoch with the best valid accuracy).
"""

from __future__ import annotations

import json

from ..settings import EvaluateSettings, ExportSettings, PredictSettings, TrainClassifierSettings
from .options import add_settings, settings_from


def register(sub):
    p = sub.add_parser(
        "train-classifier", help="train a text classifier on a fine-tuned language model's encoder",
        description="ULMFiT stage 3: a concat-pooling classifier over the encoder of a fine-tuned language model "
        "(--lm), run over whole documents (BPT3C). The default schedule is the paper's: gradual unfreezing (head, "
        "then one more layer group per epoch, then all), discriminative lrs (group k from the top gets "
        "lr / 2.6^k), slanted triangular lrs, Adam betas (0.7, 0.99). Writes a self-contained classifier folder "
        "to --out after every epoch.",
        epilog="example: ulmfit train-classifier data/imdb --lm models/imdb-lm --out models/imdb-clas --max-minutes 60")
    p.add_argument("data", metavar="DATA", help="a tokenized labelled dataset folder (`ulmfit prepare` + `ulmfit tokenize`)")
    p.add_argument("--lm", "--encoder", dest="lm", metavar="LM_DIR",
                   help="the fine-tuned language-model folder whose encoder to start from (without it: a fresh "
                   "encoder of --arch/--preset, for experiments)")
    p.add_argument("--out", required=True, metavar="DIR", help="the classifier folder to write")
    add_settings(p, TrainClassifierSettings)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "predict", help="classify raw texts with a classifier folder",
        description="Classify texts given as arguments, read from --input (.txt: one text per line; "
        ".csv/.tsv/.jsonl/.parquet: the --text-col column) or from stdin (one text per line). Prints one JSON "
        "object per text, in input order: {\"label\", \"probability\"} (multi-label: {\"labels\", \"probabilities\"}).",
        epilog="example: ulmfit predict models/imdb-clas 'What a wonderful film.' --int8")
    p.add_argument("model_dir", metavar="DIR", help="a classifier folder")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    add_settings(p, PredictSettings)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "evaluate", help="accuracy, macro-F1 and confusion matrix of a classifier on labelled data",
        description="Evaluate a classifier (or the mean of several: --ensemble) on a labelled split of a prepared "
        "dataset folder, or on a labelled table file (--text-col/--label-col). Raw text goes through each "
        "folder's own tokenizer (a tokenized dataset with the same vocab is read directly). Prints one JSON "
        "line; --out writes evaluation.json and evaluation.png (the confusion matrix).",
        epilog="example: ulmfit evaluate models/imdb-fwd data/imdb --ensemble models/imdb-bwd --out reports/")
    p.add_argument("model_dir", metavar="DIR", help="a classifier folder")
    p.add_argument("data", metavar="DATA", help="a prepared dataset folder, or a .csv/.tsv/.jsonl/.parquet file")
    add_settings(p, EvaluateSettings)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "export-classifier", help="copy a classifier folder's model files only, optionally marked for int8",
        description="Write a serving copy of a classifier folder: config.json, model.safetensors, tokenizer.json, "
        "vocab.json (no checkpoints or logs). --int8 marks it to load with int8 dynamic quantized recurrent "
        "layers (2-4x faster on CPU; the accuracy cost is measured by `ulmfit evaluate --int8`).")
    p.add_argument("model_dir", metavar="DIR", help="a classifier folder")
    p.add_argument("out", metavar="OUT", help="the folder to write")
    add_settings(p, ExportSettings)
    p.set_defaults(func=_export)


def _train(a):
    from ..api import train_classifier

    train_classifier(a.data, a.out, a.lm, settings_from(a, TrainClassifierSettings))
    return 0


def _predict(a):
    from ..api import predict

    rows = predict(a.model_dir, a.texts, settings_from(a, PredictSettings))
    if not a.output:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    return 0


def _evaluate(a):
    from ..api import evaluate

    print(json.dumps(evaluate(a.model_dir, a.data, settings_from(a, EvaluateSettings))))
    return 0


def _export(a):
    from ..api import export_classifier

    out = export_classifier(a.model_dir, a.out, settings_from(a, ExportSettings))
    print(f"wrote {out}" + (" (loads with int8 recurrent layers)" if a.int8 else ""))
    return 0
