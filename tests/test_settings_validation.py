"""Every number of every settings class is range-checked once, in the class, whether the settings come from the
CLI (the error names the flag), a run config (the section and key) or Python (the class and field); a model
folder's config.json fields are checked against their types and the weights when it is loaded."""

import dataclasses
import json
import re
import shutil

import pytest
import torch

from ulmfit import settings as S
from ulmfit.errors import UlmfitError

# (command line, flag and message). Paths need not exist: each is an error before any work.
CLI_CASES = [
    (["train-classifier", "DATA", "--out", "OUT", "--clip", "-1"], "--clip must be >= 0, got -1"),
    (["predict", "MODEL", "a text", "--bs", "-3"], "--bs must be >= 1, got -3"),
    (["evaluate", "MODEL", "DATA", "--bs", "-3"], "--bs must be >= 1, got -3"),
    (["pretrain", "CORPUS", "--out", "OUT", "--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["prepare", "table", "T.csv", "--out", "OUT", "--valid-frac", "1.0"], "--valid-frac must be in [0, 1), got 1"),
    (["prepare", "table", "T.csv", "--out", "OUT", "--lm-valid-frac", "2"], "--lm-valid-frac must be in [0, 1), got 2"),
    (["prepare", "corpus", "C.txt", "--out", "OUT", "--max-docs", "-1"], "--max-docs must be >= 1, got -1"),
    (["tokenize", "DATA", "--max-vocab", "-5"], "--max-vocab must be >= 1, got -5"),
    (["train-classifier", "DATA", "--out", "OUT", "--threshold", "5"], "--threshold must be in (0, 1), got 5"),
    (["generate", "LM", "a prompt", "--temperature", "-1"], "--temperature must be >= 0, got -1"),
    (["train-classifier", "DATA", "--out", "OUT", "--bs", "0"], "--bs must be >= 2 (the head's BatchNorm needs"),
    (["train-classifier", "DATA", "--out", "OUT", "--head", "0"], "--head values must be >= 1, got 0"),
    (["train-classifier", "DATA", "--out", "OUT", "--lr-div", "0"], "--lr-div must be > 0, got 0"),
    (["finetune-lm", "DATA", "--from", "LM", "--out", "OUT", "--lr-div", "0"], "--lr-div must be > 0, got 0"),
    (["train-classifier", "DATA", "--out", "OUT", "--wd", "-1"], "--wd must be >= 0, got -1"),
    (["pretrain", "CORPUS", "--out", "OUT", "--wd", "-1"], "--wd must be >= 0, got -1"),
    (["train-classifier", "DATA", "--out", "OUT", "--betas", "2,2"], "--betas values must be in [0, 1), got 2"),
    (["pretrain", "CORPUS", "--out", "OUT", "--betas", "0.9"], "--betas takes 2 values, got 1"),
    (["train-classifier", "DATA", "--out", "OUT", "--limit-train", "1"], "--limit-train must be >= 2"),
    (["train-classifier", "DATA", "--out", "OUT", "--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    (["pretrain", "CORPUS", "--out", "OUT", "--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    (["pretrain", "CORPUS", "--out", "OUT", "--clip", "-1"], "--clip must be >= 0, got -1"),
    (["pretrain", "CORPUS", "--out", "OUT", "--lr", "0"], "--lr must be > 0, got 0"),
    (["finetune-lm", "DATA", "--from", "LM", "--out", "OUT", "--frozen-epochs", "0", "--epochs", "0"],
     "nothing to train: --frozen-epochs and --epochs are both 0"),
    (["train-classifier", "DATA", "--out", "OUT", "--valid-frac", "0.1", "--valid-split", "test"],
     "give --valid-split or --valid-frac, not both"),
    (["baseline", "DATA", "--c", "0"], "--c must be > 0, got 0"),
    (["predict", "MODEL", "a text", "--blend-weight", "2"], "--blend-weight must be in [0, 1], got 2"),
    (["self-train", "DATA", "--lm", "LM", "--out", "OUT", "--teacher-weight", "2"], "--teacher-weight must be in [0, 1], got 2"),
    (["self-train", "DATA", "--lm", "LM", "--out", "OUT", "--rounds", "0"], "--rounds values must be > 0, got 0"),
    (["self-train", "DATA", "--lm", "LM", "--out", "OUT", "--rounds", "2.5"], "--rounds takes documents per class"),
    (["tokenize", "DATA", "--workers", "0"], "--workers must be >= 1, got 0"),
    (["train-classifier", "DATA", "--out", "OUT", "--threads", "0"], "--threads must be >= 1, got 0"),
]


@pytest.mark.parametrize("argv,message", CLI_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CLI_CASES])
def test_cli_numbers_out_of_range_are_errors_naming_the_flag_before_any_work(argv, message, run_cli, tmp_path):
    argv = [str(tmp_path / a) if a.isupper() or a.endswith((".csv", ".txt")) else a for a in argv]
    code, out, err = run_cli(*argv)
    assert code == 1, (out, err)
    assert f"ulmfit {argv[0]}: error: {message}" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written


# (section, key, value, message) of a run config: the same checks, worded with the config's keys
CONFIG_CASES = [
    ("classifier", "clip", -1, "[classifier]: key 'clip' must be >= 0, got -1"),
    ("evaluate", "bs", -3, "[evaluate]: key 'bs' must be >= 1, got -3"),
    ("pretrain", "epochs", 0, "[pretrain]: key 'epochs' must be >= 1, got 0"),
    ("data", "valid_frac", 1.0, "[data]: key 'valid_frac' must be in [0, 1), got 1"),
    ("data", "lm_valid_frac", 2, "[data]: key 'lm_valid_frac' must be in [0, 1), got 2"),
    ("tokenize", "max_vocab", -5, "[tokenize]: key 'max_vocab' must be >= 1, got -5"),
    ("classifier", "threshold", 5, "[classifier]: key 'threshold' must be in (0, 1), got 5"),
    ("classifier", "bs", 0, "[classifier]: key 'bs' must be >= 2"),
    ("classifier", "head", [0], "[classifier]: key 'head' values must be >= 1, got 0"),
    ("classifier", "lr_div", 0, "[classifier]: key 'lr_div' must be > 0, got 0"),
    ("finetune_lm", "lr_div", 0, "[finetune_lm]: key 'lr_div' must be > 0, got 0"),
    ("classifier", "wd", -1, "[classifier]: key 'wd' must be >= 0, got -1"),
    ("classifier", "betas", [2, 2], "[classifier]: key 'betas' values must be in [0, 1), got 2"),
    ("finetune_lm", "moms", [0.8, 0.7], "[finetune_lm]: key 'moms' takes 3 values, got 2"),
    ("classifier", "limit_train", 1, "[classifier]: key 'limit_train' must be >= 2"),
    ("classifier", "seed", -1, "[classifier]: key 'seed' must be in [0, 4294967295], got -1"),
    ("pretrain", "clip", -1, "[pretrain]: key 'clip' must be >= 0, got -1"),
    ("baseline", "c", 0, "[baseline]: key 'c' must be > 0, got 0"),
    ("self_train", "teacher_weight", 2, "[self_train]: key 'teacher_weight' must be in [0, 1], got 2"),
    ("classifier", "bs", "8", "[classifier]: key 'bs' must be an integer, got '8'"),
]


@pytest.mark.parametrize("section,key,value,message", CONFIG_CASES, ids=[f"{s}.{k}" for s, k, _, _ in CONFIG_CASES])
def test_run_config_numbers_out_of_range_name_the_section_and_key(section, key, value, message):
    from ulmfit.run.config import validate

    cfg = {"data": {"kind": "table", "source": "t.csv"}, "pretrain": {"mode": "scratch"}}
    cfg.setdefault(section, {})[key] = value
    with pytest.raises(UlmfitError) as e:
        validate(cfg, "my.toml")
    assert str(e.value) == f"my.toml: {message}" or str(e.value).startswith(f"my.toml: {message}")


def test_run_config_relation_checks_name_the_keys():
    from ulmfit.run.config import validate

    cfg = {"data": {"kind": "table", "source": "t.csv"}, "classifier": {"valid_frac": 0.1, "valid_split": "test"}}
    with pytest.raises(UlmfitError, match=re.escape("my.toml: [classifier]: give key 'valid_split' or key "
                                                    "'valid_frac', not both")):
        validate(cfg, "my.toml")
    cfg = {"data": {"kind": "table", "source": "t.csv"}, "finetune_lm": {"frozen_epochs": 0, "epochs": 0}}
    with pytest.raises(UlmfitError, match=re.escape("[finetune_lm]: nothing to train: key 'frozen_epochs' and key "
                                                    "'epochs' are both 0")):
        validate(cfg, "my.toml")


# (class, keyword arguments, message after "Class: ")
PYTHON_CASES = [
    (S.TrainClassifierSettings, {"clip": -1}, "field 'clip' must be >= 0, got -1"),
    (S.TrainClassifierSettings, {"bs": "8"}, "field 'bs' must be an integer, got '8'"),
    (S.TrainClassifierSettings, {"quiet": "yes"}, "field 'quiet' must be true or false, got 'yes'"),
    (S.PredictSettings, {"bs": -3}, "field 'bs' must be >= 1, got -3"),
    (S.EvaluateSettings, {"bs": 0}, "field 'bs' must be >= 1, got 0"),
    (S.PretrainSettings, {"epochs": 0}, "field 'epochs' must be >= 1, got 0"),
    (S.PretrainSettings, {"arch": "gru"}, "field 'arch' must be one of awd_lstm, qrnn, got 'gru'"),
    (S.TableSettings, {"valid_frac": 1.0}, "field 'valid_frac' must be in [0, 1), got 1"),
    (S.FolderSettings, {"lm_valid_frac": 2}, "field 'lm_valid_frac' must be in [0, 1), got 2"),
    (S.CorpusSettings, {"max_docs": -1}, "field 'max_docs' must be >= 1, got -1"),
    (S.TokenizeSettings, {"max_vocab": -5}, "field 'max_vocab' must be >= 1, got -5"),
    (S.TokenizeSettings, {"min_freq": 0}, "field 'min_freq' must be >= 1, got 0"),
    (S.TrainClassifierSettings, {"threshold": 5}, "field 'threshold' must be in (0, 1), got 5"),
    (S.GenerateSettings, {"temperature": -1}, "field 'temperature' must be >= 0, got -1"),
    (S.TrainClassifierSettings, {"head": [0]}, "field 'head' values must be >= 1, got 0"),
    (S.TrainClassifierSettings, {"head": []}, "field 'head' needs at least 1 value(s), got 0"),
    (S.FinetuneSettings, {"lr_div": 0}, "field 'lr_div' must be > 0, got 0"),
    (S.LRFindLMSettings, {"wd": -1}, "field 'wd' must be >= 0, got -1"),
    (S.PretrainSettings, {"betas": (2, 2)}, "field 'betas' values must be in [0, 1), got 2"),
    (S.TrainClassifierSettings, {"moms": (0.8,)}, "field 'moms' takes 3 values, got 1: 0.8"),
    (S.TrainClassifierSettings, {"limit_train": 1}, "field 'limit_train' must be >= 2"),
    (S.BaselineSettings, {"limit_train": 1}, "field 'limit_train' must be >= 2, got 1"),
    (S.TrainClassifierSettings, {"seed": -1}, "field 'seed' must be in [0, 4294967295], got -1"),
    (S.TrainClassifierSettings, {"clip": float("nan")}, "field 'clip' must be >= 0, got nan"),
    (S.LRFindLMSettings, {"start": 1.0, "end": 0.1}, "field 'start' must be below field 'end', got 1 and 0.1"),
    (S.TrainClassifierSettings, {"lr_find_range": (1.0, 0.1)}, "field 'lr_find_range' must go from a lower to a"),
    (S.SelfTrainSettings, {"lr_find": True}, "field 'lr_find' belongs to train-classifier"),
    (S.TableSettings, {"text_col": []}, "field 'text_col' needs at least 1 value(s), got 0"),
    (S.TableSettings, {"text_col": [1]}, "field 'text_col' must be a list of a string, got [1]"),
]


@pytest.mark.parametrize("cls,kwargs,message", PYTHON_CASES,
                         ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in PYTHON_CASES])
def test_python_settings_are_checked_when_made(cls, kwargs, message):
    with pytest.raises(S.SettingsError) as e:
        cls(**kwargs)
    assert str(e.value).startswith(f"{cls.__name__}: {message}")
    with pytest.raises(S.SettingsError):  # dataclasses.replace makes a new object: checked too
        dataclasses.replace(cls(), **kwargs)


def test_a_lone_string_for_a_list_of_strings_is_a_one_element_list_and_lists_for_tuples_are_tuples():
    s = S.TableSettings(text_col="review", label_col="stars", unlabelled="more.csv")
    assert (s.text_col, s.label_col, s.unlabelled) == (["review"], ["stars"], ["more.csv"])
    assert S.PredictSettings(ensemble="other").ensemble == ["other"]
    assert S.TrainClassifierSettings(betas=[0.8, 0.9]).betas == (0.8, 0.9)
    assert S.from_dict(S.TableSettings, {"text_col": "review"}, "w").text_col == ["review"]


def test_a_lone_text_column_string_reads_that_column(tmp_path):
    """The issue's case: TableSettings(text_col="text") read the column 't' (a str iterated as a list)."""
    import ulmfit

    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"words number {i},{'ab'[i % 2]}\n" for i in range(12)))
    ulmfit.prepare("table", tmp_path / "t.csv", tmp_path / "d",
                   S.TableSettings(text_col="text", label_col="label", quiet=True))
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert meta["n_docs"] == 12 and meta["classes"] == ["a", "b"] and meta["source"]["text_cols"] == ["text"]
    docs = (tmp_path / "d" / "documents.jsonl").read_text()
    assert "words number 7" in docs


