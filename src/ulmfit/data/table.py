"""Tables (CSV/TSV, Parquet, JSON Lines) and unlabelled corpora -> prepared datasets.

Readers stream rows (CSV in lines, Parquet in record batches, JSONL line by line) and report bad input
with the file, line (or row) and field it sits in.
"""

from __future__ import annotations

import csv
import decimal
import gzip
import json
import lzma
import math
import re
import zlib
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import InputError, UlmfitError
from ..settings import CorpusSettings, PrepareSettings
from .dataset import DatasetWriter, cached_dataset, check_out_not_inside, file_key, folder_key

csv.field_size_limit(1 << 30)


def _open_binary(path: Path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def file_format(path) -> str:
    name = Path(path).name.lower()
    for suffix in (".gz", ".xz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for ext, fmt in (
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".tab", "tsv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".txt", "text"),
    ):
        if name.endswith(ext):
            return fmt
    raise UlmfitError(f"{path}: unknown file type (use .csv, .tsv, .parquet, .jsonl[.gz|.xz] or .txt[.gz|.xz])")


# What a damaged or cut-short .gz/.xz file raises while it is read (a gzip CRC that differs and "not a gzip
# file" are gzip.BadGzipFile, an OSError).
_DAMAGED = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


def _decoded_lines(path, counter):
    """Lines of a (maybe compressed) file as str; a bad byte is reported with its line number. A UTF-8
    byte-order mark opening the file (as Excel writes CSV) is dropped, the same for every format."""
    with _open_binary(path) as f:
        lines = enumerate(f, 1)
        while True:
            try:
                i, raw = next(lines)
            except StopIteration:
                return
            except _DAMAGED as e:
                raise InputError(
                    f"the compressed file is damaged or cut short ({e})", path=path, line=counter[0] + 1
                ) from None
            counter[0] = i
            try:
                yield raw.decode("utf-8").removeprefix("\ufeff") if i == 1 else raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte {e.start} of the line)", path=path, line=i) from None


def _csv_error(e, path, fmt, delimiter, quoted, start, header):
    """A csv.Error as an InputError naming the line (and, for a quote that never closes, the field) it is at."""
    what = str(e)
    if "unexpected end of data" in what:  # strict mode: the file ends inside a quoted field
        line, col = _unclosed_quote(path, start, delimiter)
        field = header[col] if header and col is not None and col < len(header) else None
        return InputError(
            'a quoted field opens here and never closes (a missing closing ")', path=path, line=line, field=field
        )
    if "expected after" in what:
        return InputError(
            'text after a closing quote (inside a quoted field a quote is written "")', path=path, line=start[1]
        )
    if "new-line character" in what:
        return InputError(
            "a carriage return (\\r) inside an unquoted field" + (" (quote the field)" if quoted else ""),
            path=path,
            line=start[1],
        )
    return InputError(f"bad {fmt.upper()}: {e}", path=path, line=start[1])


def _unclosed_quote(path, start, delimiter):
    """(line, column index) where the quoted field that runs to the end of the file opens. `start`: (first line
    of the record the reader was in, the line it had reached). Read again on this error only."""
    in_quote, col, at_start, opened = False, 0, True, (start[0], None)
    for i, line in enumerate(_decoded_lines(path, [0]), 1):
        if i < start[0]:
            continue
        k = 0
        while k < len(line):
            c = line[k]
            if in_quote:
                if c == '"':
                    if line[k + 1 : k + 2] == '"':
                        k += 1  # "" inside quotes: a quote
                    else:
                        in_quote = False
            elif c == '"' and at_start:
                in_quote, opened = True, (i, col)
            elif c == delimiter:
                col, at_start = col + 1, True
            elif c in "\r\n":
                col, at_start = 0, True
            else:
                at_start = False
            k += 1
    return opened if in_quote else (start[0], None)


