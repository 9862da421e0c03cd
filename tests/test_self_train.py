"""Self-training (`ulmfit self-train`): which documents a teacher may label, which it adds, that the students train
on them, that the test split and validation documents stay out, and that a stopped run resumes at its round."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import ulmfit
from ulmfit import settings as S
from ulmfit.stages.self_train import most_confident, teacher_blend, unlabelled_pool
from ulmfit.classifier.task import holdout
from ulmfit.errors import UlmfitError

from classifier_helpers import one_thread, synthetic_docs  # noqa: F401 (autouse)


def test_most_confident_takes_the_surest_of_each_predicted_class():
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05], [0.45, 0.55], [0.7, 0.3]])
    pos, cls = most_confident(p, 2)
    assert pos.tolist() == [3, 0, 2, 4] and cls.tolist() == [0, 0, 1, 1]
    pos, cls = most_confident(p, 3)  # class 1 is predicted twice only: it is not filled up with class-0 rows
    assert pos.tolist() == [3, 0, 5, 2, 4] and cls.tolist() == [0, 0, 0, 1, 1]


def _store(root, n_train=120, n_test=40, n_unsup=80, seed=0):
    """The synthetic two-class task (w0 vs w1 somewhere in the text) with IMDb's split layout: labelled train and
    test documents and unlabelled ones that only the LM splits hold."""
    from ulmfit.text.pipeline import tokenizer_settings
    from ulmfit.text.store import write_store

    n = n_train + n_test + n_unsup
    docs, labels, itos = synthetic_docs(n, seed=seed, max_len=30)
    labels = np.array(labels)
    labels[n_train + n_test:] = -1
    splits = {"train": range(n_train), "test": range(n_train, n_train + n_test),
              "lm_train": range(n), "lm_valid": range(n - 10, n)}
    return write_store(root, docs, itos, labels=labels, classes=["neg", "pos"], splits=splits,
                       tokenizer=tokenizer_settings("spacy"))


def _lm(folder, store):
    from ulmfit.artifacts import save_model
    from ulmfit.models.config import preset
    from ulmfit.models.language_model import LanguageModel
    from ulmfit.text.encoder import TextEncoder

    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=len(store.vocab))
    save_model(folder, LanguageModel(cfg), {"kind": "language_model", "model": cfg, "backwards": False},
               TextEncoder.from_store(store))
    return folder


def test_unlabelled_pool_leaves_out_labels_test_and_validation(tmp_path):
    store = _store(tmp_path / "d")
    gold = np.array([0, 5, 7])
    pool = unlabelled_pool(store, gold, ["test", "nope"])
    assert not np.isin(pool, gold).any() and not np.isin(pool, store.split("test").index).any()
    assert len(pool) == store.n_docs - 3 - 40  # train docs beyond the labels used, and the unlabelled ones


def test_pseudo_labelled_documents_join_the_training_split(tmp_path):
    from ulmfit.stages.classifier import _build

    store = _store(tmp_path / "d")
    s = S.TrainClassifierSettings(preset="tiny", limit_train=10, valid_frac=0.1, quiet=True)
    plain = _build(tmp_path / "d", None, s)
    gold = plain.task.train_split.index[plain.task.train_batches(0, 0).keep]
    docs, labels = np.array([200, 201, 150]), np.array([1, 0, 1])
    b = _build(tmp_path / "d", None, s, pseudo=(docs, labels))
    train = b.task.train_batches(0, 0)
    used = b.task.train_split.index[train.keep]
    assert sorted(used.tolist()) == sorted(gold.tolist() + docs.tolist())  # --limit-train applies to the labels only
    got = dict(zip(used.tolist(), train.labels.tolist()))
    assert [got[d] for d in docs.tolist()] == labels.tolist()
    assert all(got[d] == store.labels[d] for d in gold.tolist())
    assert b.task.valid.n_docs == plain.task.valid.n_docs  # validation unchanged
    with pytest.raises(UlmfitError, match="pseudo-labels"):
        _build(tmp_path / "d", None, s, pseudo=(gold[:1], np.array([0])))  # a labelled document again


def test_self_train_rounds_add_confident_documents_and_resume(tmp_path, run_cli):
    store = _store(tmp_path / "d")
    lm = _lm(tmp_path / "lm", store)
    out = tmp_path / "st"
    args = ["self-train", tmp_path / "d", "--lm", lm, "--out", out, "--limit-train", "80", "--valid-frac", "0.1",
            "--rounds", "20,40", "--teacher-weight", "1", "--stages", "all:10:3e-2", "--student-stages", "all:10:3e-2",
            "--lr-div", "1", "--bs", "16",
            "--drop-mult", "0.1", "--threads", "1", "--quiet"]
    code, _, err = run_cli(*args)
    assert code == 0, err
    summary = json.loads((out / "self_train.json").read_text())
    added = [len(json.loads((out / "self-train" / f"round-{r}.json").read_text())["docs"]) for r in (1, 2)]
    assert [r["pseudo_labelled"] for r in summary["rounds"]] == [0, *added] and 0 < added[0] < added[1]
    held = holdout(store.split("train").labels, 0.1)[1]
    assert summary["labelled"] == 80 and summary["pool"] == 240 - 40 - 80 - len(held)
    test = set(store.split("test").index.tolist())
    gold_config = json.loads((out / "self-train" / "round-0" / "config.json").read_text())
    assert gold_config["training"]["pseudo_labelled"] == 0
    for r, n in ((1, 20), (2, 40)):
        chosen = json.loads((out / "self-train" / f"round-{r}.json").read_text())
        assert len(chosen["docs"]) == len(set(chosen["docs"])) <= 2 * n and not test & set(chosen["docs"])
        assert chosen["teacher"]["held_labels_seen"] == int((store.labels[chosen["docs"]] >= 0).sum())
    final = json.loads((out / "config.json").read_text())
    assert final["training"]["pseudo_labelled"] == added[1]
    # the easy synthetic task: the teacher's surest labels agree with the labels --limit-train held back
    assert summary["rounds"][2]["agreement_with_held_labels"] >= 0.75  # chance: 0.5
    ev = ulmfit.evaluate(out, tmp_path / "d", S.EvaluateSettings(quiet=True, threads=1))
    assert ev["n"] == 40 and ev["accuracy"] >= 0.9

    # a finished run resumes without training or labelling again
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")}
    code, _, err = run_cli(*args, "--resume")
    assert code == 0, err
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")}


def test_self_train_user_errors(tmp_path, run_cli):
    from ulmfit.text.pipeline import tokenizer_settings
    from ulmfit.text.store import write_store

    store = _store(tmp_path / "d")
    lm = _lm(tmp_path / "lm", store)
    code, _, err = run_cli("self-train", tmp_path / "d", "--lm", lm, "--out", tmp_path / "o", "--rounds", "0")
    assert code != 0 and "--rounds" in err
    code, _, err = run_cli("self-train", tmp_path / "d", "--lm", lm, "--out", tmp_path / "o", "--teacher-weight", "2")
    assert code != 0 and "--teacher-weight" in err
    # every document labelled and used: nothing to self-train on
    docs, labels, itos = synthetic_docs(60, max_len=20)
    write_store(tmp_path / "full", docs, itos, labels=labels, classes=["neg", "pos"],
                splits={"train": range(40), "test": range(40, 60)}, tokenizer=tokenizer_settings("spacy"))
    code, _, err = run_cli("self-train", tmp_path / "full", "--lm", lm, "--out", tmp_path / "o2", "--quiet")
    assert code != 0 and "no unlabelled documents" in err
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())


def test_self_train_with_the_tfidf_teacher_on_a_prepared_imdb_folder(tmp_path):
    """The default teacher: classifier and TF-IDF (trained on the same labels) blended; unsup reviews get labels."""
    from test_prepare import make_imdb_tar

    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    ulmfit.prepare("imdb", str(tar), tmp_path / "data", S.ImdbSettings(quiet=True))
    store, _ = ulmfit.tokenize(tmp_path / "data", S.TokenizeSettings(min_freq=1, workers=1, quiet=True))
    ulmfit.pretrain(tmp_path / "data", tmp_path / "lm", S.PretrainSettings(
        preset="tiny", epochs=1, max_steps=4, bs=4, bptt=10, valid_tokens=400, threads=1, quiet=True))
    s = S.SelfTrainSettings(rounds=[5], limit_train=10, valid_frac=0.1, stages="all:1:1e-2", bs=8, max_len=40,
                            threads=1, quiet=True)
    res = ulmfit.self_train(tmp_path / "data", tmp_path / "st", tmp_path / "lm", s)
    assert (tmp_path / "st" / "self-train" / "baseline" / "tfidf.json").exists()
    chosen = json.loads((tmp_path / "st" / "self-train" / "round-1.json").read_text())
    docs = np.array(chosen["docs"])
    assert 0 < len(docs) <= 10 and not np.isin(docs, store.split("test").index).any()
    unsup = np.flatnonzero(store.labels < 0)
    assert res["pool"] == len(unsup) + 40 - 10 - 4  # unsup + the train reviews not labelled nor held out
    assert res["rounds"][1]["pseudo_labelled"] == len(docs) and res["teacher_weight"] == 0.5


def test_teacher_blend_is_not_the_overconfident_models_vote_alone():
    rng = np.random.default_rng(0)
    sure = rng.random(200) < 0.5  # an over-confident model: probabilities near 0 or 1
    p_clf = np.where(sure, 0.999, 0.001)[:, None] * np.array([[1.0, -1.0]]) + np.array([[0.0, 1.0]])
    p_tf = np.clip(rng.normal(0.5, 0.1, 200), 0.01, 0.99)[:, None] * np.array([[1.0, -1.0]]) + np.array([[0.0, 1.0]])
    t = teacher_blend(p_clf, p_tf, 0.5)
    assert np.allclose(t.sum(1), 1.0)
    assert (t.argmax(1) == p_tf.argmax(1)).mean() > 0.05  # a plain mean of probabilities: always p_clf's class
    assert ((p_clf + p_tf).argmax(1) == p_clf.argmax(1)).all()
    assert (teacher_blend(p_clf, p_tf, 1.0).argmax(1) == p_clf.argmax(1)).all()
    assert (teacher_blend(p_clf, p_tf, 0.0).argmax(1) == p_tf.argmax(1)).all()


def test_a_stopped_self_train_continues_its_round_with_resume(tmp_path):
    store = _store(tmp_path / "d")
    lm = _lm(tmp_path / "lm", store)
    s = S.SelfTrainSettings(rounds=[10], teacher_weight=1.0, limit_train=40, valid_frac=0.1, stages="all:3:3e-2",
                            bs=8, threads=1, quiet=True, max_steps=4)
    res = ulmfit.self_train(tmp_path / "d", tmp_path / "st", lm, s)
    assert res["stopped"] == 0 and not (tmp_path / "st" / "self_train.json").exists()
    res = ulmfit.self_train(tmp_path / "d", tmp_path / "st", lm, dataclasses.replace(s, max_steps=None, resume=True))
    assert [r["round"] for r in res["rounds"]] == [0, 1]
    hist = json.loads((tmp_path / "st" / "self-train" / "round-0" / "history.json").read_text())
    assert hist[-1]["epoch"] == 3 and not hist[-1].get("partial")  # round 0 went on from its 4 steps to the end


def test_rounds_are_documents_per_class_or_shares_of_the_pool():
    from ulmfit.stages.self_train import per_class_counts

    assert per_class_counts([5000, 15000], 74000, 2) == [5000, 15000]
    assert per_class_counts([0.15, 0.4], 74000, 2) == [5550, 14800]
    assert per_class_counts([0.001], 100, 4) == [1]