# ------------------------------------------------------------------------------------- model folders


WORDS = ["the", "movie", "was", "great", "bad"]
N = 9 + len(WORDS)  # the vocab: ulmfit's 9 special tokens, then the words


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny classifier folder and a tiny language-model folder, written by ulmfit itself."""
    from ulmfit.artifacts import ClassifierConfig, LanguageModelConfig, save_classifier, save_language_model
    from ulmfit.models.classifier import ClassifierSettings, build_classifier
    from ulmfit.models.config import preset
    from ulmfit.models.language_model import LanguageModel
    from ulmfit.text.encoder import TextEncoder
    from ulmfit.text.pipeline import tokenizer_settings
    from ulmfit.text.special import SPECIAL_TOKENS
    from ulmfit.text.vocab import Vocab

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("folders")
    encoder = TextEncoder(tokenizer_settings("spacy", 100, 1), Vocab(SPECIAL_TOKENS + WORDS))
    mcfg = preset("tiny", len(encoder.vocab))
    clas = ClassifierSettings(classes=["neg", "pos"])
    save_classifier(root / "clf", build_classifier(mcfg, clas), ClassifierConfig(mcfg, clas, {}), encoder)
    save_language_model(root / "lm", LanguageModel(mcfg), LanguageModelConfig(mcfg), encoder)
    return root


def _edit_config(folder, **changes):
    from classifier_helpers import edit_json

    edit_json(folder / "config.json", **changes)


def _edit_vocab(folder, n_more):
    path = folder / "vocab.json"
    itos = json.loads(path.read_text())["itos"]
    itos = itos + [f"extra{i}" for i in range(n_more)] if n_more > 0 else itos[:n_more]
    path.write_text(json.dumps({"itos": itos}))


def _int32_weights(folder):
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.endswith("embedding.weight"))
    tensors[name] = (tensors[name] * 100).to(torch.int32)
    save_file(tensors, str(path), metadata={"format": "pt"})


# (which folder, how it is damaged, the file named in the error, the message)
FOLDER_CASES = [
    ("clf", lambda f: _edit_vocab(f, 3), "vocab.json", f"{N + 3} tokens, but .*field 'model.vocab_size'.* is {N}"),
    ("clf", lambda f: _edit_vocab(f, -2), "vocab.json", f"{N - 2} tokens, but .*field 'model.vocab_size'.* is {N}"),
    ("clf", _int32_weights, "model.safetensors", "tensor encoder.encoder.embedding.weight is int32, not floating"),
    ("clf", lambda f: _edit_config(f, **{"classifier.quantized": "no"}), "config.json",
     "field 'classifier.quantized' must be true or false, got 'no'"),
    ("clf", lambda f: _edit_config(f, format="2"), "config.json", "field 'format' must be a whole number"),
    ("clf", lambda f: _edit_config(f, **{"classifier.head_dropouts": [0.2]}), "config.json",
     "field 'classifier.head_dropouts' needs one dropout per head block: 2 .*got 1"),
    ("clf", lambda f: _edit_config(f, **{"classifier.threshold": "high"}), "config.json",
     "field 'classifier.threshold' must be a number, got 'high'"),
    ("clf", lambda f: _edit_config(f, **{"classifier.threshold": 1.5}), "config.json",
     r"field 'classifier.threshold' must be in \(0, 1\), got 1.5"),
    ("clf", lambda f: _edit_config(f, **{"classifier.bptt": 0}), "config.json",
     "field 'classifier.bptt' must be >= 1, got 0"),
    ("clf", lambda f: _edit_config(f, **{"model.n_hid": "32"}), "config.json",
     "field 'model.n_hid' must be an integer, got '32'"),
    ("clf", lambda f: _edit_config(f, **{"model.tie_weights": "no"}), "config.json",
     "field 'model.tie_weights' must be true or false, got 'no'"),
    ("clf", lambda f: _edit_config(f, training=[]), "config.json", "field 'training' must be an object"),
    ("lm", lambda f: _edit_vocab(f, 3), "vocab.json", f"{N + 3} tokens, but .*field 'model.vocab_size'.* is {N}"),
    ("lm", lambda f: _edit_config(f, backwards="no"), "config.json", "field 'backwards' must be true or false"),
    ("lm", lambda f: _edit_config(f, **{"model.vocab_size": N + 2}), "model.safetensors",
     f"the embedding has {N} rows, but .*field 'model.vocab_size' is {N + 2}"),
    ("lm", _int32_weights, "model.safetensors", "tensor encoder.embedding.weight is int32, not floating"),
]


def _load(kind, folder):
    if kind == "clf":
        from ulmfit.inference import TextClassifier

        return TextClassifier.load(folder)
    from ulmfit.artifacts import load_language_model

    return load_language_model(folder)


@pytest.mark.parametrize("kind,damage,file,message", FOLDER_CASES,
                         ids=[f"{k}-{i}" for i, (k, _, _, _) in enumerate(FOLDER_CASES)])
def test_a_damaged_model_folder_field_is_an_error_naming_the_file_and_field(folders, tmp_path, kind, damage,
                                                                             file, message):
    folder = tmp_path / kind
    shutil.copytree(folders / kind, folder)
    _load(kind, folder)  # the undamaged copy loads
    damage(folder)
    with pytest.raises(UlmfitError) as e:
        _load(kind, folder)
    assert str(e.value).startswith(str(folder / file) + ":"), str(e.value)
    assert re.search(message, str(e.value)), str(e.value)


def test_a_pretrained_lm_with_a_vocab_longer_than_its_embedding_is_refused_before_mapping(folders, tmp_path):
    """finetune-lm and train-classifier map the pretrained vocab onto the dataset's by row: a vocab.json one
    token longer than the embedding was an IndexError, one shorter a silent shift."""
    from types import SimpleNamespace

    from ulmfit.text.special import SPECIAL_TOKENS
    from ulmfit.text.vocab import Vocab
    from ulmfit.stages.lm import load_pretrained_lm

    shutil.copytree(folders / "lm", tmp_path / "lm")
    store = SimpleNamespace(vocab=Vocab(SPECIAL_TOKENS + WORDS))
    assert len(store.vocab) == N
    load_pretrained_lm(tmp_path / "lm", store, say=False)
    _edit_vocab(tmp_path / "lm", -1)
    with pytest.raises(UlmfitError, match=re.escape(str(tmp_path / "lm" / "vocab.json")) + f": {N - 1} tokens, but"):
        load_pretrained_lm(tmp_path / "lm", store, say=False)


def test_numpy_numbers_are_taken_as_the_python_numbers_they_hold():
    import numpy as np

    from ulmfit.settings import SelfTrainSettings, TrainClassifierSettings

    s = TrainClassifierSettings(bs=np.int64(8), lr_mult=np.float32(0.5))
    assert type(s.bs) is int and s.bs == 8 and type(s.lr_mult) is float
    with pytest.raises(UlmfitError, match="field 'bs' must be an integer, got 8.5"):
        TrainClassifierSettings(bs=np.float64(8.5))
    with pytest.raises(UlmfitError, match="field 'moms' values must be in"):
        TrainClassifierSettings(moms=(1.0, 1.0, 1.0))  # beta1 = 1 divides by zero in Adam
    with pytest.raises(UlmfitError, match="field 'rounds'"):
        SelfTrainSettings(rounds=[float("inf")])
