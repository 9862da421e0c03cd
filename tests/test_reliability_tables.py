"""Tables and folders read as written: quoting, label spellings and types, headers, empty inputs, folder keys.

The last test is a fuzz test of the table readers (the standard library's `random`, seeded): random tables
either read back exactly as written or fail with an UlmfitError naming the file and the line or field.
"""

import csv
import gzip
import io
import json
import os
import random
import shutil

import numpy as np
import pytest

import ulmfit
from ulmfit.errors import UlmfitError
from ulmfit.settings import EvaluateSettings, FolderSettings, ImdbSettings, TableSettings

from classifier_helpers import synthetic_store, one_thread  # noqa: F401 (autouse)


def _docs(folder):
    """(text, label) of each prepared document, in order."""
    with open(folder / "documents.jsonl", encoding="utf-8", newline="") as f:  # one document per "\n"
        return [(d["text"], d["label"]) for d in map(json.loads, f)]


def _prepare_table(path, out, **kw):
    kw.setdefault("label_col", ["label"])
    return ulmfit.prepare("table", str(path), out, TableSettings(quiet=True, **kw))


# ------------------------------------------------------------------------------------- quoting (4)


@pytest.mark.parametrize("name,sep,kw", [("t.csv", ",", {}), ("t.tsv", "\t", {"tsv_quotes": True})])
def test_an_unterminated_quote_is_an_error_naming_the_line_it_opens_on(tmp_path, name, sep, kw):
    body = f'label{sep}text\na{sep}"fine,\nquoted"\nb{sep}"never closed\na{sep}more\nb{sep}rows\n'
    (tmp_path / name).write_text(body)
    with pytest.raises(UlmfitError, match=rf"{name}: line 4: field 'text': a quoted field opens here and never "
                                          "closes"):
        _prepare_table(tmp_path / name, tmp_path / "d", **kw)
    assert not (tmp_path / "d" / "dataset.json").exists()
    # text after a closing quote is an error too, not glued to the field
    (tmp_path / name).write_text(f'label{sep}text\na{sep}x\nb{sep}"Great" movie\n')
    with pytest.raises(UlmfitError, match=rf"{name}: line 3: .*after a closing quote"):
        _prepare_table(tmp_path / name, tmp_path / "d", **kw)


def test_tsv_is_read_without_quote_processing_unless_asked(tmp_path, run_cli):
    from ulmfit.stages.evaluate import read_texts

    (tmp_path / "t.tsv").write_text('label\ttext\na\t"Great" movie\nb\tsay "hi"\na\t"\n')
    _prepare_table(tmp_path / "t.tsv", tmp_path / "d")
    assert _docs(tmp_path / "d") == [('"Great" movie', "a"), ('say "hi"', "b"), ('"', "a")]
    assert read_texts(input=str(tmp_path / "t.tsv")) == ['"Great" movie', 'say "hi"', '"']
    # asked for: CSV-style quotes, so a quoted field may hold tabs and newlines
    (tmp_path / "q.tsv").write_text('label\ttext\na\t"one\ttab\nand a line"\nb\t"say ""hi"""\n')
    code, out, err = run_cli("prepare", "table", tmp_path / "q.tsv", "--out", tmp_path / "q", "--label-col", "label",
                             "--tsv-quotes", "--quiet")
    assert code == 0, err
    assert _docs(tmp_path / "q") == [("one\ttab\nand a line", "a"), ('say "hi"', "b")]


# ------------------------------------------------------------------------------ cells and columns (5)