def _repeated(header, columns, path):
    """A wanted column whose name the header holds more than once: which of them is meant cannot be told."""
    for c in columns:
        at = [i + 1 for i, h in enumerate(header) if h == c]
        if len(at) > 1:
            raise InputError(
                f"the column name occurs more than once in the header (columns {at[0]} and {at[1]}): rename one",
                path=path,
                line=1,
                field=c,
            )


class _JsonObject(dict):
    """A JSON object that remembers the keys it held more than once (json keeps the last value silently)."""

    repeated = ()


def _kind(v) -> str:
    """The JSON kind of a value, for messages (an object parsed with _json_object is still an "object")."""
    names = {bool: "bool", dict: "object", list: "list", str: "string"}
    return next((name for t, name in names.items() if isinstance(v, t)), type(v).__name__)


def _json_object(pairs):
    obj = _JsonObject(pairs)
    if len(obj) < len(pairs):
        seen = set()
        obj.repeated = {k for k, _ in pairs if k in seen or seen.add(k)}
    return obj


def _warn_csv_quoting(row, path, line) -> bool:
    """A TSV field written with CSV quoting ("...""..."), as pandas or a spreadsheet may write it, is read as it
    stands: say so once, naming the option that reads it quoted. -> whether it warned."""
    for field in row:
        if len(field) > 1 and field[0] == field[-1] == '"' and '""' in field:
            import sys

            print(
                f"note: {path}: line {line}: a field looks CSV-quoted ({field[:40]!r}); TSV is read as it stands, "
                "quotes kept: give --tsv-quotes (tsv_quotes = true) if the file was written with CSV quoting",
                file=sys.stderr,
            )
            return True
    return False


def iter_rows(path, columns, tsv_quotes=False):
    """Yield (line_or_row_number, {column: value}) for the wanted columns of a table file. CSV is read strictly
    (a quote that never closes, or text after a closing quote, is an error); TSV without quote processing
    unless `tsv_quotes` (a TSV field is its text as it stands: `"Great" movie` keeps its quotes)."""
    path = Path(path)
    if not path.exists():
        raise UlmfitError(f"{path}: no such file")
    fmt = file_format(path)
    if fmt in ("csv", "tsv"):
        counter = [0]
        delimiter = "\t" if fmt == "tsv" else ","
        quoted = fmt == "csv" or tsv_quotes
        dialect = {"strict": True} if quoted else {"quoting": csv.QUOTE_NONE}
        reader = csv.reader(_decoded_lines(path, counter), delimiter=delimiter, **dialect)
        header = None
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("the file is empty", path=path) from None
        except csv.Error as e:
            raise _csv_error(e, path, fmt, delimiter, quoted, (1, counter[0]), header) from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"no column {missing[0]!r} in the header (columns: {header})", path=path, line=1)
        _repeated(header, columns, path)
        pos = [header.index(c) for c in columns]
        warned = False
        while True:
            first = counter[0] + 1  # the line this record starts on
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise _csv_error(e, path, fmt, delimiter, quoted, (first, counter[0]), header) from None
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(
                    f"row has {len(row)} fields, the header has {len(header)}", path=path, line=reader.line_num
                )
            if not quoted and not warned:
                warned = _warn_csv_quoting(row, path, reader.line_num)
            yield reader.line_num, {c: row[p] for c, p in zip(columns, pos)}
    elif fmt == "jsonl":
        counter = [0]
        for line in _decoded_lines(path, counter):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                # a key given twice keeps its last value silently: parse again, remembering repeats, only where a
                # wanted key's text occurs twice (the hook would double the cost of every line)
                if isinstance(obj, dict) and any(line.count(json.dumps(c)[1:-1]) > 1 for c in columns):
                    obj = json.loads(line, object_pairs_hook=_json_object)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON: {e.msg}", path=path, line=counter[0]) from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", path=path, line=counter[0])
            for c in columns:
                if c not in obj:
                    raise InputError("missing", path=path, line=counter[0], field=c)
                if c in getattr(obj, "repeated", ()):
                    raise InputError(
                        "the column name occurs more than once in the object", path=path, line=counter[0], field=c
                    )
            yield counter[0], {c: obj[c] for c in columns}
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # Pages written with checksums (pyarrow's write_page_checksum) are checked: damage is an error, not text.
            pf = pq.ParquetFile(path, page_checksum_verification=True)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise InputError(f"not a readable Parquet file: {e}", path=path) from None
        names = pf.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputError(f"no column {missing[0]!r} (columns: {names})", path=path)
        for c in columns:
            if names.count(c) > 1:
                raise InputError("the column name occurs more than once in the file: rename one", path=path, field=c)
        row = 0
        for group in range(pf.num_row_groups):
            # One row group at a time, so that a damaged page is reported with the group and rows it is in.
            first, n = row + 1, pf.metadata.row_group(group).num_rows
            batches = pf.iter_batches(batch_size=4096, row_groups=[group], columns=list(columns))
            while True:
                try:
                    batch = next(batches, None)
                except (pa.ArrowException, OSError) as e:  # a corrupt page: OSError or ArrowInvalid
                    reason = " ".join(str(e).split())  # pyarrow's messages run over several lines
                    raise InputError(
                        f"row group {group} (rows {first:,}-{first + n - 1:,}) is damaged and cannot be read: {reason}",
                        path=path,
                    ) from None
                if batch is None:
                    break
                for rec in batch.to_pylist():
                    row += 1
                    yield row, rec
    else:
        raise UlmfitError(f"{path}: plain text has no columns; use `ulmfit prepare corpus` for it")


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def text_value(v, path, line, field) -> str:
    """A text cell as a string: "" when missing; numbers as written; anything else (a list, an object, a
    boolean) is an error naming the place: turning it into its Python repr would be silently wrong."""
    if _is_missing(v):
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise InputError(f"expected text, got {_kind(v)} {str(v)[:60]!r}", path=path, line=line, field=field)


