"""`ulmfit tokenize`: a prepared dataset folder -> its token store."""

from __future__ import annotations

from .. import api
from ..settings import TokenizeSettings
from .options import Command, add_commands, arg


def _tokenize(a, s):
    store, cached = api.tokenize(a.dir, s)
    m = store.manifest
    print(
        f"{'reused' if cached else 'wrote'} {store.root / 'tokens'}: {m['n_docs']:,} documents, "
        f"{m['n_tokens']:,} tokens, vocab {m['vocab_size']:,} ({m['dtype']}), unknown {100 * m['unk_rate']:.2f}%"
    )


COMMANDS = [
    Command(
        "tokenize",
        "clean, tokenize and numericalize a prepared dataset",
        "Apply the cleaning rules, tokenize every document in parallel (spaCy or SentencePiece), build the vocab "
        "from the language-model training texts and write DIR/tokens/: vocab.json, ids.npy (flat token ids), "
        "offsets.npy (document boundaries), manifest.json. Reuses DIR/tokens/ when the documents and settings are "
        "unchanged.",
        _tokenize,
        TokenizeSettings,
        [arg("dir", metavar="DIR", help="a folder written by `ulmfit prepare`")],
    )
]


def register(sub):
    add_commands(sub, COMMANDS)