def test_a_label_that_is_a_list_an_object_or_bytes_is_an_error_naming_its_place(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for bad in ('["a", "b"]', '{"x": 1}'):
        (tmp_path / "t.jsonl").write_text(f'{{"text": "one", "label": "a"}}\n{{"text": "two", "label": {bad}}}\n')
        with pytest.raises(UlmfitError, match=r"t.jsonl: line 2: field 'label': expected a class name"):
            _prepare_table(tmp_path / "t.jsonl", tmp_path / "d")
    pq.write_table(pa.table({"text": ["one", "two"], "label": [b"a", b"b"]}), tmp_path / "t.parquet")
    with pytest.raises(UlmfitError, match=r"t.parquet: line 1: field 'label': expected a class name .*bytes"):
        _prepare_table(tmp_path / "t.parquet", tmp_path / "d")
    assert not (tmp_path / "d" / "dataset.json").exists()
    # with --label-sep a list is the document's label set (multi-label), and a separated text still works
    (tmp_path / "m.jsonl").write_text('{"text": "one", "label": ["b", "a"]}\n{"text": "two", "label": "a|c"}\n'
                                      '{"text": "three", "label": [1.0, "c"]}\n')
    meta = _prepare_table(tmp_path / "m.jsonl", tmp_path / "m", label_sep="|")
    assert meta["classes"] == ["1", "a", "b", "c"]
    assert [lab for _, lab in _docs(tmp_path / "m")] == [["a", "b"], ["a", "c"], ["1", "c"]]
    (tmp_path / "n.jsonl").write_text('{"text": "one", "label": ["b", ["a"]]}\n{"text": "two", "label": "a"}\n')
    with pytest.raises(UlmfitError, match=r"n.jsonl: line 1: field 'label': expected a class name"):
        _prepare_table(tmp_path / "n.jsonl", tmp_path / "n", label_sep="|")


def test_a_number_is_one_class_however_it_is_spelled_in_every_format(tmp_path):
    (tmp_path / "t.csv").write_text("label,text\n1,a\n1.0,b\n01,c\n0,d\n0.0,e\n+1,f\n1e0,g\n2.50,h\n")
    meta = _prepare_table(tmp_path / "t.csv", tmp_path / "d")
    assert meta["classes"] == ["0", "1", "2.5"]
    assert [lab for _, lab in _docs(tmp_path / "d")] == ["1", "1", "1", "0", "0", "1", "1", "2.5"]
    (tmp_path / "t.jsonl").write_text('{"text": "a", "label": 1.0}\n{"text": "b", "label": "01"}\n'
                                      '{"text": "c", "label": 0}\n{"text": "d", "label": true}\n')
    meta = _prepare_table(tmp_path / "t.jsonl", tmp_path / "j")
    assert meta["classes"] == ["0", "1", "true"]
    # a test table spelling a training class another way is the same class
    (tmp_path / "test.jsonl").write_text('{"text": "x", "label": 2.5}\n{"text": "y", "label": 1}\n')
    meta = _prepare_table(tmp_path / "t.csv", tmp_path / "e", test=str(tmp_path / "test.jsonl"))
    assert meta["class_counts"]["test"] == {"0": 0, "1": 1, "2.5": 1}
    # words and codes that are not plain numbers stay as written
    (tmp_path / "w.csv").write_text("label,text\nnan,a\n1_000,b\n0x1,c\n 7 ,d\n")
    assert _prepare_table(tmp_path / "w.csv", tmp_path / "w")["classes"] == ["0x1", "1_000", "7", "nan"]


@pytest.mark.parametrize("name,body", [
    ("t.csv", "text,label,text\na,x,b\nc,y,d\n"),
    ("t.tsv", "label\ttext\tlabel\nx\ta\ty\ny\tb\tx\n"),
    ("t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y", "text": "c"}\n')])
def test_a_duplicated_column_name_is_an_error_naming_it(tmp_path, name, body):
    (tmp_path / name).write_text(body)
    where = "line 2: field 'text'" if name.endswith("jsonl") else "line 1: field '(text|label)'"
    with pytest.raises(UlmfitError, match=rf"{name}: {where}: the column name occurs more than once"):
        _prepare_table(tmp_path / name, tmp_path / "d")
    # a repeated name among the columns not read is no harm
    (tmp_path / "ok.csv").write_text("x,text,x,label\n1,a,2,p\n3,b,4,q\n")
    assert _prepare_table(tmp_path / "ok.csv", tmp_path / "ok")["classes"] == ["p", "q"]


def test_a_test_table_without_rows_or_the_training_table_again_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text("label,text\na,one\nb,two\n")
    (tmp_path / "test.csv").write_text("label,text\n")
    with pytest.raises(UlmfitError, match=r"test.csv: the table has no rows"):
        _prepare_table(tmp_path / "train.csv", tmp_path / "d", test=str(tmp_path / "test.csv"))
    (tmp_path / "test.csv").write_text("label,text\na,  \nb,\n")
    with pytest.raises(UlmfitError, match=r"test.csv: field 'text': every row's text is empty"):
        _prepare_table(tmp_path / "train.csv", tmp_path / "d", test=str(tmp_path / "test.csv"))
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(UlmfitError, match=r"empty.jsonl: the table has no rows"):
        _prepare_table(tmp_path / "empty.jsonl", tmp_path / "d", label_col=None)
    with pytest.raises(UlmfitError, match=r"--test .*train.csv is the training table"):
        _prepare_table(tmp_path / "train.csv", tmp_path / "d", test=str(tmp_path / "." / "train.csv"))
    shutil.copyfile(tmp_path / "train.csv", tmp_path / "copy.csv")
    with pytest.raises(UlmfitError, match=r"--test .*copy.csv has the same content as the training table"):
        _prepare_table(tmp_path / "train.csv", tmp_path / "d", test=str(tmp_path / "copy.csv"))
    assert not (tmp_path / "d").exists() or not (tmp_path / "d" / "dataset.json").exists()


# -------------------------------------------------------------------------------- folder sources (6)


def _class_folders(root, layout):
    for rel, text in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_folder_source_is_read_again_when_a_file_moves_or_changes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "d"
    _class_folders(src, {"pos/1.txt": "great fun", "pos/2.txt": "loved it", "neg/3.txt": "dull film",
                         "neg/4.txt": "awful, bad"})
    s = FolderSettings(quiet=True)
    assert not ulmfit.prepare("folder", str(src), out, s)["reused"]
    assert ulmfit.prepare("folder", str(src), out, s)["reused"]
    os.rename(src / "pos" / "2.txt", src / "neg" / "2.txt")  # same count, same total size
    meta = ulmfit.prepare("folder", str(src), out, s)
    assert not meta["reused"] and meta["class_counts"]["train"] == {"neg": 3, "pos": 1}
    st = (src / "neg" / "3.txt").stat()
    (src / "neg" / "3.txt").write_text("fine film")  # same size
    os.utime(src / "neg" / "3.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    meta = ulmfit.prepare("folder", str(src), out, s)
    assert not meta["reused"] and ("fine film", "neg") in _docs(out)


def test_an_imdb_folder_is_read_again_when_its_classes_are_swapped(tmp_path):
    root = tmp_path / "aclImdb"
    layout = {f"{split}/{cls}/{i}_{7 if cls == 'pos' else 2}.txt": f"{cls} review {i:02d}"
              for split in ("train", "test") for cls in ("pos", "neg") for i in range(3)}
    _class_folders(root, layout)
    out = tmp_path / "d"
    ulmfit.prepare("imdb", str(root), out, ImdbSettings(quiet=True))
    os.rename(root / "test" / "pos", root / "test" / "x")
    os.rename(root / "test" / "neg", root / "test" / "pos")
    os.rename(root / "test" / "x", root / "test" / "neg")
    meta = ulmfit.prepare("imdb", str(root), out, ImdbSettings(quiet=True))
    assert not meta["reused"]
    assert ("neg review 00", "pos") in _docs(out)


def test_a_run_on_an_imdb_folder_redoes_every_stage_after_its_test_classes_are_swapped(tmp_path, run_cli):
    import tarfile

    from test_prepare import make_imdb_tar

    with tarfile.open(make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=10)) as tf:
        tf.extractall(tmp_path / "src", filter="data")
    root, out = tmp_path / "src" / "aclImdb", tmp_path / "run"
    code, _, err = run_cli("run", "tiny", "--source", root, "--out", out, "--quiet")
    assert code == 0, err
    os.rename(root / "test" / "pos", root / "test" / "x")
    os.rename(root / "test" / "neg", root / "test" / "pos")
    os.rename(root / "test" / "x", root / "test" / "neg")
    code, _, err = run_cli("run", "tiny", "--source", root, "--out", out, "--quiet")
    assert code == 0, err
    stages = json.loads((out / "stages.json").read_text())
    assert not any(stages[n]["reused"] for n in ("prepare", "tokenize", "classifier", "evaluate")), stages


def test_hidden_folders_and_files_are_neither_classes_nor_documents(tmp_path):
    src = tmp_path / "src"
    _class_folders(src, {"pos/1.txt": "great", "neg/2.txt": "dull", ".git/HEAD": "ref: main",
                         ".git/objects/ab": "xx", "pos/.notes.txt": "mine", "neg/.cache/3.txt": "not a review",
                         ".DS_Store": "x", "pos/.DS_Store": "x"})
    meta = ulmfit.prepare("folder", str(src), tmp_path / "d", FolderSettings(quiet=True))
    assert meta["classes"] == ["neg", "pos"] and meta["n_docs"] == 2


def test_an_out_inside_the_source_folder_is_refused(tmp_path, run_cli):
    src = tmp_path / "src"
    _class_folders(src, {"pos/1.txt": "great", "neg/2.txt": "dull"})
    for out in (src / "prepared", src, src / "pos" / "deeper"):
        code, _, err = run_cli("prepare", "folder", src, "--out", out, "--quiet")
        assert code == 1 and f"{out} is inside the source folder {src}" in err, err
    assert sorted(p.name for p in src.iterdir()) == ["neg", "pos"] and not (src / "pos" / "deeper").exists()
    _class_folders(tmp_path / "aclImdb", {"train/pos/1_7.txt": "great", "train/neg/2_2.txt": "dull"})
    with pytest.raises(UlmfitError, match="is inside the source folder"):
        ulmfit.prepare("imdb", str(tmp_path / "aclImdb"), tmp_path / "aclImdb" / "d", ImdbSettings(quiet=True))


# --------------------------------------------------------------------------------- empty input (10)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from classifier_helpers import train_tiny_classifier

    return train_tiny_classifier(tmp_path_factory.mktemp("tables"), n_docs=60, n_test=20) / "clas"


def test_no_texts_are_no_predictions(classifier, monkeypatch, run_cli):
    import sys

    from ulmfit.inference import TextClassifier

    clf = TextClassifier.load(classifier)
    assert clf.predict([]) == [] and clf.predict_proba([]).shape == (0, 2)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"must not be read\n"), encoding="utf-8"))
    assert ulmfit.predict(classifier, []) == []
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8"))
    code, out, err = run_cli("predict", classifier, "--quiet")
    assert code == 0 and out == "" and "no texts" in err
    code, out, err = run_cli("predict", classifier, "", "--quiet")  # an empty text given is a text
    assert code == 0 and len(out.splitlines()) == 1


