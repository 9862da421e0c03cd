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
    root = tmp_path_factory.mktemp("rel")
    synthetic_store(root / "data", n_docs=120, n_test=40)
    ulmfit.train_classifier(root / "data", root / "clas", settings=TrainClassifierSettings(
        preset="tiny", stages="all:1:1e-2", bs=16, threads=1, quiet=True))
    return root


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