# A label cell that is a plain decimal number (what a spreadsheet or pandas may write for one: 1, 1.0, 01, +1,
# 1e0); hex, "nan", "1_000" and the like are words. Longer ones stay as written (no number is that long).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_EXACT = decimal.Context(prec=60)


def _number_text(d: decimal.Decimal, written: str) -> str:
    """A number's one spelling: an integer value as an integer (1.0 -> 1, -0 -> 0), any other without
    trailing zeros or an exponent (2.50 -> 2.5); exact (decimal, not float)."""
    if abs(d.adjusted()) > 40:
        return written
    if d == d.to_integral_value(context=_EXACT):
        return str(int(d))
    return format(d.normalize(context=_EXACT), "f")


def label_value(v, path, line, field) -> str:
    """A class name from a label cell, the same in every format: a number (JSON/Parquet, or a CSV/TSV cell or
    string that is a plain decimal number) is the class of its value (settings.NUMERIC_LABELS), true/false are
    "true"/"false", other text is stripped. A list, an object, bytes or a date is an error naming the place:
    its Python repr would be a silently wrong class. The caller checks for a missing label first."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise InputError(f"expected a class name, got the number {v}", path=path, line=line, field=field)
        return _number_text(decimal.Decimal(repr(v)), repr(v))
    if isinstance(v, (int, decimal.Decimal)):
        if isinstance(v, decimal.Decimal) and not v.is_finite():
            raise InputError(f"expected a class name, got the number {v}", path=path, line=line, field=field)
        return _number_text(decimal.Decimal(v), str(v))
    if isinstance(v, str):
        t = v.strip()
        return _number_text(decimal.Decimal(t), t) if len(t) <= 60 and _NUMBER.fullmatch(t) else t
    raise InputError(
        f"expected a class name (text or a number), got {_kind(v)} {str(v)[:60]!r}", path=path, line=line, field=field
    )


def _label_set(v, sep, path, line, field) -> list:
    """A --label-sep cell: SEP-separated class names, or (JSON/Parquet) a list of them -> sorted, distinct."""
    if _is_missing(v):
        return []
    parts = v if isinstance(v, list) else (v.split(sep) if isinstance(v, str) else [v])
    if isinstance(v, list) and any(isinstance(p, (list, dict)) or _is_missing(p) for p in parts):
        raise InputError(
            f"expected a class name in each item of the list, got {str(v)[:60]!r}", path=path, line=line, field=field
        )
    names = (label_value(p, path, line, field) for p in parts if not (isinstance(p, str) and not p.strip()))
    return sorted(set(names))


def _sort_classes(labels):
    labels = sorted(labels)
    try:
        return sorted(labels, key=lambda x: float(x))
    except ValueError:
        return labels


_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n"}


def _flag(v, path, line, col) -> bool:
    """A 0/1 label column's cell (1, 0, 1.0, true/false, yes/no)."""
    if _is_missing(v):
        raise InputError("missing label", path=path, line=line, field=col)
    t = label_value(v, path, line, col)
    if t.lower() in _TRUE or t.lower() in _FALSE:
        return t.lower() in _TRUE
    raise InputError(f"expected 0 or 1 in a label column, got {t!r}", path=path, line=line, field=col)


