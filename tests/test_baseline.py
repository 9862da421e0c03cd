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


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_saved_baseline_predicts_as_the_fitted_one(tmp_path, n_classes):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from ulmfit.tfidf import TfidfModel, save_tfidf

    rng = np.random.default_rng(0)
    words = ["good", "bad", "plot", "not", "great", "Film", "dull", "a", "the"]
    texts = [" ".join(rng.choice(words, 8)) for _ in range(120)]
    y = np.array([hash(t) % n_classes for t in texts])
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    lr = LogisticRegression(C=4, max_iter=1000).fit(vec.fit_transform(texts), y)
    save_tfidf(tmp_path, vec, lr, [f"c{k}" for k in range(n_classes)], multi_label=False)
    assert {p.name for p in tmp_path.iterdir()} == {"tfidf.json", "tfidf.safetensors"}  # no pickle
    m = TfidfModel.load(tmp_path)
    new = ["good plot not dull", "the Film a bad a", "unseen words only"]
    np.testing.assert_allclose(m.predict_proba(new), lr.predict_proba(vec.transform(new)), atol=1e-5)
    with pytest.raises(UlmfitError, match="no saved baseline"):
        TfidfModel.load(tmp_path / "nothing")


def test_blend_weight_is_chosen_on_the_given_documents():
    from ulmfit.tfidf import blend, choose_weight

    # ten copies of four documents (on four alone a blend's gain is within the noise: see the next test)
    y = np.tile([0, 1, 1, 0], 10)
    a = np.tile([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]], (10, 1))  # right on 0 and 1
    b = np.tile([[0.6, 0.4], [0.8, 0.2], [0.1, 0.9], [0.9, 0.1]], (10, 1))  # right on 0, 2 and 3
    w, acc = choose_weight(a, b, y)
    assert acc == 1.0 and (blend(a, b, w).argmax(1) == y).all() and w == 0.55  # of 0.55-0.75: nearest 0.5
    w, acc = choose_weight(a, b, np.tile([0, 1, 0, 1], 10))  # only ULMFiT is right on every document
    assert acc == 1.0 and w == 1.0  # no blend beats it: ULMFiT alone


def test_a_blend_gain_within_the_noise_of_the_held_out_documents_gives_the_better_model_alone():
    from ulmfit.tfidf import blend, choose_weight

    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 2, n)

    def model(p_right):  # right on a random p_right of the documents, with a random confidence
        right = rng.random(n) < p_right
        conf = rng.uniform(0.5, 1.0, n)
        p1 = np.where(right == (y == 1), conf, 1 - conf)
        return np.stack([1 - p1, p1], 1)

    a, b = model(0.80), model(0.82)
    accs = [float((blend(a, b, v).argmax(1) == y).mean()) for v in np.arange(0, 1.0001, 0.05)]
    alone = max(accs[0], accs[-1])
    assert alone < max(accs) < alone + 0.01  # a blend is ahead, by less than one standard error (~2 points)
    w, acc = choose_weight(a, b, y)
    assert w == 0.0 and acc == accs[0]  # TF-IDF (b) is the better one alone
    # two models that err on different documents: the blend's gain is far beyond the noise, and it is kept
    wrong_a = a.argmax(1) != y
    a = np.where((y[:, None] == np.arange(2)) != wrong_a[:, None], 0.9, 0.1)  # a, sure of itself
    c = b.copy()
    c[wrong_a] = np.where(y[wrong_a, None] == np.arange(2), 0.9, 0.1)  # right where a is wrong
    c[~wrong_a] = np.where(y[~wrong_a, None] == np.arange(2), 0.45, 0.55)  # and wrong, unsure, where a is right
    w, acc = choose_weight(a, c, y)
    assert 0 < w < 1 and acc == 1.0


def test_evaluate_and_predict_blend_with_the_saved_baseline(tmp_path):
    from ulmfit.stages.evaluate import _held_out
    from ulmfit.inference import TextClassifier
    from ulmfit.settings import EvaluateSettings, PredictSettings, TokenizeSettings, TrainClassifierSettings
    from ulmfit.text.store import TokenStore
    from ulmfit.tfidf import WEIGHTS, TfidfModel

    train, test = _table(tmp_path / "train.csv", 200, 0, noise=0.3), _table(tmp_path / "test.csv", 60, 1, noise=0.3)
    data = tmp_path / "data"
    ulmfit.prepare("table", str(train), data, TableSettings(test=str(test), label_col=["label"], quiet=True))
    ulmfit.tokenize(data, TokenizeSettings(min_freq=1, workers=1, quiet=True))
    ulmfit.baseline(data, BaselineSettings(valid_frac=0.2, out=str(tmp_path / "b"), quiet=True))
    ulmfit.train_classifier(data, tmp_path / "c", settings=TrainClassifierSettings(
        preset="tiny", arch="qrnn", valid_frac=0.2, stages="1:2:2e-2,all:2:1e-2", bs=16, quiet=True))
    clf = TextClassifier.load(tmp_path / "c")
    # the documents that choose the weight are exactly the ones the classifier validated on
    index, y = _held_out(clf, data)
    valid_acc = json.loads((tmp_path / "c" / "metrics.json").read_text())["accuracy"]
    store = TokenStore(data)
    docs = [np.asarray(store.ids[store.offsets[i]:store.offsets[i + 1]], dtype=np.int64) for i in index]
    assert len(index) == 40 and (clf.predict_ids(docs).argmax(1) == y).mean() == pytest.approx(valid_acc)

    r = ulmfit.evaluate(tmp_path / "c", data, EvaluateSettings(blend=str(tmp_path / "b"), quiet=True))
    b = r["blend"]
    assert b["weight"] in WEIGHTS and b["valid_accuracy"] >= 0 and "held out" in b["weight_chosen"]
    assert b["tfidf_accuracy"] == pytest.approx(json.loads((tmp_path / "b" / "baseline.json").read_text())["accuracy"])
    for w, alone in ((1.0, r["accuracy"]), (0.0, b["tfidf_accuracy"])):  # the ends of the blend are the models
        got = ulmfit.evaluate(tmp_path / "c", data, EvaluateSettings(blend=str(tmp_path / "b"), blend_weight=w,
                                                                     quiet=True))["blend"]
        assert got["accuracy"] == pytest.approx(alone) and got["weight_chosen"] == "given"

    texts = ["w1 w2 apple w3", "stone w4 w5", "river"]
    rows = ulmfit.predict(tmp_path / "c", texts, PredictSettings(blend=str(tmp_path / "b"), blend_weight=0.0,
                                                                 quiet=True))
    model = TfidfModel.load(tmp_path / "b")
    assert [r["label"] for r in rows] == [model.classes[k] for k in model.predict_proba(texts).argmax(1)]
    with pytest.raises(UlmfitError, match="needs --blend-weight"):
        ulmfit.predict(tmp_path / "c", texts, PredictSettings(blend=str(tmp_path / "b"), quiet=True))
    with pytest.raises(UlmfitError, match="no saved baseline"):
        ulmfit.evaluate(tmp_path / "c", data, EvaluateSettings(blend=str(tmp_path), quiet=True))
    # a baseline that trained on the classifier's hold-out cannot choose the weight on it
    ulmfit.baseline(data, BaselineSettings(out=str(tmp_path / "b2"), quiet=True))
    with pytest.raises(UlmfitError, match="valid_frac"):
        ulmfit.evaluate(tmp_path / "c", data, EvaluateSettings(blend=str(tmp_path / "b2"), quiet=True))
