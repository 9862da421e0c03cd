"""`ulmfit prepare {imdb,table,folder,corpus}`: a source -> a prepared dataset folder."""

from __future__ import annotations

import argparse

from ..settings import CorpusSettings, FolderSettings, ImdbSettings, TableSettings
from .options import add_settings, settings_from


def register(sub):
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "prepare", help="read a corpus into a prepared dataset folder", formatter_class=fmt,
        description="Read documents from a source into DIR: documents.jsonl, labels, the classification "
        "splits (train/test[/valid]) and a language-model split (lm_train/lm_valid) over every text.\n"
        "Empty documents are skipped and counted; any other bad input stops with the file and line.")
    kinds = p.add_subparsers(dest="source_kind", metavar="SOURCE_KIND", required=True)

    q = kinds.add_parser("imdb", help="IMDb reviews: aclImdb folder, aclImdb_v1.tar.gz or URL",
                         description="IMDb Large Movie Review Dataset: 25k labelled train, 25k labelled test, "
                         "50k unlabelled reviews (classes neg/pos).")
    q.add_argument("source", nargs="?",
                   help="an aclImdb folder, the aclImdb_v1.tar.gz file, or a URL (default: the official "
                   "Stanford URL, downloaded once into ~/.cache/ulmfit or $ULMFIT_CACHE)")
    q.set_defaults(settings=ImdbSettings)

    t = kinds.add_parser("table", help="CSV/TSV, Parquet or JSON Lines files with text and label columns",
                         description="Tables chosen by extension: .csv, .tsv, .parquet, .jsonl (.gz/.xz too). "
                         "Several --text-col make multi-field documents (`xxfld N` before field N). CSV quoting is "
                         "read strictly (a quote that never closes is an error naming its line); a TSV field is "
                         "its text as it stands unless --tsv-quotes. Every file must give at least one document, "
                         "and --test must not be the training table.")
    t.add_argument("source", metavar="train", help="the labelled training table")
    t.set_defaults(settings=TableSettings)

    f = kinds.add_parser("folder", help="a folder per class: DIR/CLASS/*.txt or DIR/{train,test}/CLASS/*.txt",
                         description="One text file per document, one sub-folder per class; a class folder named "
                         "unsup or unlabelled holds texts without a label.")
    f.add_argument("source", metavar="folder", help="the root folder")
    f.set_defaults(settings=FolderSettings)

    c = kinds.add_parser("corpus", help="unlabelled text for LM pretraining (JSONL with a text field, or .txt)",
                         description="JSON Lines with a text field, or plain text with one document per line; "
                         ".gz/.xz compressed files are read as they are.")
    c.add_argument("source", metavar="files", nargs="+", help="corpus files, e.g. ../shared/data/general-en/*.jsonl.xz")
    c.set_defaults(settings=CorpusSettings)

    for k in (q, t, f, c):
        k.add_argument("--out", required=True, metavar="DIR", help="the prepared dataset folder to write")
        add_settings(k, k.get_default("settings"))
        k.set_defaults(func=_prepare)


def _prepare(a):
    from ..api import prepare
    from ..data.dataset import summary

    meta = prepare(a.source_kind, a.source, a.out, settings_from(a, a.settings))
    print(f"{'reused' if meta['reused'] else 'prepared'} {a.out}: {summary(meta)}")
    return 0