def prepare_table(
    train,
    out_dir,
    text_cols,
    label_col=None,
    test=None,
    unlabelled=(),
    valid_frac=0.0,
    lm_valid_frac=PrepareSettings.lm_valid_frac,
    seed=PrepareSettings.seed,
    force=False,
    progress=True,
    label_sep=None,
    tsv_quotes=False,
):
    """`label_col`: one column of class names (single-label), or a list of several 0/1 columns (multi-label:
    the classes are the column names). `label_sep`: the one label column holds SEP-separated class names, or
    (JSONL/Parquet) a list of them (multi-label; an empty cell is a document with no label). `tsv_quotes`:
    read .tsv files with CSV quoting. Every file must give at least one document."""
    if not text_cols:
        raise UlmfitError("name at least one text column (text_col)")
    label_cols = [label_col] if isinstance(label_col, str) else list(label_col or [])
    label_col = label_cols[0] if len(label_cols) == 1 else (label_cols or None)  # the cache key's form
    if label_sep is not None and len(label_cols) != 1:
        raise UlmfitError("--label-sep needs exactly one --label-col (the column of separated labels)")
    if label_sep == "":
        raise UlmfitError("label_sep must not be empty")
    multi = len(label_cols) > 1 or label_sep is not None
    files = (
        [("train", Path(train))] + ([("test", Path(test))] if test else []) + [("unsup", Path(u)) for u in unlabelled]
    )
    for _, p in files:
        if not p.exists():
            raise UlmfitError(f"{p}: no such file")
    keys = [file_key(p) for _, p in files]
    if test and keys[1]["path"] == keys[0]["path"]:
        raise UlmfitError(f"--test {test} is the training table: a test set must be other documents")
    if test and keys[1]["sha256"] == keys[0]["sha256"]:
        raise UlmfitError(
            f"--test {test} has the same content as the training table {train}: a test set must be other documents"
        )
    # version 2: strict CSV quoting, TSV without quotes by default, one spelling per numeric label
    key = {
        "reader": "table",
        "version": 2,
        "files": [[s, k] for (s, _), k in zip(files, keys)],
        "text_cols": list(text_cols),
        "label_col": label_col,
        "valid_frac": valid_frac,
        "lm_valid_frac": lm_valid_frac,
        "seed": seed,
        "tsv_quotes": bool(tsv_quotes),
    }
    if label_sep is not None:
        key["label_sep"] = label_sep
    if not force and (meta := cached_dataset(out_dir, key)):
        return meta, True
    w = DatasetWriter(out_dir, kind="table")
    seen = {"train": set(), "test": set()}
    try:
        for split, path in files:
            labelled = bool(label_cols) and split != "unsup"
            cols = list(text_cols) + (label_cols if labelled else [])
            n_rows = n_docs = 0
            rows = iter_rows(path, cols, tsv_quotes=tsv_quotes)
            for line, rec in tqdm(rows, desc=f"reading {path.name}", unit="row", disable=not progress):
                n_rows += 1
                where = f"{path}:{line}"
                fields = []
                for c in text_cols:
                    fields.append(text_value(rec[c], path, line, c))
                if not any(f.strip() for f in fields):
                    w.skip("empty documents", where)
                    continue
                label = None
                if labelled and label_sep is not None:
                    label = _label_set(rec[label_cols[0]], label_sep, path, line, label_cols[0])
                    seen[split].update(label)
                elif labelled and multi:
                    label = [c for c in label_cols if _flag(rec[c], path, line, c)]
                elif labelled:
                    if _is_missing(rec[label_col]):
                        raise InputError("missing label", path=path, line=line, field=label_col)
                    label = label_value(rec[label_col], path, line, label_col)
                    seen[split].add(label)
                w.add(f"{path.name}:{line}", split, fields, label)
                n_docs += 1
            # A file that gives no document is a mistake (a header-only --test would leave no test split)
            if not n_rows:
                raise InputError("the table has no rows", path=path)
            if not n_docs:
                raise InputError(
                    f"every row's text is empty ({n_rows:,} rows)",
                    path=path,
                    field=text_cols[0] if len(text_cols) == 1 else None,
                )
        classes = None
        if multi and label_sep is None:
            classes = label_cols
        elif label_cols:
            kind = "label" if multi else "class"
            if len(seen["train"]) < 2:
                raise InputError(
                    f"the label column has {len(seen['train'])} {kind}(s) ({sorted(seen['train'])}); "
                    "a classifier needs at least 2",
                    path=train,
                    field=label_cols[0],
                )
            unknown = seen["test"] - seen["train"]
            if unknown:
                raise InputError(
                    f"test labels {sorted(unknown)[:5]} never occur in the training file",
                    path=test,
                    field=label_cols[0],
                )
            classes = _sort_classes(seen["train"])
    except BaseException:
        w.abort()
        raise
    meta = w.finish(
        classes=classes, lm_valid_frac=lm_valid_frac, seed=seed, source=key, valid_frac=valid_frac, multi_label=multi
    )
    return meta, False


