"""`ulmfit tokenize`: a prepared dataset folder -> its token store."""

from __future__ import annotations

from ..settings import TokenizeSettings
from .options import add_settings, settings_from


def register(sub):
    p = sub.add_parser(
        "tokenize", help="clean, tokenize and numericalize a prepared dataset",
        description="Apply the cleaning rules, tokenize every document in parallel (spaCy or SentencePiece), "
        "build the vocab from the language-model training texts and write DIR/tokens/: vocab.json, ids.npy "
        "(flat token ids), offsets.npy (document boundaries), manifest.json. Reuses DIR/tokens/ when the "
        "documents and settings are unchanged.")
    p.add_argument("dir", metavar="DIR", help="a folder written by `ulmfit prepare`")
    add_settings(p, TokenizeSettings)
    p.set_defaults(func=_tokenize)


def _tokenize(a):
    from ..api import tokenize

    store, cached = tokenize(a.dir, settings_from(a, TokenizeSettings))
    m = store.manifest
    print(f"{'reused' if cached else 'wrote'} {store.root / 'tokens'}: {m['n_docs']:,} documents, "
          f"{m['n_tokens']:,} tokens, vocab {m['vocab_size']:,} ({m['dtype']}), unknown {100 * m['unk_rate']:.2f}%")
    return 0
