"""Tokenizer backends behind one interface: cleaned text chunks in, token strings out.

Both backends split on whitespace first and tokenize each whitespace-free chunk on its own (spaCy's
tokenizer and SentencePiece do exactly that internally), so a chunk's tokens never depend on its
neighbours. That lets callers cache tokens per distinct chunk: a corpus of 27M words has under a
million distinct chunks, so the slow tokenizer runs on a few percent of the text.
"""

from __future__ import annotations

import os
import re

from ..errors import UlmfitError
from .special import SPECIAL_TOKENS

BACKENDS = ("spacy", "sentencepiece")
_SPECIALS = frozenset(SPECIAL_TOKENS)
_SIMPLE = re.compile(r"([a-z]+)([.,!?;:]?)")


MAX_CHUNK = 64  # characters spaCy sees at once (see tokenize_chunks)


class SpacyTokenizer:
    """spaCy's rule-based tokenizer of a blank pipeline (no model to download)."""

    def __init__(self, lang="en"):
        import spacy

        self.lang = lang
        self.nlp = spacy.blank(lang)
        # Our special tokens are plain lower-case words; spaCy keeps them whole already, and the
        # special cases make that explicit should a language's rules ever split them.
        from spacy.symbols import ORTH

        for t in SPECIAL_TOKENS:
            self.nlp.tokenizer.add_special_case(t, [{ORTH: t}])
        self._rules = self.nlp.tokenizer.rules or {}

    @property
    def settings(self):
        return {"backend": "spacy", "lang": self.lang}

    def tokenize_chunks(self, chunks):
        """Whitespace-free strings -> list of token lists, one per chunk."""
        out = [None] * len(chunks)
        slow = []
        rules = self._rules
        for i, c in enumerate(chunks):
            # Fast path: a lower-case word, maybe with one trailing punctuation mark, that is no
            # special case: spaCy's answer is known (tests/test_tokenize.py checks it against spaCy).
            m = _SIMPLE.fullmatch(c)
            if m and c not in rules:
                w, p = m.groups()
                if not p:
                    out[i] = [c]
                    continue
                if w not in rules:
                    out[i] = [w, p]
                    continue
            slow.append(i)
        # One call per chunk, not one call on the joined chunks: spaCy's special-case matching can look
        # across a space (e.g. "'' swingin'"), and a chunk's tokens must not depend on its neighbours.
        tk = self.nlp.tokenizer
        for i in slow:
            c = chunks[i]
            # spaCy peels prefixes/suffixes one at a time, rescanning the rest: quadratic in a chunk's
            # length ("!?!?..." of 40k characters took 98 s). Longer chunks are no words: cut them first.
            out[i] = [t.text for k in range(0, len(c), MAX_CHUNK) for t in tk(c[k : k + MAX_CHUNK])]
        return out


class SentencePieceTokenizer:
    """A SentencePiece model trained on the corpus (`train_sentencepiece`)."""

    def __init__(self, model_path):
        import sentencepiece as spm

        self.model_path = str(model_path)
        self.sp = spm.SentencePieceProcessor(model_file=self.model_path)

    @property
    def settings(self):
        return {"backend": "sentencepiece", "model": "spm.model"}

    def tokenize_chunks(self, chunks):
        # Special tokens stand alone (no word-start piece before them), as with spaCy.
        out = [[c] if c in _SPECIALS else None for c in chunks]
        rest = [i for i, o in enumerate(out) if o is None]
        for i, pieces in zip(rest, self.sp.encode([chunks[i] for i in rest], out_type=str)):
            out[i] = pieces
        return out


def train_sentencepiece(texts, out_dir, vocab_size=30000, model_type="unigram", max_sentences=2_000_000):
    """Train SentencePiece on cleaned texts; writes out_dir/spm.model and returns its path.

    Our special tokens are user-defined symbols so they stay whole pieces.
    """
    import io

    import sentencepiece as spm

    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    n = 0

    def sentences():
        nonlocal n
        for t in texts:
            if t:
                n += 1
                yield t

    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=0.9999,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            user_defined_symbols=SPECIAL_TOKENS,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            unk_piece="<unk_sp>",
            hard_vocab_limit=False,
            max_sentence_length=1 << 16,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise UlmfitError(f"SentencePiece training failed: {e}") from None
    path = out_dir / "spm.model"
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(model.getvalue())
    return path


_LANG = re.compile(r"[a-z]{2,3}")  # spaCy's language codes (en, grc, xx, ...): never a path or a dotted name


def check_tokenizer_settings(settings, where, prefix: str = ""):
    """Tokenizer settings read from `where` (tokenizer.json; a store's manifest.json under "tokenizer": prefix
    "tokenizer."): the SentencePiece model must be a file inside the folder, the language a language code."""
    from ..errors import InputError
    from ..io import plain_file_name

    if not isinstance(settings, dict):
        raise InputError(
            f"expected an object of tokenizer settings, got {type(settings).__name__}",
            path=where,
            field=prefix.rstrip(".") or None,
        )
    if "model" in settings:
        plain_file_name(settings["model"], where, f"{prefix}model")
    lang = settings.get("lang", "en")
    if not isinstance(lang, str) or not _LANG.fullmatch(lang):
        raise InputError(f"expected a language code such as 'en', got {lang!r}", path=where, field=f"{prefix}lang")
    return settings


def make_tokenizer(settings: dict, folder=None, where=None, prefix: str = ""):
    """The tokenizer of `settings`; a SentencePiece model is read from `folder`. where/prefix: the file the
    settings came from and their field prefix there (see check_tokenizer_settings), named by errors."""
    from ..errors import InputError

    where = where or folder or "tokenizer settings"
    check_tokenizer_settings(settings, where, prefix)
    backend = settings.get("backend", "spacy")
    if backend == "spacy":
        lang = settings.get("lang", "en")
        try:
            return SpacyTokenizer(lang)
        except ImportError as e:  # spaCy's "Can't import language": a settings error, not a traceback
            raise InputError(f"spaCy has no language {lang!r} ({e})", path=where, field=f"{prefix}lang") from None
    if backend == "sentencepiece":
        if folder is None:
            raise UlmfitError("a SentencePiece tokenizer needs the folder holding spm.model")
        from pathlib import Path

        path = Path(folder) / settings.get("model", "spm.model")
        if path.is_symlink():  # a plain name can still be a link out of the folder: never read (or copy) through it
            raise InputError(
                f"{path} is a symbolic link (to {os.readlink(path)}): the model file must be in the folder",
                path=where,
                field=f"{prefix}model",
            )
        if not path.exists():
            raise UlmfitError(f"{path}: SentencePiece model missing")
        return SentencePieceTokenizer(path)
    raise UlmfitError(f"unknown tokenizer backend {backend!r} (choose from {', '.join(BACKENDS)})")