def prepare_folder(
    root,
    out_dir,
    valid_frac=0.0,
    lm_valid_frac=PrepareSettings.lm_valid_frac,
    seed=PrepareSettings.seed,
    force=False,
    progress=True,
    unlabelled_names=("unsup", "unlabelled", "unlabeled"),
):
    """A folder per class: ROOT/CLASS/*.txt, or ROOT/{train,test}/CLASS/*.txt. A class folder named
    unsup/unlabelled holds texts without a label (language model only). Names starting with "." (.git,
    .DS_Store, an editor's .swp) are neither classes nor documents, at any depth."""
    from .imdb import decode

    root = Path(root)
    if not root.is_dir():
        raise UlmfitError(f"{root}: not a folder")
    check_out_not_inside(out_dir, root)
    split_dirs = [(s, root / s) for s in ("train", "test") if (root / s).is_dir()] or [("train", root)]
    files, empty = [], []
    for split, d in split_dirs:
        for cdir in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
            n = len(files)
            for f in sorted(cdir.rglob("*")):
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(cdir).parts):
                    unl = cdir.name in unlabelled_names
                    files.append(("unsup" if unl else split, None if unl else cdir.name, f))
            if len(files) == n and split == "train" and cdir.name not in unlabelled_names:
                empty.append(cdir)
    if empty and files:
        raise UlmfitError(
            f"{empty[0]}: the class folder is empty: a class without examples cannot be learned "
            "(add its texts, or remove the folder)"
        )
    if not files:
        raise UlmfitError(f"{root}: no class folders with files (expected {root}/CLASS/*.txt)")
    train_classes = {lab for s, lab, _ in files if s == "train" and lab is not None}
    if len(train_classes) < 2:
        raise UlmfitError(f"{root}: found {len(train_classes)} class folder(s); a classifier needs at least 2")
    test_classes = {lab for s, lab, _ in files if s == "test" and lab is not None}
    if test_classes - train_classes:
        raise UlmfitError(f"{root}/test: classes {sorted(test_classes - train_classes)} are not in train")
    key = {
        "reader": "folder",
        **folder_key(root, [f for _, _, f in files]),
        "valid_frac": valid_frac,
        "lm_valid_frac": lm_valid_frac,
        "seed": seed,
    }
    if not force and (meta := cached_dataset(out_dir, key)):
        return meta, True
    w = DatasetWriter(out_dir, kind="folder")
    try:
        for split, label, f in tqdm(files, desc=f"reading {root.name}", unit="file", disable=not progress):
            text = decode(f.read_bytes(), f)
            if not text.strip():
                w.skip("empty documents", str(f))
                continue
            w.add(str(f.relative_to(root)), split, text, label)
    except BaseException:
        w.abort()
        raise
    meta = w.finish(
        classes=_sort_classes(train_classes), lm_valid_frac=lm_valid_frac, seed=seed, source=key, valid_frac=valid_frac
    )
    return meta, False


