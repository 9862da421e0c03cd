"""Tables (CSV/TSV, Parquet, JSON Lines) and unlabelled corpora -> prepared datasets.

Readers stream rows (CSV in lines, Parquet in record batches, JSONL line by line) and report bad input
with the file, line (or row) and field it sits in.
"""

from __future__ import annotations

import csv
import gzip
import json
import lzma
import math
import zlib
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import InputError, UlmfitError
from .dataset import DatasetWriter, cached_dataset, file_key

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
    for ext, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".parquet", "parquet"),
                     (".pq", "parquet"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".txt", "text")):
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
                raise InputError(f"the compressed file is damaged or cut short ({e})", path=path,
                                 line=counter[0] + 1) from None
            counter[0] = i
            try:
                yield raw.decode("utf-8").removeprefix("\ufeff") if i == 1 else raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte {e.start} of the line)", path=path, line=i) from None


def iter_rows(path, columns):
    """Yield (line_or_row_number, {column: value}) for the wanted columns of a table file."""
    path = Path(path)
    if not path.exists():
        raise UlmfitError(f"{path}: no such file")
    fmt = file_format(path)
    if fmt in ("csv", "tsv"):
        counter = [0]
        reader = csv.reader(_decoded_lines(path, counter), delimiter="\t" if fmt == "tsv" else ",")
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("the file is empty", path=path) from None
        except csv.Error as e:
            raise InputError(f"bad CSV: {e}", path=path, line=counter[0]) from None
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"no column {missing[0]!r} in the header (columns: {header})", path=path, line=1)
        pos = [header.index(c) for c in columns]
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise InputError(f"bad CSV: {e}", path=path, line=counter[0]) from None
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(f"row has {len(row)} fields, the header has {len(header)}", path=path,
                                 line=reader.line_num)
            yield reader.line_num, {c: row[p] for c, p in zip(columns, pos)}
    elif fmt == "jsonl":
        counter = [0]
        for line in _decoded_lines(path, counter):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON: {e.msg}", path=path, line=counter[0]) from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", path=path, line=counter[0])
            for c in columns:
                if c not in obj:
                    raise InputError("missing", path=path, line=counter[0], field=c)
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
                    raise InputError(f"row group {group} (rows {first:,}-{first + n - 1:,}) is damaged and cannot be "
                                     f"read: {reason}", path=path) from None
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
    raise InputError(f"expected text, got {type(v).__name__} {str(v)[:60]!r}", path=path, line=line, field=field)