def test_evaluate_on_a_table_without_rows_is_an_error(classifier, tmp_path):
    (tmp_path / "e.csv").write_text("text,label\n")
    with pytest.raises(UlmfitError, match=r"e.csv: the table has no rows to evaluate"):
        ulmfit.evaluate(classifier, tmp_path / "e.csv", EvaluateSettings(quiet=True))


# ------------------------------------------------------------------------------------- fuzz test


# Texts: quotes, separators, newlines, carriage returns, unicode (combining, astral, RTL, U+2028, NEL), a BOM
# inside, blanks; TSV without quotes cannot hold a tab or a line break, so those texts leave them out.
_PIECES = ['"', '""', "'", ",", ";", "\t", "\n", "\r\n", "\r", " ", "  ", "word", "Great", "é", "e\u0301", "日本",
           "😀", "\u05e9\u05dc\u05d5\u05dd", "\u2028", "\x85", "\ufeff", "\\", "\\n", "{", "}", "[1]", "null", "1.0",
           "xxbos", "\x0b", "#"]
_TSV_UNSAFE = ("\t", "\n", "\r")


def _random_text(rng, fmt):
    pieces = [p for p in _PIECES if not (fmt == "tsv" and any(c in p for c in _TSV_UNSAFE))]
    if rng.random() < 0.08:
        return rng.choice(["", " ", "  \t "[: 2 if fmt == "tsv" else 4]])  # blank: skipped, never a document
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))


