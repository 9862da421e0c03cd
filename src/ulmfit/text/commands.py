"""`ulmfit tokenize`: a prepared dataset folder -> its token store."""


def register(sub):
    p = sub.add_parser(
        "tokenize", help="clean, tokenize and numericalize a prepared dataset",
        description="Apply the cleaning rules, tokenize every document in parallel (spaCy or SentencePiece), "
        "build the vocab from the language-model training texts and write DIR/tokens/: vocab.json, ids.npy "
        "(flat token ids), offsets.npy (document boundaries), manifest.json. Reuses DIR/tokens/ when the "
        "documents and settings are unchanged.")
    p.add_argument("dir", metavar="DIR", help="a folder written by `ulmfit prepare`")
    p.add_argument("--tokenizer", choices=["spacy", "sentencepiece"], default="spacy",
                   help="tokenizer backend (default spacy: blank English rules; sentencepiece: a unigram model "
                   "trained on the LM training texts)")
    p.add_argument("--max-vocab", type=int, default=60000, help="most tokens kept, specials aside (default 60000)")
    p.add_argument("--min-freq", type=int, default=3, help="least count for a token to be kept (default 3)")
    p.add_argument("--sp-vocab-size", type=int, help="SentencePiece pieces to learn (default min(max-vocab, 30000))")
    p.add_argument("--workers", type=int, help="processes to tokenize with (default: all cores)")
    p.add_argument("--force", action="store_true", help="tokenize again even if the cached store matches")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_tokenize)


def _tokenize(a):
    from .pipeline import tokenize_dataset

    store, cached = tokenize_dataset(a.dir, backend=a.tokenizer, max_vocab=a.max_vocab, min_freq=a.min_freq,
                                     workers=a.workers, force=a.force, progress=not a.quiet,
                                     sp_vocab_size=a.sp_vocab_size)
    m = store.manifest
    print(f"{'reused' if cached else 'wrote'} {store.root / 'tokens'}: {m['n_docs']:,} documents, "
          f"{m['n_tokens']:,} tokens, vocab {m['vocab_size']:,} ({m['dtype']}), unknown {100 * m['unk_rate']:.2f}%")
    return 0