def prepare_corpus(
    paths,
    out_dir,
    text_field=CorpusSettings.text_field,
    lm_valid_frac=PrepareSettings.lm_valid_frac,
    seed=PrepareSettings.seed,
    max_docs=None,
    max_words=None,
    force=False,
    progress=True,
):
    """Unlabelled text for language-model pretraining: JSONL objects with a text field, or plain text
    with one document per line (compressed .gz/.xz too). `max_docs`/`max_words` take a leading slice."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise UlmfitError(f"{p}: no such file")
    key = {
        "reader": "corpus",
        "files": [file_key(p) for p in paths],
        "text_field": text_field,
        "lm_valid_frac": lm_valid_frac,
        "seed": seed,
        "max_docs": max_docs,
        "max_words": max_words,
    }
    if not force and (meta := cached_dataset(out_dir, key)):
        return meta, True
    w = DatasetWriter(out_dir, kind="corpus")
    n_docs = n_words = 0
    try:
        bar = tqdm(desc="reading corpus", unit="doc", disable=not progress)
        for path in paths:
            fmt = file_format(path)
            if fmt == "jsonl":
                rows = ((line, rec[text_field]) for line, rec in iter_rows(path, [text_field]))
            elif fmt == "text":
                counter = [0]
                rows = ((counter[0], line) for line in _decoded_lines(path, counter))
            else:
                rows = ((line, rec[text_field]) for line, rec in iter_rows(path, [text_field]))
            for line, text in rows:
                if _is_missing(text):
                    w.skip("empty documents", f"{path}:{line}")
                    continue
                if not isinstance(text, str):
                    raise InputError(
                        f"expected a string, got {type(text).__name__}", path=path, line=line, field=text_field
                    )
                w.add(f"{path.name}:{line}", "unsup", text.strip())
                n_docs += 1
                n_words += text.count(" ") + 1
                bar.update()
                if (max_docs and n_docs >= max_docs) or (max_words and n_words >= max_words):
                    break
            if (max_docs and n_docs >= max_docs) or (max_words and n_words >= max_words):
                break
        bar.close()
    except BaseException:
        w.abort()
        raise
    meta = w.finish(lm_valid_frac=lm_valid_frac, seed=seed, source=key)
    return meta, False
