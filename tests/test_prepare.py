import gzip
import http.server
import io
import json
import lzma
import os
import tarfile
import threading

import numpy as np
import pytest

from ulmfit.data.dataset import DatasetWriter
from ulmfit.data.download import download
from ulmfit.data.imdb import prepare_imdb
from ulmfit.data.table import prepare_corpus, prepare_folder, prepare_table
from ulmfit.errors import InputError, UlmfitError
from ulmfit.text.store import TokenStore


def make_imdb_tar(path, n=6, bad=None):
    """A small aclImdb_v1.tar.gz in the original layout: n reviews per folder."""
    with tarfile.open(path, "w:gz") as tf:
        for split in ("train", "test"):
            for cls in ("pos", "neg") + (("unsup",) if split == "train" else ()):
                for i in range(n):
                    rating = 0 if cls == "unsup" else (8 if cls == "pos" else 2)
                    text = f"A {cls} review number {i} of {split}.<br /><br />It was GOOD!!!!"
                    data = text.encode() if bad != (split, cls, i) else b"caf\xe9 bad bytes"
                    info = tarfile.TarInfo(f"aclImdb/{split}/{cls}/{i}_{rating}.txt")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        readme = tarfile.TarInfo("aclImdb/README")
        readme.size = 2
        tf.addfile(readme, io.BytesIO(b"hi"))
    return path


def read_docs(root):
    return [json.loads(line) for line in open(root / "documents.jsonl", encoding="utf-8")]


def test_imdb_tarball(tmp_path):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz")
    meta, cached = prepare_imdb(tar, tmp_path / "ds", progress=False)
    assert not cached and meta["n_docs"] == 30 and meta["classes"] == ["neg", "pos"]
    assert meta["splits"]["train"] == 12 and meta["splits"]["test"] == 12
    assert meta["splits"]["lm_train"] + meta["splits"]["lm_valid"] == 30 and meta["splits"]["lm_valid"] == 3
    docs = read_docs(tmp_path / "ds")
    labels = np.load(tmp_path / "ds" / "labels.npy")
    for d, lab in zip(docs, labels):
        split, cls, _ = d["id"].split("/")
        assert d["split"] == ("unsup" if cls == "unsup" else split)
        assert lab == {"neg": 0, "pos": 1, "unsup": -1}[cls]
        assert d["label"] == (None if cls == "unsup" else cls)
    # lm split: fixed seed, disjoint, covers everything
    lm_t, lm_v = (np.load(tmp_path / "ds" / "splits" / f"{s}.npy") for s in ("lm_train", "lm_valid"))
    assert sorted(np.concatenate([lm_t, lm_v]).tolist()) == list(range(30))
    meta2, cached2 = prepare_imdb(tar, tmp_path / "ds", progress=False)
    assert cached2 and meta2 == meta
    st = os.stat(tar)  # a copy or restore that only moves the modification time keeps the cache
    os.utime(tar, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    assert prepare_imdb(tar, tmp_path / "ds", progress=False)[1]
    prepare_imdb(tar, tmp_path / "ds2", progress=False)
    assert np.array_equal(np.load(tmp_path / "ds2" / "splits" / "lm_valid.npy"), lm_v)


def test_imdb_folder_and_bad_bytes(tmp_path):
    tar = make_imdb_tar(tmp_path / "a.tar.gz", n=2, bad=("test", "neg", 1))
    with pytest.raises(InputError, match=r"aclImdb/test/neg/1_2.txt.*line 1.*UTF-8"):
        prepare_imdb(tar, tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds" / "dataset.json").exists()
    assert not list((tmp_path / "ds").glob("*.tmp")) and not list((tmp_path / "ds").glob(".*.tmp"))
    good = make_imdb_tar(tmp_path / "b.tar.gz", n=2)
    with tarfile.open(good) as tf:
        tf.extractall(tmp_path / "unpacked", filter="data")
    meta, _ = prepare_imdb(tmp_path / "unpacked", tmp_path / "ds", progress=False)
    assert meta["n_docs"] == 10
    assert read_docs(tmp_path / "ds")[0]["id"] == "train/neg/0_2.txt"


def test_imdb_download_from_local_server(tmp_path, monkeypatch):
    make_imdb_tar(tmp_path / "served" / "aclImdb_v1.tar.gz" if (tmp_path / "served").mkdir() is None else None)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "served"), **kw)

        def log_message(self, *a):
            requests.append(a)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("ULMFIT_CACHE", str(tmp_path / "cache"))
        url = f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz"
        meta, _ = prepare_imdb(url, tmp_path / "ds", progress=False)
        assert meta["n_docs"] == 30 and (tmp_path / "cache" / "aclImdb_v1.tar.gz").exists()
        n = len(requests)
        prepare_imdb(url, tmp_path / "ds3", progress=False)
        assert len(requests) == n  # never downloaded twice
        with pytest.raises(UlmfitError, match="corrupt: size"):
            download(url.replace("aclImdb_v1", "aclImdb_v1") + "?x", tmp_path / "other", size=5, progress=False)
        with pytest.raises(UlmfitError, match="md5"):
            download(url, tmp_path / "other2", md5="0" * 32, progress=False)
        assert not (tmp_path / "other2" / "aclImdb_v1.tar.gz").exists()
        with pytest.raises(UlmfitError, match="could not download"):
            download(url.replace("aclImdb_v1", "missing"), tmp_path / "x", progress=False)
    finally:
        server.shutdown()


