"""TextEncoder: raw text -> token ids with a fixed vocab, exactly as `ulmfit tokenize` made them.

Travels with every model folder (`tokenizer.json` + `vocab.json`, plus `spm.model` for SentencePiece)
so that a copied folder can still turn raw text into the ids its model was trained on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UlmfitError
from ..io import atomic_path, plain_file_name, read_json, write_json
from ..settings import TokenizeSettings
from .processor import TextProcessor
from .special import UNK_ID
from .tokenizers import make_tokenizer
from .vocab import Vocab


class TextEncoder:
    def __init__(self, settings: dict, vocab: Vocab, folder=None, where=None, prefix: str = ""):
        self.settings = dict(settings)
        self.vocab = vocab
        self.folder = Path(folder) if folder is not None else None
        self._where = (where, prefix)  # the file the settings were read from, for errors
        self._processor: TextProcessor | None = None

    @property
    def processor(self) -> TextProcessor:
        # made on first use: saving or loading a model (training from ids, on a machine without spaCy say)
        # never needs the tokenizer
        if self._processor is None:
            stoi = self.vocab.stoi
            tokenizer = make_tokenizer(self.settings, self.folder, *self._where)
            self._processor = TextProcessor(tokenizer, lambda t: stoi.get(t, UNK_ID))
        return self._processor

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @classmethod
    def from_store(cls, store):
        from .tokenizers import check_tokenizer_settings

        tokens = store.root / "tokens"
        where = (tokens / "manifest.json", "tokenizer.")
        return cls(check_tokenizer_settings(store.tokenizer_settings, *where), store.vocab, tokens, *where)

    @classmethod
    def from_texts(cls, texts, max_vocab=TokenizeSettings.max_vocab, min_freq=TokenizeSettings.min_freq, settings=None):
        """A vocab counted from `texts` (a list) with the default spaCy settings; for quick experiments."""
        from .pipeline import tokenizer_settings
        from .processor import TokenTable
        from .special import SPECIAL_TOKENS

        settings = settings or tokenizer_settings(TokenizeSettings.tokenizer, max_vocab, min_freq)
        table = TokenTable(SPECIAL_TOKENS)
        proc = TextProcessor(make_tokenizer(settings), table)
        import numpy as np

        flat, _ = proc.encode_batch(list(texts))
        counts = np.bincount(flat, minlength=len(table.stoi))
        itos = list(table.stoi)
        vocab = Vocab.from_counts({itos[i]: int(c) for i, c in enumerate(counts)}, max_vocab, min_freq)
        return cls(settings, vocab)

    def encode(self, texts):
        """A list of texts (str, or list of field strings) -> list of int64 arrays, each starting with bos."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts")
        return self.processor.encode(list(texts))

    def decode(self, ids) -> str:
        return self.vocab.textify(ids)

    def save(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "tokenizer.json", self.settings)
        self.vocab.save(folder / "vocab.json")
        model = self.settings.get("model")
        if self.settings.get("backend") == "sentencepiece" and model:
            plain_file_name(model, folder / "tokenizer.json", "model")  # never written outside `folder`
            src = Path(self.tokenizer.model_path)
            if src.resolve() != (folder / model).resolve():
                with atomic_path(folder / model) as tmp:
                    shutil.copyfile(src, tmp)

    @classmethod
    def load(cls, folder):
        folder = Path(folder)
        for name in ("tokenizer.json", "vocab.json"):
            if not (folder / name).exists():
                raise UlmfitError(f"{folder / name}: missing (a model folder needs its tokenizer settings and vocab)")
        from .tokenizers import check_tokenizer_settings

        where = folder / "tokenizer.json"
        return cls(check_tokenizer_settings(read_json(where), where), Vocab.load(folder / "vocab.json"), folder, where)