# A class and the spellings of it a table may hold: (JSON/Parquet value or CSV cell text, the class name read).
_CLASSES = [
    ("1", [1, 1.0, "1", "01", "1.0", " 1 ", "+1", "1e0"]),
    ("0", [0, 0.0, "0", "00", "-0", "0.000"]),
    ("2.5", [2.5, "2.50", "2.5", "25e-1"]),
    ("pos", ["pos", " pos "]),
    ("neg", ["neg"]),
    ("true", [True, "true"]),
    ("a,b \"c\"", ['a,b "c"']),
    ("é", ["é"]),
]
_BAD_LABELS = [["x", "y"], {"k": 1}, None, [], 1e400]


def _is_utf8(blob):
    try:
        blob.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _cell(v):
    """A value's CSV/TSV spelling."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def _write_fault(buf, fault, header, sep):
    """A row whose quoted text never closes, or has text after its closing quote -> the line it starts on."""
    line = buf.getvalue().count("\n") + 1
    text = '"never closed\nat all' if fault == "unclosed" else '"Great" movie'
    buf.write(sep.join(text if c == "text" else "pos" for c in header) + "\n")
    return line


def _make_case(rng, k, tmp):
    """A random table -> (path, expected: list of (text, label) | "error", expected error line or None, kw)."""
    fmt = rng.choice(["csv", "tsv", "tsv_quoted", "jsonl", "parquet"])
    quoted_tsv = fmt == "tsv_quoted"
    fmt = "tsv" if quoted_tsv else fmt
    n = rng.randint(2, 8)
    classes = rng.sample(_CLASSES, rng.randint(2, 4))
    rows, expected = [], []
    for _ in range(n):
        name, spellings = rng.choice(classes)
        value = rng.choice(spellings)
        if fmt == "parquet":  # a Parquet column has one type: the class name's text
            value = name
        elif fmt in ("csv", "tsv"):
            value = _cell(value)
            if fmt == "tsv" and not quoted_tsv and any(c in value for c in _TSV_UNSAFE):
                value = name
        text = _random_text(rng, "tsv" if fmt == "tsv" and not quoted_tsv else fmt)
        rows.append({"text": text, "label": value})
        if text.strip():
            expected.append((text, name))
    bad = None
    with_text = [i for i, r in enumerate(rows) if r["text"].strip()]  # a row without text is skipped, label and all
    if fmt in ("jsonl", "parquet") and with_text and rng.random() < 0.15:  # a label of the wrong type, or none
        bad = rng.choice(with_text)
        rows[bad]["label"] = rng.choice(_BAD_LABELS)
        if fmt == "parquet":
            rows[bad]["label"] = None
    # header: the wanted columns and extra ones in a random order; sometimes a wanted name twice
    extra = [f"x{i}" for i in range(rng.randint(0, 2))]
    header = rng.sample(["text", "label"] + extra, 2 + len(extra))
    dup = None
    if rng.random() < 0.1:
        dup = rng.choice(["text", "label", "x0"] if extra else ["text", "label"])
        header.insert(rng.randint(0, len(header)), dup)
    path = tmp / f"t{k}.{fmt}"
    bom = fmt != "parquet" and rng.random() < 0.2
    encoding = rng.choice(["utf-8"] * 8 + ["latin-1", "utf-16"]) if fmt != "parquet" else "utf-8"
    fault_line, bare_cr = None, False
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {c: [r.get(c, str(i)) for i, r in enumerate(rows)] for c in dict.fromkeys(header)}
        names = header if dup else list(cols)
        pq.write_table(pa.Table.from_arrays([pa.array(cols[c]) for c in names], names=names), path)
    else:
        buf = io.StringIO()
        if fmt == "jsonl":
            for i, r in enumerate(rows):
                pairs = [(c, r.get(c, i)) for c in header]
                buf.write("{" + ", ".join(f"{json.dumps(c)}: {json.dumps(v, ensure_ascii=rng.random() < 0.5)}"
                                          for c, v in pairs) + "}\n")
        else:
            sep = "\t" if fmt == "tsv" else ","
            if fmt == "tsv" and not quoted_tsv:
                w = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None, quotechar=None,
                               lineterminator=rng.choice(["\n", "\r\n"]))
            else:
                end = rng.choice(["\n", "\r\n"])
                quoting = rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
                w = csv.writer(buf, delimiter=sep, lineterminator=end, quoting=quoting)
                # csv.writer leaves a lone \r unquoted when lines end in \n: not CSV any reader can read back
                bare_cr = end == "\n" and quoting == csv.QUOTE_MINIMAL and any(
                    "\r" in v and not any(ch in v for ch in (sep, '"', "\n")) for r in rows for v in r.values())
            fault = rng.choice([None] * 6 + ["unclosed", "after_quote"]) if fmt == "csv" or quoted_tsv else None
            at = rng.randint(0, n) if fault == "after_quote" else n  # nothing after an unclosed quote closes it
            w.writerow(header)
            for i, r in enumerate(rows):
                if i == at:
                    fault_line = _write_fault(buf, fault, header, sep)
                w.writerow([r.get(c, str(i)) for c in header])
            if at == n and fault:
                fault_line = _write_fault(buf, fault, header, sep)
        data = buf.getvalue()
        raw = ("\ufeff" if bom and encoding != "utf-16" else "") + data
        try:
            blob = raw.encode(encoding)
        except UnicodeEncodeError:
            encoding, blob = "utf-8", raw.encode("utf-8")
        if encoding == "latin-1" and _is_utf8(blob):
            encoding, blob = "utf-8", raw.encode("utf-8")  # ASCII, or Latin-1 bytes that happen to be UTF-8 too
        if rng.random() < 0.2:
            path = path.with_name(path.name + ".gz")
            blob = gzip.compress(blob)
        path.write_bytes(blob)
    valid = (encoding == "utf-8" and dup in (None, "x0") and bad is None and fault_line is None and not bare_cr
             and expected and len({lab for _, lab in expected}) >= 2)
    # the line the error must name when the faulty row is the only fault
    return path, (expected if valid else "error"), None if bare_cr else fault_line, {"tsv_quotes": quoted_tsv}


def test_fuzz_tables_read_back_exactly_or_fail_naming_file_and_place(tmp_path):
    """300 random tables (seeded): CSV, TSV (plain, and with --tsv-quotes), JSONL and Parquet; random texts,
    label spellings and types, header orders and duplicates, BOMs, encodings, gzip. A valid table reads back
    exactly, in order; any other is an UlmfitError naming the file and a line or field, nothing half-written."""
    rng = random.Random(20240523)
    outcomes = {"read": 0, "refused": 0}
    for k in range(300):
        path, expected, fault_line, kw = _make_case(rng, k, tmp_path)
        out = tmp_path / f"d{k}"
        try:
            meta = _prepare_table(path, out, **kw)
        except UlmfitError as e:
            msg = str(e)
            assert expected == "error", f"case {k} ({path.name}): a valid table was refused: {msg}"
            assert path.name in msg and ("line " in msg or "field " in msg), f"case {k}: {msg}"
            if fault_line is not None and "UTF-8" not in msg:  # the faulty row's line
                assert f"line {fault_line}:" in msg or "occurs more than once" in msg, f"case {k}: {msg}"
            assert not (out / "dataset.json").exists()
            outcomes["refused"] += 1
            continue
        assert expected != "error", f"case {k} ({path.name}): an invalid table was read: {_docs(out)}"
        assert _docs(out) == expected, f"case {k} ({path.name})"
        labels = np.load(out / "labels.npy")
        assert [meta["classes"][i] for i in labels] == [lab for _, lab in expected]
        outcomes["read"] += 1
    assert min(outcomes.values()) > 50, outcomes  # both kinds of case are exercised


def test_a_tsv_field_that_looks_csv_quoted_is_kept_as_it_stands_with_a_note(tmp_path, capsys):
    from ulmfit.data.table import iter_rows

    path = tmp_path / "t.tsv"
    path.write_text('label\ttext\npos\t"He said ""hi"""\nneg\t"He said ""bye"""\n', encoding="utf-8")
    rows = [r["text"] for _, r in iter_rows(path, ["label", "text"])]
    assert rows == ['"He said ""hi"""', '"He said ""bye"""']
    err = capsys.readouterr().err
    assert err.count("--tsv-quotes") == 1 and "line 2" in err  # once per file
    assert [r["text"] for _, r in iter_rows(path, ["label", "text"], tsv_quotes=True)] == ['He said "hi"', 'He said "bye"']
