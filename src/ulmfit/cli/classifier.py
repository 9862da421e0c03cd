"""`ulmfit train-classifier`, `predict`, `evaluate`, `export-classifier`: parsers built from the settings.

A classifier folder is a model folder (config.json with kind "classifier", model.safetensors,
tokenizer.json, vocab.json) that train-classifier also fills with its training files (log.csv,
history.json, metrics.json, confusion.json/.png, training_curve.png, checkpoint.safetensors) and a
best/ sub-folder (the last stage's epoch with the best valid accuracy).
"""

from __future__ import annotations

import json

from .. import api
from ..settings import (
    BaselineSettings,
    EvaluateSettings,
    ExportSettings,
    PredictSettings,
    SelfTrainSettings,
    TrainClassifierSettings,
)
from .options import Command, add_commands, arg

CLASSIFIER = arg("model_dir", metavar="DIR", help="a classifier folder")


def _predict(a, s):
    import sys

    rows = api.predict(a.model_dir, a.texts or None, s)  # no TEXT arguments: --input or stdin
    if not rows:  # an empty input is no texts: nothing to print, and not an error (as `sort </dev/null`)
        print("ulmfit predict: no texts in the input: nothing to predict", file=sys.stderr)
    if not s.output:
        for r in rows:
            line = json.dumps(r, ensure_ascii=False)
            try:
                line.encode(sys.stdout.encoding or "utf-8")
            except UnicodeEncodeError:  # a stdout that cannot hold it (ASCII): the same JSON with \u escapes
                line = json.dumps(r)
            print(line)


def _export(a, s):
    out = api.export_classifier(a.model_dir, a.out, s)
    what = " with ONNX graphs" + (" (int8)" if s.int8 else "") if s.onnx else ""
    print(f"wrote {out}{what}" + (" (loads with int8 recurrent layers)" if s.int8 and not s.onnx else ""))


