"""The data stages: a source read into a prepared dataset folder, and its texts tokenized into ids."""

from __future__ import annotations

from ..settings import PrepareSettings, TokenizeSettings


def prepare(kind: str, source, out, settings: PrepareSettings | None = None) -> dict:
    """Read a source into a prepared dataset folder `out` -> its dataset.json (with "reused": whether an
    up-to-date folder was kept). kind: a registered source (`ulmfit.data.sources`: imdb (aclImdb folder,
    tarball or URL; None: the official URL), table (the train table: CSV/TSV/Parquet/JSONL), folder (a
    folder per class), corpus (a list of files of unlabelled text)). settings: the kind's settings class."""
    from ..data import sources
    from ..errors import UlmfitError
    from ..io import check_output_dir

    spec = sources.get(kind)
    s = settings or spec.settings()
    if not isinstance(s, spec.settings):
        raise UlmfitError(f"prepare {kind} takes {spec.settings.__name__}, not {type(s).__name__}")
    check_output_dir(out)  # before a download or a read of the source
    meta, cached = spec.read(source, out, s)
    return {**meta, "reused": bool(cached)}


def tokenize(data, settings: TokenizeSettings | None = None):
    """Clean, tokenize and numericalize a prepared dataset folder into data/tokens/ -> (TokenStore, reused)."""
    from ..text.pipeline import tokenize_dataset

    s = settings or TokenizeSettings()
    return tokenize_dataset(
        data,
        backend=s.tokenizer,
        max_vocab=s.max_vocab,
        min_freq=s.min_freq,
        workers=s.workers,
        force=s.force,
        progress=not s.quiet,
        sp_vocab_size=s.sp_vocab_size,
        keep=_keep_vocab(s.keep_vocab),
    )


def _keep_vocab(spec):
    """TokenizeSettings.keep_vocab -> a Vocab: a vocab.json, or a language-model folder / shipped name's."""
    if spec is None:
        return None
    from pathlib import Path

    from ..errors import UlmfitError
    from ..pretrained import resolve_lm
    from ..text.vocab import Vocab

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