def write(path, text, mode="w"):
    path.write_text(text, encoding="utf-8")
    return path


def test_table_csv_multi_field_and_empty_rows(tmp_path):
    train = write(tmp_path / "train.csv", 'title,body,label\nGood,"Nice, ""really""\nnice",pos\n'
                  'Bad,Awful,neg\n ,  ,pos\nOk,Fine,pos\n')
    test = write(tmp_path / "test.tsv", "title\tbody\tlabel\nMeh\tSo so\tneg\n")
    unl = tmp_path / "unl.jsonl.gz"
    with gzip.open(unl, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"title": "U", "body": "unlabelled"}) + "\n")
    meta, _ = prepare_table(train, tmp_path / "ds", ["title", "body"], label_col="label", test=test,
                            unlabelled=[unl], progress=False)
    assert meta["classes"] == ["neg", "pos"] and meta["n_docs"] == 5
    assert meta["skipped"]["empty documents"] == {"count": 1, "examples": [f"{train}:5"]}
    docs = read_docs(tmp_path / "ds")
    assert docs[0]["text"] == ["Good", 'Nice, "really"\nnice'] and docs[0]["id"] == "train.csv:3"
    assert [d["split"] for d in docs] == ["train", "train", "train", "test", "unsup"]
    assert np.load(tmp_path / "ds" / "labels.npy").tolist() == [1, 0, 1, 0, -1]


@pytest.mark.parametrize("content,match", [
    ("text,label\nfine,pos\nragged,pos,extra\n", r"train.csv: line 3: row has 3 fields"),
    ("text,label\nfine,pos\nno label,\n", r"train.csv: line 3: field 'label': missing label"),
    ("text,label\na,pos\nb,pos\n", r"train.csv: field 'label': the label column has 1 class"),
    ("txt,label\na,pos\n", r"train.csv: line 1: no column 'text'"),
])
def test_table_errors_name_file_and_line(tmp_path, content, match):
    train = write(tmp_path / "train.csv", content)
    with pytest.raises(InputError, match=match):
        prepare_table(train, tmp_path / "ds", ["text"], label_col="label", progress=False)
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_table_non_utf8_and_unknown_test_label(tmp_path):
    train = tmp_path / "train.csv"
    train.write_bytes(b"text,label\nok,pos\nok2,neg\ncaf\xe9,pos\n")
    with pytest.raises(InputError, match=r"line 4: not valid UTF-8"):
        prepare_table(train, tmp_path / "ds", ["text"], label_col="label", progress=False)
    train.write_bytes(b"text,label\nok,pos\nok2,neg\n")
    test = write(tmp_path / "test.csv", "text,label\nx,maybe\n")
    with pytest.raises(InputError, match=r"test.csv: field 'label': test labels \['maybe'\]"):
        prepare_table(train, tmp_path / "ds", ["text"], label_col="label", test=test, progress=False)


