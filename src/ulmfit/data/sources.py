"""The data sources `prepare` reads: one registry entry per kind, which drives `ulmfit.prepare`, the
`ulmfit prepare KIND` commands and a run config's [data] kind together.

A new source is one `register(SourceSpec(...))`: a settings class (a `PrepareSettings` subclass: its fields
become the command's flags and the [data] keys), a reader that writes the dataset folder, and its help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UlmfitError
from ..settings import CorpusSettings, FolderSettings, ImdbSettings, PrepareSettings, TableSettings


@dataclass(frozen=True)
class SourceSpec:
    """name: `ulmfit prepare NAME` and [data] kind = NAME. read(source, out, settings) -> (dataset.json's
    dict, reused). source: its metavar, nargs and help on the command line. labelled: gives classes (what
    `ulmfit run` needs: a corpus of unlabelled text is for pretraining only)."""

    name: str
    settings: type[PrepareSettings]
    read: Callable[..., tuple[dict, bool]]
    help: str
    description: str
    source_metavar: str
    source_help: str
    source_nargs: str | None = None
    labelled: bool = True


_SOURCES: dict[str, SourceSpec] = {}


def register(spec: SourceSpec) -> SourceSpec:
    if spec.name in _SOURCES:
        raise UlmfitError(f"a data source named {spec.name!r} is already registered")
    _SOURCES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _SOURCES.pop(name, None)


def get(name: str) -> SourceSpec:
    if name not in _SOURCES:
        raise UlmfitError(f"unknown source kind {name!r} (choose from: {', '.join(_SOURCES)})")
    return _SOURCES[name]


def names(labelled_only: bool = False) -> list[str]:
    return [n for n, s in _SOURCES.items() if s.labelled or not labelled_only]


def _common(s: PrepareSettings) -> dict:
    return dict(lm_valid_frac=s.lm_valid_frac, seed=s.seed, force=s.force, progress=not s.quiet)


def _imdb(source, out, s: ImdbSettings):
    from .imdb import prepare_imdb

    return prepare_imdb(source, out, **_common(s))


def _table(source, out, s: TableSettings):
    from .table import prepare_table

    label_col = s.label_col[0] if s.label_col and len(s.label_col) == 1 else s.label_col
    return prepare_table(
        source,
        out,
        s.text_col,
        label_col=label_col,
        label_sep=s.label_sep,
        test=s.test,
        unlabelled=s.unlabelled,
        valid_frac=s.valid_frac,
        tsv_quotes=s.tsv_quotes,
        **_common(s),
    )


def _folder(source, out, s: FolderSettings):
    from .table import prepare_folder

    return prepare_folder(source, out, valid_frac=s.valid_frac, **_common(s))


def _corpus(source, out, s: CorpusSettings):
    from .table import prepare_corpus

    files = [source] if isinstance(source, str) else list(source)
    return prepare_corpus(files, out, text_field=s.text_field, max_docs=s.max_docs, max_words=s.max_words, **_common(s))


register(
    SourceSpec(
        "imdb",
        ImdbSettings,
        _imdb,
        help="IMDb reviews: aclImdb folder, aclImdb_v1.tar.gz or URL",
        description="IMDb Large Movie Review Dataset: 25k labelled train, 25k labelled test, 50k unlabelled reviews "
        "(classes neg/pos).",
        source_metavar="source",
        source_nargs="?",
        source_help="an aclImdb folder, the aclImdb_v1.tar.gz file, or a URL (default: the official Stanford URL, "
        "downloaded once into ~/.cache/ulmfit or $ULMFIT_CACHE)",
    )
)
register(
    SourceSpec(
        "table",
        TableSettings,
        _table,
        help="CSV/TSV, Parquet or JSON Lines files with text and label columns",
        description="Tables chosen by extension: .csv, .tsv, .parquet, .jsonl (.gz/.xz too). Several --text-col make "
        "multi-field documents (`xxfld N` before field N). CSV quoting is read strictly (a quote that never closes is "
        "an error naming its line); a TSV field is its text as it stands unless --tsv-quotes. Every file must give at "
        "least one document, and --test must not be the training table.",
        source_metavar="train",
        source_help="the labelled training table",
    )
)
register(
    SourceSpec(
        "folder",
        FolderSettings,
        _folder,
        help="a folder per class: DIR/CLASS/*.txt or DIR/{train,test}/CLASS/*.txt",
        description="One text file per document, one sub-folder per class; a class folder named unsup or unlabelled "
        "holds texts without a label.",
        source_metavar="folder",
        source_help="the root folder",
    )
)
register(
    SourceSpec(
        "corpus",
        CorpusSettings,
        _corpus,
        help="unlabelled text for LM pretraining (JSONL with a text field, or .txt)",
        description="JSON Lines with a text field, or plain text with one document per line; .gz/.xz compressed files "
        "are read as they are.",
        source_metavar="files",
        source_nargs="+",
        source_help="corpus files, e.g. ../shared/data/general-en/*.jsonl.xz",
        labelled=False,
    )
)