COMMANDS = [
    Command(
        "train-classifier",
        "train a text classifier on a fine-tuned language model's encoder",
        "ULMFiT stage 3: a concat-pooling classifier over the encoder of a fine-tuned language model (--lm), run "
        "over whole documents (BPT3C). The default schedule is the paper's: gradual unfreezing (head, then one "
        "more layer group per epoch, then all), discriminative lrs (group k from the top gets lr / 2.6^k), "
        "slanted triangular lrs, Adam betas (0.7, 0.99). Writes a self-contained classifier folder to --out "
        "after every epoch.",
        lambda a, s: api.train_classifier(a.data, a.out, a.lm, s),
        TrainClassifierSettings,
        [
            arg(
                "data",
                metavar="DATA",
                help="a tokenized labelled dataset folder (`ulmfit prepare` + `ulmfit tokenize`)",
            ),
            arg(
                "--lm",
                "--encoder",
                dest="lm",
                metavar="LM_DIR",
                help="the fine-tuned language-model folder whose encoder to start from (without it: a fresh encoder of "
                "--arch/--preset, for experiments)",
            ),
            arg("--out", required=True, metavar="DIR", help="the classifier folder to write"),
        ],
        "example: ulmfit train-classifier data/imdb --lm models/imdb-lm --out models/imdb-clas --max-minutes 60",
    ),
    Command(
        "self-train",
        "train a classifier from few labels and many unlabelled texts (self-training)",
        "For a dataset with few labelled documents and many unlabelled ones (IMDb's 50,000 unsup reviews; the "
        "tables given to `prepare table --unlabelled`, and train rows beyond --limit-train): train-classifier on "
        "the labels (round 0), then per --rounds entry: label the unlabelled documents with the latest classifier "
        "blended with a TF-IDF baseline trained on the same labels (--teacher-weight), take the N per class it is "
        "surest of (or a share of the pool), and train a new classifier from --lm on labels + those. The test "
        "split and the validation documents are never labelled nor trained on. --out receives the last round's "
        "classifier and self_train.json (each round's documents added, their agreement with labels held back by "
        "--limit-train, valid accuracy); earlier rounds in OUT/self-train/. Takes every train-classifier option; "
        "--resume continues a stopped run at its round.",
        lambda a, s: api.self_train(a.data, a.out, a.lm, s),
        SelfTrainSettings,
        [
            arg("data", metavar="DATA", help="a tokenized dataset folder with labelled and unlabelled documents"),
            arg(
                "--lm",
                "--encoder",
                dest="lm",
                required=True,
                metavar="LM_DIR",
                help="the fine-tuned language-model folder every round starts from",
            ),
            arg("--out", required=True, metavar="DIR", help="the classifier folder to write"),
        ],
        "example: ulmfit self-train runs/imdb/data --lm runs/imdb/lm --limit-train 100 --valid-frac 0.02 "
        "--rounds 5000,15000 --student-stages 1:1:4e-2,2:1:2e-2,all:2:5e-3 --out models/imdb-100",
    ),
    Command(
        "predict",
        "classify raw texts with a classifier folder",
        "Classify texts given as arguments, read from --input (.txt: one text per line; .csv/.tsv/.jsonl/.parquet: "
        "the --text-col column) or from stdin (one text per line). Prints one JSON object per text, in input "
        'order: {"label", "probability"} (multi-label: {"labels", "probabilities"}). An empty input '
        "prints nothing (and a note on stderr) and exits 0; an empty TEXT argument ('') is a text.",
        _predict,
        PredictSettings,
        [CLASSIFIER, arg("texts", nargs="*", metavar="TEXT", help="texts to classify")],
        "example: ulmfit predict models/imdb-clas 'What a wonderful film.' --int8",
    ),
    Command(
        "evaluate",
        "accuracy, macro-F1 and confusion matrix of a classifier on labelled data",
        "Evaluate a classifier (or the mean of several: --ensemble) on a labelled split of a prepared dataset "
        "folder, or on a labelled table file (--text-col/--label-col). Raw text goes through each folder's own "
        "tokenizer (a tokenized dataset with the same vocab is read directly). Prints one JSON line; --out "
        "writes evaluation.json and evaluation.png (the confusion matrix).",
        lambda a, s: print(json.dumps(api.evaluate(a.model_dir, a.data, s))),
        EvaluateSettings,
        [
            CLASSIFIER,
            arg("data", metavar="DATA", help="a prepared dataset folder, or a .csv/.tsv/.jsonl/.parquet file"),
        ],
        "example: ulmfit evaluate models/imdb-fwd data/imdb --ensemble models/imdb-bwd --out reports/",
    ),
    Command(
        "export-classifier",
        "copy a classifier folder's model files only, optionally marked for int8",
        "Write a serving copy of a classifier folder: config.json, model.safetensors, tokenizer.json, vocab.json "
        "(no checkpoints or logs). --int8 marks it to load with int8 dynamic quantized recurrent layers (2-4x "
        "faster on CPU; the accuracy cost is measured by `ulmfit evaluate --int8`). --onnx adds chunk.onnx and "
        'head.onnx: the BPT3C chunk step and the pooling head as ONNX graphs (config.json\'s "onnx" block says how '
        "to drive them), run by `predict/evaluate/serve --onnx` with onnxruntime; with --int8 they are quantized.",
        _export,
        ExportSettings,
        [CLASSIFIER, arg("out", metavar="OUT", help="the folder to write")],
    ),
    Command(
        "baseline",
        "TF-IDF + logistic regression on a prepared dataset: what you would get without the LM",
        "Train TF-IDF word 1-2-grams (sublinear tf) + logistic regression (scikit-learn) on the train split of a "
        "prepared dataset folder and report accuracy and macro-F1 on the test split (and, with --valid-frac, on the "
        "same held-out train documents train-classifier validates on). Takes seconds; prints one JSON line.",
        lambda a, s: print(json.dumps(api.baseline(a.data, s))),
        BaselineSettings,
        [arg("data", metavar="DATA", help="a prepared dataset folder (`ulmfit prepare`)")],
        "example: ulmfit baseline data/imdb --valid-frac 0.04",
    ),
]


def register(sub):
    add_commands(sub, COMMANDS)
