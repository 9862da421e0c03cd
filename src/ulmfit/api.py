"""The stage functions: every ULMFiT stage from Python, with the same artifacts as the `ulmfit` commands.

    import ulmfit
    from ulmfit.settings import FinetuneSettings, TrainClassifierSettings
    ulmfit.prepare("imdb", "aclImdb_v1.tar.gz", "data/imdb")
    ulmfit.tokenize("data/imdb")
    ulmfit.finetune_lm("data/imdb", "en-qrnn", "lm/imdb", FinetuneSettings(epochs=2))
    ulmfit.train_classifier("data/imdb", "clas/imdb", lm="lm/imdb")
    ulmfit.evaluate("clas/imdb", "data/imdb")["accuracy"]

Each takes data/model paths and a settings object (`ulmfit.settings`; None: the defaults) and returns
what the command prints: a summary dict, a history (one dict per epoch), predictions or a report.
They live in `ulmfit.stages`; the commands (`ulmfit.cli`) and `ulmfit run` (`ulmfit.run`) call exactly these.
"""

from __future__ import annotations

from .stages.baseline import baseline
from .stages.classifier import train_classifier
from .stages.data import prepare, tokenize
from .stages.evaluate import evaluate, export_classifier, predict
from .stages.lm import evaluate_lm, finetune_lm, generate, lr_find_lm, pretrain
from .stages.self_train import self_train

__all__ = [
    "prepare",
    "tokenize",
    "pretrain",
    "finetune_lm",
    "evaluate_lm",
    "lr_find_lm",
    "generate",
    "train_classifier",
    "self_train",
    "evaluate",
    "predict",
    "export_classifier",
    "baseline",
]
