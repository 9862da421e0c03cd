"""Nothing read from a folder reaches outside it; no output overwrites an input or follows a symlink; OS errors
are one line; weights get the mode of every other file; a single- and a multi-label model never average."""

import errno
import io
import json
import os
import shutil
import sys

import pytest
import torch

import ulmfit
from ulmfit.artifacts import LanguageModelConfig, save_language_model, save_model
from ulmfit.cli import main
from ulmfit.errors import DiskFullError, InputError, UlmfitError
from ulmfit.models.config import preset
from ulmfit.models.language_model import LanguageModel
from ulmfit.settings import (EvaluateSettings, FinetuneSettings, PredictSettings, PretrainSettings, SelfTrainSettings,
                             TrainClassifierSettings)
from ulmfit.text.encoder import TextEncoder
from ulmfit.text.store import TokenStore

from classifier_helpers import synthetic_store, one_thread  # noqa: F401 (autouse)

TINY = dict(preset="tiny", stages="all:1:1e-2", bs=16, threads=1, quiet=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny dataset, a language model on its vocab and a classifier trained on it (once per module)."""
    root = tmp_path_factory.mktemp("folders")
    synthetic_store(root / "data", n_docs=80, n_test=30)
    store = TokenStore(root / "data")
    torch.manual_seed(0)
    lm = LanguageModel(preset("tiny", len(store.vocab)))
    save_language_model(root / "lm", lm, LanguageModelConfig(lm.cfg), TextEncoder.from_store(store))
    ulmfit.train_classifier(root / "data", root / "clas", settings=TrainClassifierSettings(**TINY))
    return root


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_json(path, **changes):
    from classifier_helpers import edit_json

    edit_json(path, **changes)


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ 1. names read from a folder stay inside it

@pytest.mark.parametrize("name", ["", ".", "..", "../spm.model", "a/b", "/etc/passwd", "a\\b", "a\0b", 5, None])
def test_a_file_name_read_from_a_folder_must_be_a_plain_name(name):
    from ulmfit.io import plain_file_name

    with pytest.raises(InputError, match=r"x/tokenizer.json: field 'model': .*plain file name"):
        plain_file_name(name, "x/tokenizer.json", "model")
    assert plain_file_name("spm.model", "x/tokenizer.json", "model") == "spm.model"


def test_a_store_manifest_cannot_make_train_classifier_write_outside_its_out(folders, tmp_path):
    data = _copy(folders / "data", tmp_path / "a" / "data")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "spm.model").write_bytes(b"precious")
    (tmp_path / "a" / "victim").mkdir()  # what the name reaches from data/tokens/
    shutil.copyfile(victim / "spm.model", tmp_path / "a" / "victim" / "spm.model")
    _edit_json(data / "tokens" / "manifest.json",
               tokenizer={"backend": "sentencepiece", "model": "../../victim/spm.model"})
    with pytest.raises(UlmfitError, match=r"tokens/manifest.json: field 'tokenizer.model': .*plain file name"):
        ulmfit.train_classifier(data, tmp_path / "a" / "out", settings=TrainClassifierSettings(**TINY))
    assert (victim / "spm.model").read_bytes() == b"precious" and not (tmp_path / "a" / "out").exists()


@pytest.mark.parametrize("settings,field", [
    ({"backend": "sentencepiece", "model": "/etc/passwd"}, "model"),
    ({"backend": "sentencepiece", "model": "../data/tokens/vocab.json"}, "model"),
    ({"backend": "spacy", "lang": "../../etc"}, "lang"),
    ({"backend": "spacy", "lang": "zz"}, "lang")])
def test_predict_refuses_a_tokenizer_json_naming_something_outside_its_folder(folders, tmp_path, settings, field):
    clas = _copy(folders / "clas", tmp_path / "clas")
    (clas / "tokenizer.json").write_text(json.dumps(settings))
    with pytest.raises(UlmfitError, match=rf"clas/tokenizer.json: field '{field}'"):
        ulmfit.predict(clas, ["w5 w0"], PredictSettings(quiet=True))


# ------------------------------------------------------------------ 2. symlinks in an output folder

def test_a_symlink_inside_an_output_folder_stays_a_link_and_is_never_written_through(folders, tmp_path):
    lm = _copy(folders / "lm", tmp_path / "lm")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "notes.txt").write_text("mine")
    (elsewhere / "sub" / "deep.txt").write_text("deep")
    (lm / "shared").symlink_to(elsewhere)
    (lm / "notes.txt").symlink_to(elsewhere / "notes.txt")
    (lm / "logs").mkdir()
    (lm / "logs" / "rel").symlink_to("../../elsewhere/sub")
    before = _tree(elsewhere)
    config = json.loads((lm / "config.json").read_text())
    save_model(lm, LanguageModel(preset("tiny", config["model"]["vocab_size"])), config)
    assert (lm / "shared").is_symlink() and os.readlink(lm / "shared") == str(elsewhere)
    assert (lm / "notes.txt").is_symlink() and os.readlink(lm / "notes.txt") == str(elsewhere / "notes.txt")
    assert (lm / "logs" / "rel").is_symlink() and (lm / "logs" / "rel" / "deep.txt").read_text() == "deep"
    assert _tree(elsewhere) == before
    assert os.stat(elsewhere / "notes.txt").st_nlink == 1 and os.stat(elsewhere / "sub" / "deep.txt").st_nlink == 1


def test_an_output_folder_that_is_a_symlink_is_refused(folders, tmp_path):
    elsewhere = _copy(folders / "lm", tmp_path / "elsewhere")
    before = _tree(elsewhere)
    (tmp_path / "out").symlink_to(elsewhere)
    config = json.loads((elsewhere / "config.json").read_text())
    with pytest.raises(UlmfitError, match=r"out is a symbolic link .*elsewhere"):
        save_model(tmp_path / "out", LanguageModel(preset("tiny", config["model"]["vocab_size"])), config)
    assert (tmp_path / "out").is_symlink() and _tree(elsewhere) == before
    # a folder that only gets files written into it (not swapped whole) may be a link: that is the user's choice
    (tmp_path / "reports").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "reports")
    ulmfit.evaluate(folders / "clas", folders / "data", EvaluateSettings(out=str(tmp_path / "link"), quiet=True))
    assert (tmp_path / "link").is_symlink() and (tmp_path / "reports" / "evaluation.json").exists()


def test_a_best_folder_that_is_a_symlink_is_refused_before_training(folders, tmp_path):
    out = tmp_path / "clas"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    (out / "best").symlink_to(elsewhere)
    with pytest.raises(UlmfitError, match=r"clas/best is a symbolic link"):
        ulmfit.train_classifier(folders / "data", out, settings=TrainClassifierSettings(**TINY))
    assert (out / "best").is_symlink() and sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert not (out / "model.safetensors").exists()


# ------------------------------------------------------------------ 3. an output that is an input

def test_predict_refuses_an_output_that_is_its_input(folders, tmp_path, run_cli):
    (tmp_path / "in.txt").write_text("w5 w0\nw1 w7\n")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "in.txt")
    for output in (tmp_path / "in.txt", tmp_path / "alias.txt"):
        code, out, err = run_cli("predict", folders / "clas", "--input", tmp_path / "in.txt", "--output", output)
        assert code == 1 and "is also the --input" in err and len(err.strip().splitlines()) == 1
    # nor a file of the classifier folder it reads
    clas = _copy(folders / "clas", tmp_path / "clas")
    before = _tree(clas)
    code, _, err = run_cli("predict", clas, "w5 w0", "--output", clas / "config.json")
    assert code == 1 and "config.json" in err and _tree(clas) == before
    assert (tmp_path / "in.txt").read_text() == "w5 w0\nw1 w7\n"


def test_training_refuses_an_out_that_is_the_model_or_data_it_reads(folders, tmp_path):
    lm = _copy(folders / "lm", tmp_path / "lm")
    data = _copy(folders / "data", tmp_path / "data")
    before, data_before = _tree(lm), _tree(data)
    with pytest.raises(UlmfitError, match=r"--out .*lm is also the --lm input"):
        ulmfit.train_classifier(data, lm, lm=lm, settings=TrainClassifierSettings(**TINY))
    with pytest.raises(UlmfitError, match=r"--out .*data is also the DATA input"):
        ulmfit.train_classifier(data, data, settings=TrainClassifierSettings(**TINY))
    with pytest.raises(UlmfitError, match=r"--out .*lm is also the --from input"):
        ulmfit.finetune_lm(data, lm, lm, FinetuneSettings(epochs=1, max_steps=1, quiet=True))
    with pytest.raises(UlmfitError, match=r"--out .* holds the --lm input"):
        ulmfit.train_classifier(folders / "data", tmp_path, lm=lm, settings=TrainClassifierSettings(**TINY))
    with pytest.raises(UlmfitError, match=r"--out .*lm is also the --lm input"):
        ulmfit.self_train(data, lm, lm, SelfTrainSettings(**TINY))
    with pytest.raises(UlmfitError, match=r"--out .*data is also the CORPUS input"):
        ulmfit.pretrain(data, data, PretrainSettings(preset="tiny", quiet=True))
    assert _tree(lm) == before and _tree(data) == data_before


# ------------------------------------------------------------------ 13. OS errors are one line

def test_a_read_only_out_is_one_line_naming_it(folders, tmp_path, monkeypatch, run_cli):
    import tempfile

    def read_only(*a, dir=None, **kw):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    code, _, err = run_cli("export-classifier", folders / "clas", tmp_path / "exported")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert str(tmp_path) in err and "Read-only file system" in err and "Traceback" not in err


def test_a_read_only_out_is_refused_before_any_work(folders, tmp_path, monkeypatch, run_cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    access = os.access  # a read-only disk as os.access sees it (root may write anywhere else)
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: not str(p).startswith(str(ro)) and access(p, mode, **kw))
    code, _, err = run_cli("train-classifier", folders / "data", "--out", ro / "clas", "--preset", "tiny")
    assert code == 1 and f"{ro} is not writable" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("predict", folders / "clas", "w5 w0", "--output", ro / "p.jsonl")
    assert code == 1 and f"{ro} is not writable" in err
    assert list(ro.iterdir()) == []


def test_a_full_disk_inside_safetensors_writer_is_a_disk_full_error(folders, tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    lm = _copy(folders / "lm", tmp_path / "lm")
    before = _tree(lm)
    config = json.loads((lm / "config.json").read_text())
    model = LanguageModel(preset("tiny", config["model"]["vocab_size"]))

    def full(tensors, filename, metadata=None):
        raise SafetensorError(f'Error while serializing: I/O error: No space left on device (os error 28) at path '
                              f'"{filename}"')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(DiskFullError, match=r"lm: no space left on device"):
        save_model(lm, model, config)
    assert _tree(lm) == before and sorted(p.name for p in tmp_path.iterdir()) == ["lm"]

    def other(tensors, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: Input/output error (os error 5)")

    monkeypatch.setattr(safetensors.torch, "save_file", other)
    with pytest.raises(UlmfitError, match=r"model.safetensors: cannot write it .*Input/output error"):
        save_model(lm, model, config)
    assert _tree(lm) == before


def test_predict_to_an_ascii_stdout_prints_valid_json(folders, tmp_path, monkeypatch):
    clas = _copy(folders / "clas", tmp_path / "clas")
    _edit_json(clas / "config.json", **{"classifier.classes": ["négatif", "pösitif"]})
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii", write_through=True))
    assert main(["predict", str(clas), "w5 w0", "w1 w7", "--quiet"]) == 0
    lines = raw.getvalue().decode("ascii").splitlines()
    assert len(lines) == 2 and all(json.loads(x)["label"] in ("négatif", "pösitif") for x in lines)


# ------------------------------------------------------------------ 14. file modes

def test_weights_get_the_mode_of_every_other_file(folders, tmp_path):
    ulmfit.export_classifier(folders / "clas", tmp_path / "exported")
    for folder in (folders / "clas", folders / "clas" / "best", folders / "lm", tmp_path / "exported"):
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir() if p.is_file()}
        assert len(set(modes.values())) == 1, (folder, modes)
        assert modes["model.safetensors"] == modes["config.json"]
    ckpt = folders / "clas" / "checkpoint.safetensors"
    assert ckpt.stat().st_mode & 0o777 == (folders / "clas" / "config.json").stat().st_mode & 0o777


# ------------------------------------------------------------------ 15. single- and multi-label ensembles

def test_predict_refuses_to_average_a_single_and_a_multi_label_classifier(folders, tmp_path):
    multi = _copy(folders / "clas", tmp_path / "multi")
    _edit_json(multi / "config.json", **{"classifier.multi_label": True})
    ulmfit.predict(multi, ["w5 w0"], PredictSettings(quiet=True))  # each loads on its own
    message = r"cannot ensemble a single-label classifier .* with a multi-label one"
    with pytest.raises(UlmfitError, match=message):
        ulmfit.predict(folders / "clas", ["w5 w0"], PredictSettings(ensemble=[str(multi)], quiet=True))
    with pytest.raises(UlmfitError, match=message):
        ulmfit.evaluate(folders / "clas", folders / "data", EvaluateSettings(
            ensemble=[str(multi)], quiet=True))


def test_a_sentencepiece_model_that_is_a_link_out_of_its_folder_is_refused(tmp_path):
    # a plain file name can still be a symbolic link to a file elsewhere: never read (or copied) through it
    from ulmfit.text.tokenizers import make_tokenizer

    secret = tmp_path / "secret.model"
    secret.write_bytes(b"not yours")
    folder = tmp_path / "clas"
    folder.mkdir()
    (folder / "spm.model").symlink_to(secret)
    with pytest.raises(UlmfitError, match=r"spm.model is a symbolic link.*field 'model'|field 'model'.*symbolic link"):
        make_tokenizer({"backend": "sentencepiece", "model": "spm.model"}, folder, where=folder / "tokenizer.json")
