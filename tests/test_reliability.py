"""Nothing lost, nothing silently wrong: output folders, interrupted swaps, finished-but-unsaved runs."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

import ulmfit
from ulmfit.artifacts import load_language_model, save_model
from ulmfit.errors import UlmfitError
from ulmfit.io import atomic_dir, recover_dir
from ulmfit.models.config import preset
from ulmfit.models.language_model import LanguageModel
from ulmfit.settings import ExportSettings, PretrainSettings, TrainClassifierSettings

from classifier_helpers import synthetic_store, one_thread  # noqa: F401 (autouse)



def _lm(seed=0):
    torch.manual_seed(seed)
    m = LanguageModel(preset("tiny", 20))
    return m, {"kind": "language_model", "model": m.cfg}


def test_a_swap_that_died_between_its_renames_is_recovered_never_deleted(tmp_path):
    m, cfg = _lm()
    folder = tmp_path / "lm"
    save_model(folder, m, cfg)
    # the state after the first rename of a swap: only the hidden old copy is left
    os.replace(folder, tmp_path / ".lm.old")
    assert not folder.exists()
    lm, _, _ = load_language_model(folder, with_encoder=False)  # a reader finds the last good folder
    assert folder.is_dir() and not (tmp_path / ".lm.old").exists()
    assert torch.equal(lm.encoder.embedding.weight, m.encoder.embedding.weight)
    # and a writer starting from that state keeps it too (the next save replaces it only once complete)
    os.replace(folder, tmp_path / ".lm.old")
    m2, cfg2 = _lm(1)
    with pytest.raises(RuntimeError):
        with atomic_dir(folder) as tmp:
            (tmp / "partial").write_text("x")
            raise RuntimeError("killed while writing")
    assert (folder / "model.safetensors").exists()  # recovered before the failed write, not deleted by it
    save_model(folder, m2, cfg2)
    assert recover_dir(folder) == folder and not (tmp_path / ".lm.old").exists()


def test_hidden_files_survive_and_a_file_is_never_replaced_by_a_folder(tmp_path):
    m, cfg = _lm()
    folder = tmp_path / "lm"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref")
    (folder / ".gitignore").write_text("*.tmp\n")
    (folder / ".model.safetensors.abc.tmp").write_text("leftover of an interrupted write")
    save_model(folder, m, cfg)
    save_model(folder, m, cfg)
    assert (folder / ".git" / "HEAD").read_text() == "ref" and (folder / ".gitignore").exists()
    assert not (folder / ".model.safetensors.abc.tmp").exists()
    (tmp_path / "file").write_text("precious")
    with pytest.raises(UlmfitError, match="is a file, not a folder"):
        save_model(tmp_path / "file", m, cfg)
    assert (tmp_path / "file").read_text() == "precious" and not (tmp_path / ".file.old").exists()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from classifier_helpers import train_tiny_classifier

    return train_tiny_classifier(tmp_path_factory.mktemp("rel"), n_docs=120, n_test=40)


def test_export_only_replaces_what_it_wrote(classifier, capsys):
    clas, out = classifier / "clas", classifier / "export"
    before = sorted(p.name for p in clas.iterdir())
    with pytest.raises(UlmfitError, match="is the classifier folder itself"):
        ulmfit.export_classifier(clas, clas)
    assert sorted(p.name for p in clas.iterdir()) == before  # checkpoint, logs, best/ all kept
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UlmfitError, match="holds files an export does not write \\(notes.txt\\)"):
        ulmfit.export_classifier(clas, out)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    ulmfit.export_classifier(clas, out, ExportSettings(int8=True))
    ulmfit.export_classifier(clas, out)  # an earlier export is replaced
    assert json.loads((out / "config.json").read_text())["classifier"]["quantized"] is False


def test_done_means_the_folder_holds_the_final_model(tmp_path):
    """Killed after the final checkpoint was marked done but before the folder was saved: resume saves it."""
    from test_lm_cli import make_store

    make_store(tmp_path / "corpus", [f"w{i}" for i in range(20)])
    s = PretrainSettings(preset="tiny", epochs=2, max_steps=12, bs=4, bptt=10, threads=1, quiet=True)
    ulmfit.pretrain(tmp_path / "corpus", tmp_path / "lm", s)
    final = load_file(str(tmp_path / "lm" / "model.safetensors"))
    # simulate the crash: the folder still holds other (earlier) weights
    stale_state = {k: torch.zeros_like(v) for k, v in final.items()}
    save_model(tmp_path / "lm", stale_state, json.loads((tmp_path / "lm" / "config.json").read_text()))
    ulmfit.pretrain(tmp_path / "corpus", tmp_path / "lm", PretrainSettings(**{**s.__dict__, "resume": True}))
    again = load_file(str(tmp_path / "lm" / "model.safetensors"))
    assert all(torch.equal(final[k], again[k]) for k in final)


def test_resume_with_other_settings_names_what_differs(tmp_path):
    from test_lm_cli import make_store

    make_store(tmp_path / "corpus", [f"w{i}" for i in range(20)])
    s = PretrainSettings(preset="tiny", epochs=2, max_steps=12, bs=4, bptt=10, threads=1, quiet=True, max_minutes=0)
    ulmfit.pretrain(tmp_path / "corpus", tmp_path / "lm", s)  # stops at once (a budget of 0 minutes)
    other = PretrainSettings(**{**s.__dict__, "bs": 8, "alpha": 1.0, "resume": True, "max_minutes": None})
    with pytest.raises(UlmfitError, match=r"other settings: alpha 2.0 \(now 1.0\), bs 4 \(now 8\)"):
        ulmfit.pretrain(tmp_path / "corpus", tmp_path / "lm", other)
    # what only changes how it runs may differ
    same = PretrainSettings(**{**s.__dict__, "resume": True, "max_minutes": None, "threads": 2, "quiet": True})
    assert ulmfit.pretrain(tmp_path / "corpus", tmp_path / "lm", same)[-1]["step"] == 12


def test_non_text_values_are_errors_not_their_python_repr(tmp_path, classifier):
    from ulmfit.settings import EvaluateSettings, TableSettings

    (tmp_path / "t.jsonl").write_text('{"text": "fine", "label": "a"}\n{"text": ["a", "list"], "label": "b"}\n')
    with pytest.raises(UlmfitError, match=r"t.jsonl: line 2: field 'text': expected text, got list"):
        ulmfit.prepare("table", str(tmp_path / "t.jsonl"), tmp_path / "d", TableSettings(quiet=True))
    assert not (tmp_path / "d" / "dataset.json").exists()
    (tmp_path / "e.jsonl").write_text('{"text": "w5 w0", "label": "pos"}\n{"text": null, "label": "neg"}\n')
    with pytest.raises(UlmfitError, match=r"e.jsonl: line 2: field 'text': the text is empty"):
        ulmfit.evaluate(classifier / "clas", tmp_path / "e.jsonl", EvaluateSettings(quiet=True))


@pytest.mark.parametrize("kind,name,body", [
    ("table", "t.csv", "label,text\na,first text\nb,second\n"),
    ("table", "t.jsonl", '{"label": "a", "text": "first text"}\n{"label": "b", "text": "second"}\n'),
    ("corpus", "t.txt", "first text\nsecond\n")])
def test_a_byte_order_mark_is_read_the_same_everywhere(tmp_path, kind, name, body):
    import json

    from ulmfit.settings import CorpusSettings, TableSettings

    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + body.encode())
    s = TableSettings(label_col=["label"], quiet=True) if kind == "table" else CorpusSettings(quiet=True)
    ulmfit.prepare(kind, str(tmp_path / name) if kind == "table" else [str(tmp_path / name)], tmp_path / "d", s)
    first = json.loads((tmp_path / "d" / "documents.jsonl").read_text().splitlines()[0])
    assert first["text"] == "first text" and "\ufeff" not in (tmp_path / "d" / "documents.jsonl").read_text()


def test_an_empty_class_folder_is_an_error_not_a_missing_class(tmp_path):
    from ulmfit.settings import FolderSettings

    for c, texts in (("good", ["fine film", "great"]), ("bad", ["awful", "dull"]), ("meh", [])):
        (tmp_path / "src" / c).mkdir(parents=True)
        for i, t in enumerate(texts):
            (tmp_path / "src" / c / f"{i}.txt").write_text(t)
    with pytest.raises(UlmfitError, match=r"src/meh: the class folder is empty"):
        ulmfit.prepare("folder", str(tmp_path / "src"), tmp_path / "d", FolderSettings(quiet=True))
    (tmp_path / "src" / "meh").rmdir()
    assert ulmfit.prepare("folder", str(tmp_path / "src"), tmp_path / "d", FolderSettings(quiet=True))["classes"] == ["bad", "good"]


def test_predict_takes_bytes_that_are_not_utf8_from_stdin_and_arguments(classifier, monkeypatch, capsys):
    import io
    import sys

    from ulmfit.cli import main

    raw = io.BytesIO(b"w5 w0 fine\nbad \xff\xfe bytes\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))
    assert main(["predict", str(classifier / "clas"), "--quiet"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    # an argument's undecodable byte reaches Python as a lone surrogate (surrogateescape)
    assert main(["predict", str(classifier / "clas"), "bad \udcff arg", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("neg", "pos")


def test_a_token_store_older_than_its_dataset_is_refused(tmp_path):
    from ulmfit.settings import TableSettings, TokenizeSettings
    from ulmfit.text.store import TokenStore

    (tmp_path / "t.csv").write_text("label,text\na,one text\nb,another text\na,more\n")
    ulmfit.prepare("table", str(tmp_path / "t.csv"), tmp_path / "d", TableSettings(label_col=["label"], quiet=True))
    ulmfit.tokenize(tmp_path / "d", TokenizeSettings(min_freq=1, workers=1, quiet=True))
    TokenStore(tmp_path / "d")
    (tmp_path / "t.csv").write_text("label,text\nb,one text\na,another text\nb,more\n")  # labels changed
    ulmfit.prepare("table", str(tmp_path / "t.csv"), tmp_path / "d", TableSettings(label_col=["label"], quiet=True))
    with pytest.raises(UlmfitError, match="made from another version .* run `ulmfit tokenize"):
        TokenStore(tmp_path / "d")
    with pytest.raises(UlmfitError, match="made from another version"):
        ulmfit.train_classifier(tmp_path / "d", tmp_path / "c", settings=TrainClassifierSettings(preset="tiny"))
    store, reused = ulmfit.tokenize(tmp_path / "d", TokenizeSettings(min_freq=1, workers=1, quiet=True))
    assert not reused and TokenStore(tmp_path / "d").labels.tolist() == store.labels.tolist()


def _prepared_table(folder, rows=("a,one text", "b,another text", "a,more")):
    from ulmfit.settings import TableSettings

    folder.parent.mkdir(parents=True, exist_ok=True)
    src = folder.parent / f"{folder.name}.csv"
    src.write_text("label,text\n" + "\n".join(rows) + "\n")
    ulmfit.prepare("table", str(src), folder, TableSettings(label_col=["label"], quiet=True))
    return folder


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_damaged_imdb_archive_is_an_error_not_part_of_the_data(tmp_path, monkeypatch, run_cli):
    import gzip
    import hashlib
    import io
    import tarfile

    from test_prepare import make_imdb_tar
    from ulmfit.data import imdb
    from ulmfit.settings import ImdbSettings

    good = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    ulmfit.prepare("imdb", str(good), tmp_path / "d", ImdbSettings(quiet=True))
    before = _files(tmp_path / "d")  # a good dataset, which a failed prepare must leave as it is
    tar = gzip.decompress(good.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        test_header = next(m.offset for m in tf if m.name.startswith("aclImdb/test/"))
    stored = bytearray(gzip.compress(tar, compresslevel=0))  # no compression: the reviews' bytes are in the file
    at = stored.index(b"A pos review number 7 of test")
    stored[at] ^= 0x01
    cases = {
        # a damaged header block in the middle: tarfile took it for the end (train read, the test split missing)
        "header": (gzip.compress(tar[:test_header] + b"\xff" * 512 + tar[test_header + 512:]),
                   r"damaged: a bad tar header at byte"),
        # a byte damaged inside a review: only the gzip CRC at the very end of the file tells
        "crc": (bytes(stored), r"damaged or cut short \(CRC check failed"),
        # a whole tar of train/ only: a good archive, not a whole aclImdb
        "train-only": (gzip.compress(tar[:test_header] + bytes(1024)),
                       r"incomplete aclImdb: no reviews in aclImdb/test/pos, aclImdb/test/neg"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.tar.gz"
        path.write_bytes(data)
        with pytest.raises(UlmfitError, match=f"{path}: .*{message}"):
            ulmfit.prepare("imdb", str(path), tmp_path / "d", ImdbSettings(quiet=True))
        assert _files(tmp_path / "d") == before, name
    code, _, err = run_cli("prepare", "imdb", tmp_path / "header.tar.gz", "--out", tmp_path / "d", "--quiet")
    assert code == 1 and err.startswith(f"ulmfit prepare: error: {tmp_path / 'header.tar.gz'}: the archive is damaged")
    # a folder that an earlier version prepared from a partial archive is not reused
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    del meta["class_counts"]["test"]
    (tmp_path / "d" / "dataset.json").write_text(json.dumps(meta))
    again = ulmfit.prepare("imdb", str(good), tmp_path / "d", ImdbSettings(quiet=True))
    assert not again["reused"] and again["class_counts"]["test"] == {"neg": 20, "pos": 20}
    before = _files(tmp_path / "d")
    # The official file is known by its sha256, and so is the count of every folder in it.
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    monkeypatch.setattr(imdb, "KNOWN_ARCHIVES", {sha: "the official file"})
    monkeypatch.setattr(imdb, "OFFICIAL_COUNTS", {**imdb.OFFICIAL_COUNTS, **{k: 20 for k in imdb.OFFICIAL_COUNTS}})
    assert ulmfit.prepare("imdb", str(good), tmp_path / "d2", ImdbSettings(quiet=True))["n_docs"] == 100
    monkeypatch.setattr(imdb, "OFFICIAL_COUNTS", {**imdb.OFFICIAL_COUNTS, ("train", "unsup"): 21})
    with pytest.raises(UlmfitError, match=r"is the official file \(by its sha256\), but the reviews read differ: "
                                          r"train/unsup 20 \(expected 21\)"):
        ulmfit.prepare("imdb", str(good), tmp_path / "d", ImdbSettings(quiet=True, force=True))
    assert _files(tmp_path / "d") == before


def test_a_cut_short_or_unreadable_file_is_an_error_naming_it(tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ulmfit.settings import ImdbSettings, TableSettings
    from test_prepare import make_imdb_tar

    good = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "page.tar.gz").write_bytes(b"<html><body>404 Not Found</body></html>\n" * 20)
    for name, message in (("cut", "the archive is damaged or cut short"),
                          ("page", r"not a readable tar archive \(plain, .gz, .bz2 or .xz\)")):
        with pytest.raises(UlmfitError, match=f"{tmp_path / name}.tar.gz: {message}"):
            ulmfit.prepare("imdb", str(tmp_path / f"{name}.tar.gz"), tmp_path / "d", ImdbSettings(quiet=True))
    # a table compressed and cut short
    csv = gzip.compress(("label,text\n" + "".join(f"{'ab'[i % 2]},text number {i}\n" for i in range(3000))).encode())
    (tmp_path / "t.csv.gz").write_bytes(csv[: len(csv) // 2])
    table = TableSettings(label_col=["label"], quiet=True)
    with pytest.raises(UlmfitError, match=r"t.csv.gz: line \d+: the compressed file is damaged or cut short"):
        ulmfit.prepare("table", str(tmp_path / "t.csv.gz"), tmp_path / "d", table)
    # a Parquet file with a damaged data page in its second row group (of three)
    rows = range(3000)
    pq.write_table(pa.table({"text": [f"review number {i} " * 5 for i in rows], "label": ["ab"[i % 2] for i in rows]}),
                   tmp_path / "t.parquet", row_group_size=1000)
    chunk = pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(1).column(0)
    data = bytearray((tmp_path / "t.parquet").read_bytes())
    middle = (chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size // 2
    data[middle : middle + 16] = b"\x00\x07" * 8
    (tmp_path / "t.parquet").write_bytes(data)
    with pytest.raises(UlmfitError, match=r"t.parquet: row group 1 \(rows 1,001-2,000\) is damaged and cannot be read"):
        ulmfit.prepare("table", str(tmp_path / "t.parquet"), tmp_path / "d", table)
    assert not (tmp_path / "d" / "dataset.json").exists()


def test_a_full_disk_is_a_clear_error_and_the_old_file_stays(classifier, tmp_path, monkeypatch, run_cli):
    import errno
    import pathlib

    from ulmfit.data import dataset

    out = tmp_path / "predictions.jsonl"
    out.write_text("earlier predictions\n")
    write_text = pathlib.Path.write_text

    def disk_fills(self, data, *a, **kw):  # a temporary file is half written when the disk is full
        if self.name.endswith(".tmp"):
            write_text(self, data[: len(data) // 2], *a, **kw)
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, data, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(pathlib.Path, "write_text", disk_fills)
        code, _, err = run_cli("predict", classifier / "clas", "w5 w0 fine", "--output", out, "--quiet")
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"ulmfit predict: error: {out}: no space left on device while writing it "
                          "(nothing was replaced")
    assert out.read_text() == "earlier predictions\n" and [p.name for p in tmp_path.iterdir()] == [out.name]

    # A full disk met where no file is named (here: any command's OSError) gets the same treatment.
    def quota(*a, **kw):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", "/data/tokens/ids.npy")

    with monkeypatch.context() as m:
        m.setattr(ulmfit.api, "tokenize", quota)
        code, _, err = run_cli("tokenize", tmp_path)
    assert code == 1 and err.startswith("ulmfit tokenize: error: /data/tokens/ids.npy: Disk quota exceeded")

    # prepare: the disk fills while documents are read (nothing replaced), or while the rest is written
    # (the folder is left without dataset.json: unprepared, never the old dataset with the new documents)
    folder = _prepared_table(tmp_path / "d")
    before = _files(folder)

    class FullFile:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()

    with monkeypatch.context() as m:
        m.setattr(dataset, "open", lambda path, mode="r", **kw: FullFile(open(path, mode, **kw)) if "w" in mode
                  else open(path, mode, **kw), raising=False)
        with pytest.raises(UlmfitError, match=f"{folder / 'documents.jsonl'}: no space left on device while writing "
                                              r"it \(nothing was replaced"):
            _prepared_table(folder, rows=("b,new", "a,texts"))
    assert _files(folder) == before

    def save_npy_full(path, array):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(dataset, "save_npy", save_npy_full)
        with pytest.raises(UlmfitError, match=f"{folder}: no space left on device while writing it "
                                              r"\(the folder is left unprepared: it has no dataset.json"):
            _prepared_table(folder, rows=("b,new", "a,texts"))
    assert not (folder / "dataset.json").exists() and not list(folder.glob(".*.tmp"))


def test_two_tokenize_runs_on_one_folder_take_turns(tmp_path, monkeypatch, capsys):
    import threading
    import time

    from ulmfit.settings import TokenizeSettings
    from ulmfit.text import pipeline

    folder = _prepared_table(tmp_path / "d")
    started, go = threading.Event(), threading.Event()
    encode = pipeline._encode_lines

    def held_up(job):  # the first run holds the lock until the test lets it go on
        started.set()
        assert go.wait(60)
        return encode(job)

    monkeypatch.setattr(pipeline, "_encode_lines", held_up)
    reused = {}

    def run(name):
        reused[name] = ulmfit.tokenize(folder, TokenizeSettings(min_freq=1, workers=1, quiet=True))[1]

    first = threading.Thread(target=run, args=("first",))
    first.start()
    try:
        assert started.wait(60)
        second = threading.Thread(target=run, args=("second",))
        second.start()
        err, deadline = "", time.time() + 20
        while "waiting" not in err and time.time() < deadline:
            time.sleep(0.05)
            err += capsys.readouterr().err
        assert f"ulmfit tokenize: waiting for another tokenize of {folder} to finish" in err
        assert second.is_alive() and not reused
    finally:
        go.set()
    first.join(60)
    second.join(60)
    err += capsys.readouterr().err
    assert reused == {"first": False, "second": True}  # the second waited, then took what the first made
    assert err.count("waiting") == 1


def test_tokenize_removes_what_interrupted_runs_left_and_nothing_else(tmp_path):
    from ulmfit.settings import TokenizeSettings

    folder = _prepared_table(tmp_path / "d")
    left = folder / ".tokens.k2x9_q0a.tmp"  # the name atomic_dir gives the store while it is written
    (left / "ids.npy").parent.mkdir()
    (left / "ids.npy").write_bytes(bytes(1000))
    others = [folder / ".tokens.abc.tmp", folder / "tokens.abcdefgh.tmp", folder / ".tokens.abcdefgh.tmp.bak",
              folder / ".documents.jsonl.abcdefgh.tmp", folder / "notes"]
    for p in others:
        p.mkdir()
    (folder / ".tokens.abcdefgh.txt").write_text("mine")
    s = TokenizeSettings(min_freq=1, workers=1, quiet=True)
    assert not ulmfit.tokenize(folder, s)[1]
    assert not left.exists() and all(p.is_dir() for p in others) and (folder / ".tokens.abcdefgh.txt").exists()
    left.mkdir()  # left again: a run that reuses the store clears it too
    assert ulmfit.tokenize(folder, s)[1] and not left.exists()


def test_an_output_path_of_the_wrong_kind_is_an_error_before_any_work(classifier, tmp_path, monkeypatch, run_cli):
    from test_lm_cli import make_store
    from ulmfit.inference import TextClassifier
    from ulmfit.settings import PredictSettings

    clas, data = classifier / "clas", classifier / "data"
    make_store(tmp_path / "corpus", [f"w{i}" for i in range(20)])
    folder, afile = tmp_path / "a-folder", tmp_path / "a-file"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    afile.write_text("precious")
    (tmp_path / "t.csv").write_text("label,text\na,x\nb,y\n")
    monkeypatch.setattr(TextClassifier, "load", lambda *a, **kw: pytest.fail("work was done: a model was loaded"))
    code, _, err = run_cli("predict", clas, "a text", "--output", folder, "--quiet")
    assert code == 1 and err == f"ulmfit predict: error: {folder} is a folder, not a file: give a file name to write\n"
    with pytest.raises(UlmfitError, match="is a folder, not a file"):
        ulmfit.predict(clas, ["a text"], PredictSettings(output=str(folder)))
    wrong = [["predict", clas, "a text", "--output", afile / "p.jsonl"],
             ["evaluate", clas, data, "--out", afile], ["export-classifier", clas, afile],
             ["baseline", data, "--out", afile], ["prepare", "table", tmp_path / "t.csv", "--out", afile],
             ["train-classifier", data, "--out", afile, "--preset", "tiny"],
             ["pretrain", tmp_path / "corpus", "--out", afile / "lm", "--preset", "tiny"],
             ["finetune-lm", tmp_path / "corpus", "--from", "en-qrnn", "--out", afile]]
    for args in wrong:
        code, _, err = run_cli(*args)
        assert code == 1 and f"error: {afile} is a file, not a folder" in err, args
    assert afile.read_text() == "precious" and [p.name for p in folder.iterdir()] == ["mine.txt"]


def test_the_training_functions_refuse_a_file_as_their_output_folder(tmp_path):
    import ulmfit

    f = tmp_path / "a-file"
    f.write_text("mine\n")
    for call in (lambda: ulmfit.pretrain(tmp_path / "no-corpus", f), lambda: ulmfit.finetune_lm(tmp_path, "x", f),
                 lambda: ulmfit.lr_find_lm(tmp_path, f), lambda: ulmfit.train_classifier(tmp_path, f)):
        with pytest.raises(UlmfitError, match="is a file, not a folder"):
            call()
    assert f.read_text() == "mine\n"
