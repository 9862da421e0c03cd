"""`ulmfit prepare {imdb,table,folder,corpus}`: a source -> a prepared dataset folder."""

from __future__ import annotations

import argparse


def _common(p, valid=True):
    p.add_argument("--out", required=True, metavar="DIR", help="the prepared dataset folder to write")
    p.add_argument("--lm-valid-frac", type=float, default=0.1,
                   help="share of all texts held out to validate the language model (default 0.1)")
    if valid:
        p.add_argument("--valid-frac", type=float, default=0.0,
                       help="share of the labelled training rows held out as a `valid` split (default 0: "
                            "the test set, if any, is used for validation)")
    p.add_argument("--seed", type=int, default=42, help="seed of the random splits (default 42)")
    p.add_argument("--force", action="store_true", help="prepare again even if DIR already matches the inputs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub):
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "prepare", help="read a corpus into a prepared dataset folder", formatter_class=fmt,
        description="Read documents from a source into DIR: documents.jsonl, labels, the classification "
        "splits (train/test[/valid]) and a 90/10 language-model split (lm_train/lm_valid) over every text.\n"
        "Empty documents are skipped and counted; any other bad input stops with the file and line.")
    kinds = p.add_subparsers(dest="source_kind", metavar="SOURCE_KIND", required=True)

    q = kinds.add_parser("imdb", help="IMDb reviews: aclImdb folder, aclImdb_v1.tar.gz or URL",
                         description="IMDb Large Movie Review Dataset: 25k labelled train, 25k labelled test, "
                         "50k unlabelled reviews (classes neg/pos).")
    q.add_argument("source", nargs="?", default=None,
                   help="an aclImdb folder, the aclImdb_v1.tar.gz file, or a URL (default: the official "
                   "Stanford URL, downloaded once into ~/.cache/ulmfit or $ULMFIT_CACHE)")
    _common(q, valid=False)
    q.set_defaults(func=_imdb)

    t = kinds.add_parser("table", help="CSV/TSV, Parquet or JSON Lines files with text and label columns",
                         description="Tables chosen by extension: .csv, .tsv, .parquet, .jsonl (.gz/.xz too). "
                         "Several --text-col make multi-field documents (`xxfld N` before field N).")
    t.add_argument("train", help="the labelled training table")
    t.add_argument("--test", help="a labelled test table (same columns)")
    t.add_argument("--unlabelled", nargs="+", default=[], metavar="FILE",
                   help="tables of texts without labels, for the language model only")
    t.add_argument("--text-col", action="append", required=True, metavar="COL",
                   help="a text column (repeat for several fields)")
    t.add_argument("--label-col", action="append", metavar="COL",
                   help="the label column (omit for unlabelled data); repeat it for multi-label data held as "
                   "0/1 columns, one per label (the column names become the classes)")
    t.add_argument("--label-sep", metavar="SEP",
                   help="multi-label: the --label-col cell holds several labels separated by SEP (e.g. '|'); "
                   "an empty cell means no label applies")
    _common(t)
    t.set_defaults(func=_table)

    f = kinds.add_parser("folder", help="a folder per class: DIR/CLASS/*.txt or DIR/{train,test}/CLASS/*.txt",
                         description="One text file per document, one sub-folder per class; a class folder named "
                         "unsup or unlabelled holds texts without a label.")
    f.add_argument("folder", help="the root folder")
    _common(f)
    f.set_defaults(func=_folder)

    c = kinds.add_parser("corpus", help="unlabelled text for LM pretraining (JSONL with a text field, or .txt)",
                         description="JSON Lines with a text field, or plain text with one document per line; "
                         ".gz/.xz compressed files are read as they are.")
    c.add_argument("files", nargs="+", help="corpus files, e.g. ../shared/data/general-en/*.jsonl.xz")
    c.add_argument("--text-field", default="text", help="the JSON field holding the text (default: text)")
    c.add_argument("--max-docs", type=int, help="read at most this many documents")
    c.add_argument("--max-words", type=int, help="stop after about this many words (a slice for a quick run)")
    _common(c, valid=False)
    c.set_defaults(func=_corpus)


def _report(meta, cached, out):
    from .dataset import summary

    print(f"{'reused' if cached else 'prepared'} {out}: {summary(meta)}")
    return 0


def _imdb(a):
    from .imdb import prepare_imdb

    meta, cached = prepare_imdb(a.source, a.out, lm_valid_frac=a.lm_valid_frac, seed=a.seed, force=a.force,
                                progress=not a.quiet)
    return _report(meta, cached, a.out)


def _table(a):
    from .table import prepare_table

    meta, cached = prepare_table(a.train, a.out, a.text_col, label_col=a.label_col, label_sep=a.label_sep, test=a.test,
                                 unlabelled=a.unlabelled, valid_frac=a.valid_frac, lm_valid_frac=a.lm_valid_frac,
                                 seed=a.seed, force=a.force, progress=not a.quiet)
    return _report(meta, cached, a.out)


def _folder(a):
    from .table import prepare_folder

    meta, cached = prepare_folder(a.folder, a.out, valid_frac=a.valid_frac, lm_valid_frac=a.lm_valid_frac,
                                  seed=a.seed, force=a.force, progress=not a.quiet)
    return _report(meta, cached, a.out)


def _corpus(a):
    from .table import prepare_corpus

    meta, cached = prepare_corpus(a.files, a.out, text_field=a.text_field, lm_valid_frac=a.lm_valid_frac,
                                  seed=a.seed, max_docs=a.max_docs, max_words=a.max_words, force=a.force,
                                  progress=not a.quiet)
    return _report(meta, cached, a.out)
