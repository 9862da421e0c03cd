"""`ulmfit prepare {imdb,table,folder,corpus}`: a source -> a prepared dataset folder."""

from __future__ import annotations

import argparse

from ..data import sources
from .options import add_settings, settings_from


def register(sub):
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "prepare",
        help="read a corpus into a prepared dataset folder",
        formatter_class=fmt,
        description="Read documents from a source into DIR: documents.jsonl, labels, the classification "
        "splits (train/test[/valid]) and a language-model split (lm_train/lm_valid) over every text.\n"
        "Empty documents are skipped and counted; any other bad input stops with the file and line.",
    )
    kinds = p.add_subparsers(dest="source_kind", metavar="SOURCE_KIND", required=True)
    for spec in (sources.get(n) for n in sources.names()):  # one subcommand per registered source
        k = kinds.add_parser(spec.name, help=spec.help, description=spec.description, formatter_class=fmt)
        k.add_argument("source", metavar=spec.source_metavar, nargs=spec.source_nargs, help=spec.source_help)
        k.add_argument("--out", required=True, metavar="DIR", help="the prepared dataset folder to write")
        add_settings(k, spec.settings)
        k.set_defaults(func=_prepare, settings=spec.settings)


def _prepare(a):
    from ..api import prepare
    from ..data.dataset import summary

    meta = prepare(a.source_kind, a.source, a.out, settings_from(a, a.settings))
    print(f"{'reused' if meta['reused'] else 'prepared'} {a.out}: {summary(meta)}")
    return 0