def _label_str(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


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
    t = _label_str(v).lower()
    if t in _TRUE or t in _FALSE:
        return t in _TRUE
    raise InputError(f"expected 0 or 1 in a label column, got {_label_str(v)!r}", path=path, line=line, field=col)


def prepare_table(train, out_dir, text_cols, label_col=None, test=None, unlabelled=(), valid_frac=0.0,
                  lm_valid_frac=0.1, seed=42, force=False, progress=True, label_sep=None):
    """`label_col`: one column of class names (single-label), or a list of several 0/1 columns (multi-label:
    the classes are the column names). `label_sep`: the one label column holds SEP-separated class names
    (multi-label; an empty cell is a document with no label)."""
    if not text_cols:
        raise UlmfitError("name at least one --text-col")
    label_cols = [label_col] if isinstance(label_col, str) else list(label_col or [])
    label_col = label_cols[0] if len(label_cols) == 1 else (label_cols or None)  # the cache key's form
    if label_sep is not None and len(label_cols) != 1:
        raise UlmfitError("--label-sep needs exactly one --label-col (the column of separated labels)")
    if label_sep == "":
        raise UlmfitError("--label-sep must not be empty")
    multi = len(label_cols) > 1 or label_sep is not None
    files = [("train", Path(train))] + ([("test", Path(test))] if test else []) + [("unsup", Path(u)) for u in unlabelled]
    for _, p in files:
        if not p.exists():
            raise UlmfitError(f"{p}: no such file")
    key = {"reader": "table", "files": [[s, file_key(p)] for s, p in files], "text_cols": list(text_cols),
           "label_col": label_col, "valid_frac": valid_frac, "lm_valid_frac": lm_valid_frac, "seed": seed}
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
            for line, rec in tqdm(iter_rows(path, cols), desc=f"reading {path.name}", unit="row", disable=not progress):
                where = f"{path}:{line}"
                fields = []
                for c in text_cols:
                    fields.append(text_value(rec[c], path, line, c))
                if not any(f.strip() for f in fields):
                    w.skip("empty documents", where)
                    continue
                label = None
                if labelled and label_sep is not None:
                    v = rec[label_cols[0]]
                    text = "" if _is_missing(v) else _label_str(v)
                    label = sorted({t.strip() for t in text.split(label_sep) if t.strip()})
                    seen[split].update(label)
                elif labelled and multi:
                    label = [c for c in label_cols if _flag(rec[c], path, line, c)]
                elif labelled:
                    if _is_missing(rec[label_col]):
                        raise InputError("missing label", path=path, line=line, field=label_col)
                    label = _label_str(rec[label_col])
                    seen[split].add(label)
                w.add(f"{path.name}:{line}", split, fields, label)
        classes = None
        if multi and label_sep is None:
            classes = label_cols
        elif label_cols:
            kind = "label" if multi else "class"
            if len(seen["train"]) < 2:
                raise InputError(f"the label column has {len(seen['train'])} {kind}(s) ({sorted(seen['train'])}); "
                                 "a classifier needs at least 2", path=train, field=label_cols[0])
            unknown = seen["test"] - seen["train"]
            if unknown:
                raise InputError(f"test labels {sorted(unknown)[:5]} never occur in the training file", path=test,
                                 field=label_cols[0])
            classes = _sort_classes(seen["train"])
    except BaseException:
        w.abort()
        raise
    meta = w.finish(classes=classes, lm_valid_frac=lm_valid_frac, seed=seed, source=key, valid_frac=valid_frac,
                    multi_label=multi)
    return meta, False


def prepare_folder(root, out_dir, valid_frac=0.0, lm_valid_frac=0.1, seed=42, force=False, progress=True,
                   unlabelled_names=("unsup", "unlabelled", "unlabeled")):
    """A folder per class: ROOT/CLASS/*.txt, or ROOT/{train,test}/CLASS/*.txt. A class folder named
    unsup/unlabelled holds texts without a label (language model only)."""
    from .imdb import decode

    root = Path(root)
    if not root.is_dir():
        raise UlmfitError(f"{root}: not a folder")
    split_dirs = [(s, root / s) for s in ("train", "test") if (root / s).is_dir()] or [("train", root)]
    files, empty = [], []
    for split, d in split_dirs:
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            n = len(files)
            for f in sorted(cdir.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    unl = cdir.name in unlabelled_names
                    files.append(("unsup" if unl else split, None if unl else cdir.name, f))
            if len(files) == n and split == "train" and cdir.name not in unlabelled_names:
                empty.append(cdir)
    if empty and files:
        raise UlmfitError(f"{empty[0]}: the class folder is empty: a class without examples cannot be learned "
                          "(add its texts, or remove the folder)")
    if not files:
        raise UlmfitError(f"{root}: no class folders with files (expected {root}/CLASS/*.txt)")
    train_classes = {lab for s, lab, _ in files if s == "train" and lab is not None}
    if len(train_classes) < 2:
        raise UlmfitError(f"{root}: found {len(train_classes)} class folder(s); a classifier needs at least 2")
    test_classes = {lab for s, lab, _ in files if s == "test" and lab is not None}
    if test_classes - train_classes:
        raise UlmfitError(f"{root}/test: classes {sorted(test_classes - train_classes)} are not in train")
    key = {"reader": "folder", "root": str(root.resolve()), "n_files": len(files),
           "size": sum(f.stat().st_size for _, _, f in files), "valid_frac": valid_frac,
           "lm_valid_frac": lm_valid_frac, "seed": seed}
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
    meta = w.finish(classes=_sort_classes(train_classes), lm_valid_frac=lm_valid_frac, seed=seed, source=key,
                    valid_frac=valid_frac)
    return meta, False


def prepare_corpus(paths, out_dir, text_field="text", lm_valid_frac=0.1, seed=42, max_docs=None,
                   max_words=None, force=False, progress=True):
    """Unlabelled text for language-model pretraining: JSONL objects with a text field, or plain text
    with one document per line (compressed .gz/.xz too). `max_docs`/`max_words` take a leading slice."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise UlmfitError(f"{p}: no such file")
    key = {"reader": "corpus", "files": [file_key(p) for p in paths], "text_field": text_field,
           "lm_valid_frac": lm_valid_frac, "seed": seed, "max_docs": max_docs, "max_words": max_words}
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
                    raise InputError(f"expected a string, got {type(text).__name__}", path=path, line=line,
                                     field=text_field)
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