def test_table_parquet_and_jsonl_xz_with_valid_split(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 20
    pq.write_table(pa.table({"t": [f"doc {i}" for i in range(n)], "y": [i % 3 for i in range(n)]}),
                   tmp_path / "train.parquet")
    with lzma.open(tmp_path / "test.jsonl.xz", "wt") as f:
        f.write(json.dumps({"t": "x", "y": 2}) + "\n\n" + json.dumps({"t": "z", "y": 0}) + "\n")
    meta, _ = prepare_table(tmp_path / "train.parquet", tmp_path / "ds", ["t"], label_col="y",
                            test=tmp_path / "test.jsonl.xz", valid_frac=0.25, progress=False)
    assert meta["classes"] == ["0", "1", "2"]
    assert meta["splits"]["train"] == 15 and meta["splits"]["valid"] == 5 and meta["splits"]["test"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": "a", "y": 1}\n{"t": "b"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 2: field 'y': missing"):
        prepare_table(bad, tmp_path / "ds2", ["t"], label_col="y", progress=False)


def test_folder_per_class(tmp_path):
    for split in ("train", "test"):
        for cls in ("cats", "dogs"):
            (tmp_path / "f" / split / cls).mkdir(parents=True)
            for i in range(3):
                write(tmp_path / "f" / split / cls / f"{i}.txt", f"{cls} text {i}")
    (tmp_path / "f" / "train" / "unsup").mkdir()
    write(tmp_path / "f" / "train" / "unsup" / "u.txt", "no label")
    write(tmp_path / "f" / "train" / "cats" / "empty.txt", "   ")
    meta, _ = prepare_folder(tmp_path / "f", tmp_path / "ds", progress=False)
    assert meta["classes"] == ["cats", "dogs"] and meta["splits"]["train"] == 6 and meta["splits"]["test"] == 6
    assert meta["n_docs"] == 13 and meta["skipped"]["empty documents"]["count"] == 1


def test_corpus_jsonl_xz_and_text_with_slice(tmp_path):
    with lzma.open(tmp_path / "c.jsonl.xz", "wt") as f:
        for i in range(50):
            f.write(json.dumps({"id": i, "text": f"Sentence number {i} of the corpus."}) + "\n")
    write(tmp_path / "c.txt", "line one\n\nline two\n")
    meta, _ = prepare_corpus([tmp_path / "c.txt", tmp_path / "c.jsonl.xz"], tmp_path / "ds", progress=False)
    assert meta["n_docs"] == 52 and meta["skipped"]["empty documents"]["count"] == 1
    assert meta["classes"] is None and set(meta["splits"]) == {"lm_train", "lm_valid"}
    meta, _ = prepare_corpus([tmp_path / "c.jsonl.xz"], tmp_path / "ds2", max_docs=10, progress=False)
    assert meta["n_docs"] == 10
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": 5}\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 2: field 'text'"):
        prepare_corpus([bad], tmp_path / "ds3", progress=False)


def test_writer_abort_keeps_previous_dataset(tmp_path):
    w = DatasetWriter(tmp_path / "ds", "x")
    w.add("a", "train", "hello", "p")
    w.add("b", "train", "world", "n")
    w.finish()
    before = (tmp_path / "ds" / "documents.jsonl").read_bytes()
    w2 = DatasetWriter(tmp_path / "ds", "x")
    w2.add("c", "train", "other", "p")
    w2.abort()
    assert (tmp_path / "ds" / "documents.jsonl").read_bytes() == before


def test_cli_prepare_and_tokenize(tmp_path, run_cli):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz")
    code, out, err = run_cli("prepare", "imdb", tar, "--out", tmp_path / "ds", "--quiet")
    assert code == 0 and out.startswith("prepared") and "30 documents" in out
    code, out, err = run_cli("tokenize", tmp_path / "ds", "--min-freq", "1", "--quiet")
    assert code == 0 and "wrote" in out
    store = TokenStore(tmp_path / "ds")
    assert store.split("train").labels.tolist().count(1) == 6
    code, out, _ = run_cli("tokenize", tmp_path / "ds", "--min-freq", "1", "--quiet")
    assert out.startswith("reused")
    code, out, err = run_cli("prepare", "table", tmp_path / "nope.csv", "--text-col", "t", "--out", tmp_path / "x")
    assert code == 1 and "nope.csv: no such file" in err and "Traceback" not in err
    code, _, err = run_cli("tokenize", tmp_path / "x")
    assert code == 1 and "not a prepared dataset" in err


def test_every_command_has_help(run_cli):
    from ulmfit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        help_text = p.format_help()
        assert len(help_text) > 100, name
        for action in p._actions:
            if action.dest not in ("help",) and not action.option_strings == [] or action.help:
                assert action.help, f"{name} {action.dest} has no help"


def test_table_cache_follows_the_content_not_the_clock(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\ngood film,pos\nbad film,neg\n")
    meta, cached = prepare_table(path, tmp_path / "ds", ["text"], label_col="label", progress=False)
    assert not cached
    path.write_text("text,label\ngood film,pos\nbad film,neg\n")  # rewritten, same bytes
    assert prepare_table(path, tmp_path / "ds", ["text"], label_col="label", progress=False)[1]
    path.write_text("text,label\ngood film,neg\nbad film,pos\n")  # same size, other content
    meta2, cached2 = prepare_table(path, tmp_path / "ds", ["text"], label_col="label", progress=False)
    assert not cached2 and np.load(tmp_path / "ds" / "labels.npy").tolist() == [0, 1]
