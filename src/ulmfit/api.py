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
The commands (`ulmfit.cli`) and `ulmfit run` (`ulmfit.run`) call exactly these.
"""

from __future__ import annotations

from .baseline import baseline
from .classifier.evaluate import evaluate, export_classifier, predict
from .classifier.self_train import self_train
from .classifier.train import train_classifier
from .settings import (CorpusSettings, FolderSettings, ImdbSettings, PrepareSettings, TableSettings,
                       TokenizeSettings)
from .training.lm_stages import evaluate_lm, finetune_lm, lr_find_lm, pretrain

__all__ = ["prepare", "tokenize", "pretrain", "finetune_lm", "evaluate_lm", "lr_find_lm", "train_classifier",
           "self_train", "evaluate", "predict", "export_classifier", "baseline"]

PREPARE_KINDS: dict[str, type[PrepareSettings]] = {"imdb": ImdbSettings, "table": TableSettings,
                                                   "folder": FolderSettings, "corpus": CorpusSettings}


def prepare(kind: str, source, out, settings: PrepareSettings | None = None) -> dict:
    """Read a source into a prepared dataset folder `out` -> its dataset.json (with "reused": whether an
    up-to-date folder was kept). kind: imdb (aclImdb folder, tarball or URL; None: the official URL),
    table (the train table: CSV/TSV/Parquet/JSONL), folder (a folder per class) or corpus (a list of
    files of unlabelled text). settings: the kind's class in `ulmfit.settings` (ImdbSettings, ...)."""
    from .data.imdb import prepare_imdb
    from .data.table import prepare_corpus, prepare_folder, prepare_table
    from .errors import UlmfitError
    from .io import check_output_dir

    if kind not in PREPARE_KINDS:
        raise UlmfitError(f"unknown source kind {kind!r} (choose from: {', '.join(PREPARE_KINDS)})")
    s = settings or PREPARE_KINDS[kind]()
    if not isinstance(s, PREPARE_KINDS[kind]):
        raise UlmfitError(f"prepare {kind} takes {PREPARE_KINDS[kind].__name__}, not {type(s).__name__}")
    check_output_dir(out)  # before a download or a read of the source
    common = dict(lm_valid_frac=s.lm_valid_frac, seed=s.seed, force=s.force, progress=not s.quiet)
    if isinstance(s, ImdbSettings):  # one of the four, by the check above
        meta, cached = prepare_imdb(source, out, **common)
    elif isinstance(s, TableSettings):
        label_col = s.label_col[0] if s.label_col and len(s.label_col) == 1 else s.label_col
        meta, cached = prepare_table(source, out, s.text_col, label_col=label_col, label_sep=s.label_sep,
                                     test=s.test, unlabelled=s.unlabelled, valid_frac=s.valid_frac,
                                     tsv_quotes=s.tsv_quotes, **common)
    elif isinstance(s, FolderSettings):
        meta, cached = prepare_folder(source, out, valid_frac=s.valid_frac, **common)
    elif isinstance(s, CorpusSettings):
        files = [source] if isinstance(source, str) else list(source)
        meta, cached = prepare_corpus(files, out, text_field=s.text_field, max_docs=s.max_docs,
                                      max_words=s.max_words, **common)
    return {**meta, "reused": bool(cached)}


def tokenize(data, settings: TokenizeSettings | None = None):
    """Clean, tokenize and numericalize a prepared dataset folder into data/tokens/ -> (TokenStore, reused)."""
    from .text.pipeline import tokenize_dataset

    s = settings or TokenizeSettings()
    return tokenize_dataset(data, backend=s.tokenizer, max_vocab=s.max_vocab, min_freq=s.min_freq, workers=s.workers,
                            force=s.force, progress=not s.quiet, sp_vocab_size=s.sp_vocab_size,
                            keep=_keep_vocab(s.keep_vocab))


def _keep_vocab(spec):
    """TokenizeSettings.keep_vocab -> a Vocab: a vocab.json, or a language-model folder / shipped name's."""
    if spec is None:
        return None
    from pathlib import Path

    from .errors import UlmfitError
    from .pretrained import resolve_lm
    from .text.vocab import Vocab

    path = Path(spec)
    if path.suffix == ".json" and path.is_file():
        return Vocab.load(path)
    try:
        vocab = Path(resolve_lm(spec)) / "vocab.json"
    except UlmfitError as e:
        raise UlmfitError(f"keep_vocab: {e}") from None
    if not vocab.is_file():
        raise UlmfitError(f"keep_vocab: {vocab.parent} has no vocab.json (not a language-model folder)")
    return Vocab.load(vocab)
