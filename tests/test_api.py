"""The Python API: every stage from Python alone, the same artifacts as the CLI, and the CLI as a thin layer."""

import ast
import dataclasses
import json
import pydoc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ulmfit
from ulmfit import settings as S
from ulmfit.cli import build_parser, main

from test_prepare import make_imdb_tar

SRC = Path(ulmfit.__file__).parent
TINY_LM = dict(preset="tiny", epochs=1, max_steps=8, bs=4, bptt=10, valid_tokens=400, threads=1, quiet=True)
TINY_CLAS = dict(stages="1:1:2e-2,all:1:5e-3", bs=8, bptt=10, max_len=40, limit_train=40, limit_valid=20,
                 threads=1, quiet=True)


def test_help_lists_the_stage_functions():
    text = pydoc.render_doc(ulmfit, renderer=pydoc.plaintext)
    for name in ("prepare", "tokenize", "pretrain", "finetune_lm", "train_classifier", "self_train", "evaluate",
                 "predict", "export_classifier"):
        assert callable(getattr(ulmfit, name)) and f"{name}(" in text, name


def test_the_package_exports_every_stage_function_and_stays_light():
    from ulmfit import api

    assert ulmfit.__all__ == [*api.__all__, "TextClassifier"]
    for name in ulmfit.__all__:  # each name resolves (a stage added to api.__all__ but not importable fails here)
        assert callable(getattr(ulmfit, name)), name
    code = "import sys, ulmfit; ulmfit.generate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_python_api_end_to_end_makes_the_same_artifacts_as_the_cli(tmp_path):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    runs = {}
    for way in ("api", "cli"):
        d = tmp_path / way
        torch.set_num_threads(1)
        if way == "api":
            meta = ulmfit.prepare("imdb", str(tar), d / "data", S.ImdbSettings(quiet=True))
            assert meta["n_docs"] == 100 and not meta["reused"]
            store, reused = ulmfit.tokenize(d / "data", S.TokenizeSettings(min_freq=1, workers=1, quiet=True))
            assert not reused and len(store.vocab) > 9
            hist = ulmfit.pretrain(d / "data", d / "lm", S.PretrainSettings(**TINY_LM))
            assert hist[-1]["step"] == 8
            hist = ulmfit.train_classifier(d / "data", d / "clas", lm=d / "lm",
                                           settings=S.TrainClassifierSettings(**TINY_CLAS))
            report = ulmfit.evaluate(d / "clas", d / "data", S.EvaluateSettings(quiet=True))
            preds = ulmfit.predict(d / "clas", ["a great film", "awful"], S.PredictSettings(quiet=True))
        else:
            assert main(["prepare", "imdb", str(tar), "--out", str(d / "data"), "--quiet"]) == 0
            assert main(["tokenize", str(d / "data"), "--min-freq", "1", "--workers", "1", "--quiet"]) == 0
            assert main(["pretrain", str(d / "data"), "--out", str(d / "lm"), "--preset", "tiny", "--epochs", "1",
                         "--max-steps", "8", "--bs", "4", "--bptt", "10", "--valid-tokens", "400", "--threads", "1",
                         "--quiet"]) == 0
            assert main(["train-classifier", str(d / "data"), "--lm", str(d / "lm"), "--out", str(d / "clas"),
                         "--stages", "1:1:2e-2,all:1:5e-3", "--bs", "8", "--bptt", "10", "--max-len", "40",
                         "--limit-train", "40", "--limit-valid", "20", "--threads", "1", "--quiet"]) == 0
        runs[way] = d
    assert 0 <= report["accuracy"] <= 1 and report["n"] == 40  # the whole test split
    assert [set(p) for p in preds] == [{"label", "probability"}] * 2
    for folder in ("lm", "clas"):
        a, b = runs["api"] / folder, runs["cli"] / folder
        names = {p.name for p in a.iterdir()}
        assert names == {p.name for p in b.iterdir()}, folder
        for name in ("config.json", "vocab.json", "tokenizer.json"):
            ja, jb = json.loads((a / name).read_text()), json.loads((b / name).read_text())
            if name == "config.json":  # the paths the folders were made from differ, nothing else
                for j in (ja, jb):
                    j["training"] = {k: v for k, v in j["training"].items() if k not in ("data", "corpus", "lm")}
            assert ja == jb, (folder, name)
        wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), folder


def _parsers():
    """Every (sub)command's parser, by name."""
    import argparse

    out = {}

    def walk(p, prefix):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out[f"{prefix}{name}"] = sub
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return out


SETTINGS_OF = {"pretrain": S.PretrainSettings, "finetune-lm": S.FinetuneSettings, "evaluate-lm": S.EvaluateLMSettings,
               "lr-find": S.LRFindLMSettings, "train-classifier": S.TrainClassifierSettings,
               "self-train": S.SelfTrainSettings,
               "predict": S.PredictSettings, "evaluate": S.EvaluateSettings, "export-classifier": S.ExportSettings,
               "tokenize": S.TokenizeSettings, "prepare imdb": S.ImdbSettings, "prepare table": S.TableSettings,
               "prepare folder": S.FolderSettings, "prepare corpus": S.CorpusSettings}


def test_each_parser_takes_its_defaults_from_its_settings_class():
    parsers = _parsers()
    for command, cls in SETTINGS_OF.items():
        p = parsers[command]
        dests = {a.dest: a for a in p._actions}
        for f in dataclasses.fields(cls):
            assert f.name in dests, f"{command}: no option for {f.name}"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            got = dests[f.name].default
            assert got == default or (got is None and default == []) or (got is None and f.name in ("text_col",)), \
                (command, f.name, got, default)
        # options with defaults are all settings: the CLI defines none of its own
        extra = [a.dest for a in p._actions if a.dest not in {f.name for f in dataclasses.fields(cls)}
                 and a.default not in (None, False, "==SUPPRESS==") and a.dest != "help" and not callable(a.default)
                 and not isinstance(a.default, type)]
        assert not extra, (command, extra)


def test_no_cli_module_states_a_default_and_run_builds_no_argv():
    for path in (SRC / "cli").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                kws = {k.arg for k in node.keywords}
                assert "default" not in kws, \
                    f"{path.name}:{node.lineno}: a default outside ulmfit.settings"
    for path in (SRC / "run").glob("*.py"):
        text = path.read_text()
        assert "ulmfit.cli" not in text and "from ..cli" not in text and "argv" not in text, path.name


def test_settings_from_a_config_table_check_keys_and_types():
    with pytest.raises(ulmfit.errors.UlmfitError, match=r"x\.toml: \[pretrain\]: unknown key 'epoch' \(did you mean"):
        S.from_dict(S.PretrainSettings, {"epoch": 2}, "x.toml: [pretrain]")
    s = S.from_dict(S.TrainClassifierSettings, {"betas": [0.8, 0.99], "head": [20], "max_minutes": 3}, "w")
    assert s.betas == (0.8, 0.99) and s.head == [20] and s.max_minutes == 3
    with pytest.raises(ulmfit.errors.UlmfitError, match="key 'lr' must be a number, got True"):
        S.from_dict(S.PretrainSettings, {"lr": True}, "w")
    assert np.isclose(S.from_dict(S.PretrainSettings, {"lr": 1}, "w").lr, 1.0)
