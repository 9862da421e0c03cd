"""The TF-IDF + logistic regression baseline: learns, scores the right documents, same hold-out as the classifier."""

import json

import numpy as np
import pytest

import ulmfit
from ulmfit.errors import UlmfitError
from ulmfit.settings import BaselineSettings, TableSettings


def _table(path, n, seed, noise=0.0):
    rng = np.random.default_rng(seed)
    lines = ["text,label"]
    for _ in range(n):
        y = int(rng.integers(3))
        words = [f"w{int(w)}" for w in rng.integers(0, 30, size=12)]
        if rng.random() >= noise:
            words[int(rng.integers(12))] = ("apple", "river", "stone")[y]
        lines.append(f"{' '.join(words)},{('fruit', 'water', 'rock')[y]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_baseline_learns_and_holds_out_what_the_classifier_holds_out(tmp_path, capsys):
    from ulmfit.classifier.task import holdout

    train, test = _table(tmp_path / "train.csv", 300, 0), _table(tmp_path / "test.csv", 90, 1)
    ulmfit.prepare("table", str(train), tmp_path / "data", TableSettings(test=str(test), label_col=["label"], quiet=True))
    r = ulmfit.baseline(tmp_path / "data", BaselineSettings(valid_frac=0.2, out=str(tmp_path / "b")))
    assert r["split"] == "test" and r["n"] == 90 and r["accuracy"] > 0.9 and r["macro_f1"] > 0.9
    labels = np.load(tmp_path / "data" / "labels.npy")[np.load(tmp_path / "data" / "splits" / "train.npy")]
    _, valid = holdout(labels, 0.2)
    assert r["valid"]["n"] == len(valid) and r["n_train"] == 300 - len(valid)
    assert json.loads((tmp_path / "b" / "baseline.json").read_text()) == r
    assert "baseline (TF-IDF" in capsys.readouterr().err
    # the same from the command line
    from ulmfit.cli import main

    assert main(["baseline", str(tmp_path / "data"), "--valid-frac", "0.2", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == r["accuracy"]


def test_baseline_on_noise_is_near_chance_and_errors_are_clear(tmp_path):
    train, test = _table(tmp_path / "train.csv", 300, 0, noise=1.0), _table(tmp_path / "test.csv", 300, 1, noise=1.0)
    ulmfit.prepare("table", str(train), tmp_path / "data", TableSettings(test=str(test), label_col=["label"], quiet=True))
    assert ulmfit.baseline(tmp_path / "data", BaselineSettings(quiet=True))["accuracy"] < 0.5
    with pytest.raises(UlmfitError, match="not a prepared dataset folder"):
        ulmfit.baseline(tmp_path / "nope")
    with pytest.raises(UlmfitError, match="no split 'valid'"):
        ulmfit.baseline(tmp_path / "data", BaselineSettings(split="valid"))


def test_baseline_limit_takes_the_classifiers_documents(tmp_path):
    from ulmfit.batching.documents import ClassifierBatches
    from ulmfit.classifier.task import holdout
    from ulmfit.text.store import TokenStore
    from ulmfit.settings import TokenizeSettings

    train, test = _table(tmp_path / "train.csv", 200, 0), _table(tmp_path / "test.csv", 30, 1)
    ulmfit.prepare("table", str(train), tmp_path / "data", TableSettings(test=str(test), label_col=["label"], quiet=True))
    ulmfit.tokenize(tmp_path / "data", TokenizeSettings(min_freq=1, workers=1, quiet=True))
    r = ulmfit.baseline(tmp_path / "data", BaselineSettings(valid_frac=0.1, limit_train=25, quiet=True))
    split = TokenStore(tmp_path / "data").split("train")
    tr, _ = holdout(split.labels, 0.1)
    batches = ClassifierBatches(split, 8, docs=tr, limit=25)
    assert r["n_train"] == 25 == len(batches.keep)
