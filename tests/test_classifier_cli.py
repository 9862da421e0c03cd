"""train-classifier / predict / evaluate / export-classifier end to end on a learnable synthetic dataset."""

import json
import shutil
import time

import numpy as np
import pytest
import torch

from ulmfit.inference import TextClassifier, ensemble_proba

from classifier_helpers import synthetic_store, one_thread  # noqa: F401 (autouse)

FAST = ["--preset", "tiny", "--threads", "1", "--bs", "16", "--stages", "all:5:3e-2", "--lr-div", "1",
        "--drop-mult", "0.1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset folder, forward classifier folder, backward classifier folder), trained once."""
    from ulmfit.cli import main

    root = tmp_path_factory.mktemp("clf")
    synthetic_store(root / "data")
    assert main(["train-classifier", str(root / "data"), "--out", str(root / "fwd"), *FAST]) == 0
    assert main(["train-classifier", str(root / "data"), "--out", str(root / "bwd"), "--backwards", *FAST]) == 0
    return root / "data", root / "fwd", root / "bwd"


POS, NEG = "w5 w7 w0 w9 w12", "w4 w1 w8"


def test_training_writes_a_complete_folder(trained):
    _, fwd, bwd = trained
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer.json", "log.csv", "history.json",
                 "metrics.json", "confusion.json", "confusion.png", "checkpoint.safetensors", "best/model.safetensors"):
        assert (fwd / name).exists(), name
    metrics = json.loads((fwd / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95
    cfg = json.loads((bwd / "config.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["classifier"]["backwards"] is True
    assert json.loads((bwd / "metrics.json").read_text())["accuracy"] >= 0.9
    conf = json.loads((fwd / "confusion.json").read_text())
    assert np.array(conf["confusion_matrix"]).sum() == 100 and conf["classes"] == ["neg", "pos"]


def test_predict_keeps_input_order(trained):
    _, fwd, _ = trained
    clf = TextClassifier.load(fwd)
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{int(w)}" for w in rng.integers(2, 20, size=int(rng.integers(3, 50))))
             + (" w0" if k % 2 else " w1") for k in range(37)]
    batch = clf.predict_proba(texts, bs=8)
    one_by_one = np.concatenate([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(texts, bs=4, workers=2), batch, atol=1e-5)
    # with workers, each batch is tokenized by the worker that runs it (overlapping the others' model work), one
    # at a time: the tokenizer is not thread-safe
    calls, inside, most = [], [0], [0]
    encode = clf.encoder.encode

    def watched(batch_texts):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        calls.append(len(batch_texts))
        inside[0] -= 1
        return encode(batch_texts)

    clf.encoder.encode = watched
    np.testing.assert_allclose(clf.predict_proba(texts + [""], bs=4, workers=3)[:-1], batch, atol=1e-5)
    assert sorted(calls) == [2] + [4] * 9 and most[0] == 1
    # ...and two threads of a caller's own, each predicting with one worker, do not tokenize at once either
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda t: clf.predict_proba(t, bs=8), [texts[:20], texts[20:]]))
    np.testing.assert_allclose(np.concatenate(got), batch, atol=1e-5)
    assert most[0] == 1
    clf.encoder.encode = encode
    labels = [r["label"] for r in clf.predict(texts, bs=8)]
    assert sum(lab == ("pos" if k % 2 else "neg") for k, lab in enumerate(labels)) >= 34
    r = clf.predict([POS, NEG])
    assert [x["label"] for x in r] == ["pos", "neg"] and all(0.5 < x["probability"] <= 1 for x in r)
    with pytest.raises(TypeError):
        clf.predict("a single string")


def test_int8_mostly_agrees_with_float(trained):
    data, fwd, _ = trained
    texts = [json.loads(line)["text"] for line in (data / "documents.jsonl").read_text().splitlines()][:200]
    f32 = TextClassifier.load(fwd).predict_proba(texts)
    q = TextClassifier.load(fwd, int8=True)
    assert q.int8 and any("quantized" in type(m).__module__ for m in q.model.modules())
    i8 = q.predict_proba(texts)
    assert (f32.argmax(1) == i8.argmax(1)).mean() >= 0.95
    assert np.abs(f32 - i8).mean() < 0.05


def test_exported_folder_is_self_contained(trained, tmp_path, run_cli):
    _, fwd, _ = trained
    code, out, err = run_cli("export-classifier", fwd, tmp_path / "exp", "--int8")
    assert code == 0, err
    moved = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "exp"), moved)
    assert sorted(p.name for p in moved.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json", "vocab.json"]
    clf = TextClassifier.load(moved)
    assert clf.int8
    assert [r["label"] for r in clf.predict([POS, NEG])] == ["pos", "neg"]
    assert not TextClassifier.load(moved, int8=False).int8


def test_predict_cli_inputs(trained, tmp_path, run_cli, monkeypatch):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    _, fwd, _ = trained
    code, out, err = run_cli("predict", fwd, POS, NEG, "--threads", "1")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    (tmp_path / "in.txt").write_text(f"{POS}\n{NEG}\n")
    (tmp_path / "in.csv").write_text(f"id,text\n1,{POS}\n2,{NEG}\n")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": POS}) + "\n" + json.dumps({"text": NEG}) + "\n")
    pq.write_table(pa.table({"text": [POS, NEG]}), tmp_path / "in.parquet")
    for name in ("in.txt", "in.csv", "in.jsonl", "in.parquet"):
        code, out, err = run_cli("predict", fwd, "--input", tmp_path / name, "--output", tmp_path / "o.jsonl",
                                 "--threads", "1")
        assert code == 0, (name, err)
        got = [json.loads(line)["label"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
        assert got == ["pos", "neg"], name
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{NEG}\n{POS}\n"))
    code, out, err = run_cli("predict", fwd, "--int8", "--threads", "1")
    assert code == 0, err
    assert [json.loads(line)["label"] for line in out.splitlines()] == ["neg", "pos"]
    code, out, err = run_cli("predict", fwd, "--input", tmp_path / "in.csv", "--text-col", "body")
    assert code == 1 and "in.csv" in err and "body" in err
    # batches predicted side by side (--workers) give the same rows as one at a time, in input order
    many = [POS, NEG, "w3 w9 w0 w11 w2", NEG + " " + POS, "w1"] * 30  # 150 texts: 5 batches of 32
    (tmp_path / "many.txt").write_text("\n".join(many) + "\n")
    outs = []
    for workers in ("1", "3"):
        code, out, err = run_cli("predict", fwd, "--input", tmp_path / "many.txt", "--bs", "32", "--threads", "2",
                                 "--workers", workers, "--quiet")
        assert code == 0, err
        outs.append([json.loads(line) for line in out.splitlines()])
    assert len(outs[0]) == 150 and [r["label"] for r in outs[0]] == [r["label"] for r in outs[1]]
    assert [r["probability"] for r in outs[1]] == pytest.approx([r["probability"] for r in outs[0]], abs=1e-5)
    assert torch.get_num_threads() == 2  # the workers' one thread each was put back


def test_evaluate_and_ensemble(trained, tmp_path, run_cli):
    data, fwd, bwd = trained
    code, out, err = run_cli("evaluate", fwd, data, "--ensemble", bwd, "--out", tmp_path / "rep", "--threads", "1")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["n"] == 100 and rep["accuracy"] >= 0.95 and len(rep["single_accuracy"]) == 2
    assert "predicting" in err  # a progress bar (100 documents: two batches of 64)
    assert (tmp_path / "rep" / "evaluation.json").exists() and (tmp_path / "rep" / "evaluation.png").exists()
    # the ensemble is the mean of the two models' probabilities
    texts = [POS, NEG, "w3 w9 w0 w11 w2"]
    a, b = TextClassifier.load(fwd), TextClassifier.load(bwd)
    np.testing.assert_allclose(ensemble_proba([a, b], texts), (a.predict_proba(texts) + b.predict_proba(texts)) / 2,
                               atol=1e-6)
    # an untokenized dataset folder is read as raw text (documents.jsonl) through the folder's tokenizer
    raw = tmp_path / "raw"
    shutil.copytree(data, raw, ignore=shutil.ignore_patterns("tokens"))
    code, out2, err = run_cli("evaluate", fwd, raw, "--threads", "1", "--quiet")
    assert code == 0, err
    assert "predicting" not in err
    assert json.loads(out2)["accuracy"] == pytest.approx(rep["single_accuracy"][0])
    # a labelled table works too; its labels must be the classifier's classes
    (tmp_path / "t.csv").write_text(f"text,label\n{POS},pos\n{NEG},neg\n")
    code, out, err = run_cli("evaluate", fwd, tmp_path / "t.csv", "--threads", "1")
    assert code == 0 and json.loads(out)["accuracy"] == 1.0
    (tmp_path / "bad.csv").write_text(f"text,label\n{POS},maybe\n")
    code, out, err = run_cli("evaluate", fwd, tmp_path / "bad.csv", "--threads", "1")
    assert code == 1 and "bad.csv: line 2: field 'label'" in err


def test_resume_after_a_budget_stop(trained, tmp_path, run_cli):
    data, _, _ = trained
    args = ["train-classifier", data, "--out", tmp_path / "c", *FAST[:-1]]
    code, out, err = run_cli(*args, "--max-steps", "7", "--quiet")
    assert code == 0, err
    assert "stopped early" in out
    code, out, err = run_cli(*args, "--resume", "--quiet")
    assert code == 0, err
    hist = json.loads((tmp_path / "c" / "history.json").read_text())
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4, 5]


def test_encoder_comes_from_the_language_model_folder(trained, tmp_path, run_cli):
    """With --encoder the classifier starts from the LM's encoder weights (head-only stage: they stay)."""
    from ulmfit.artifacts import load_state_dict, save_model
    from ulmfit.models.language_model import LanguageModel
    from ulmfit.models.config import preset
    from ulmfit.text.encoder import TextEncoder
    from ulmfit.text.store import TokenStore

    data, _, _ = trained
    store = TokenStore(data)
    torch.manual_seed(3)
    cfg = preset("tiny", vocab_size=len(store.vocab))
    lm = LanguageModel(cfg)
    save_model(tmp_path / "lm", lm, {"kind": "language_model", "model": cfg, "backwards": False},
               TextEncoder.from_store(store))
    code, out, err = run_cli("train-classifier", data, "--encoder", tmp_path / "lm", "--out", tmp_path / "c",
                             "--stages", "1:1:1e-2", "--threads", "1", "--quiet")
    assert code == 0, err
    sd = load_state_dict(tmp_path / "c")
    for k, v in lm.encoder.state_dict().items():
        assert torch.equal(sd[f"encoder.encoder.{k}"], v), k
    code, out, err = run_cli("train-classifier", data, "--encoder", tmp_path / "lm", "--out", tmp_path / "c2",
                             "--backwards", "--quiet")
    assert code == 1 and "reads forwards" in err


def test_user_errors(tmp_path, run_cli):
    code, out, err = run_cli("train-classifier", tmp_path / "nope", "--out", tmp_path / "x")
    assert code == 1 and "not a tokenized dataset folder" in err
    code, out, err = run_cli("predict", tmp_path / "nope", "hello")
    assert code == 1 and "does not exist" in err


def test_valid_frac_validates_on_held_out_train_documents(trained, tmp_path, run_cli):
    data, _, _ = trained
    args = ["train-classifier", data, "--out", tmp_path / "c", *FAST[:4], "--stages", "1:1:1e-2"]
    code, out, err = run_cli(*args, "--valid-frac", "0.1")
    assert code == 0, err
    assert "validating on 30 (train, held out of training)" in err
    training = json.loads((tmp_path / "c" / "config.json").read_text())["training"]
    assert training["valid_split"] == "train" and training["valid_frac"] == 0.1
    conf = json.loads((tmp_path / "c" / "confusion.json").read_text())
    assert np.array(conf["confusion_matrix"]).sum() == 30  # 10 % of the 300 train documents, not the test split
    code, out, err = run_cli(*args, "--valid-frac", "0.1", "--valid-split", "test")
    assert code == 1 and "not both" in err
    code, out, err = run_cli(*args, "--valid-frac", "1.5")
    assert code == 1 and "--valid-frac must be in (0, 1), got 1.5" in err


def test_lr_find_sweeps_the_first_stage_and_trains_nothing(trained, tmp_path, run_cli):
    data, _, _ = trained
    out = tmp_path / "lrf"
    code, stdout, err = run_cli("train-classifier", data, "--out", out, *FAST[:4], "--stages", "all:1:1e-2,1:1:1e-3",
                                "--lr-find", "--lr-find-steps", "60", "--lr-find-range", "1e-4,10", "--quiet")
    assert code == 0, err
    assert "suggested lr for the first stage (all trainable group(s))" in stdout and "--stages all:1:" in stdout
    found = json.loads((out / "lr_find.json").read_text())
    # The synthetic task is learnable: the loss falls, then diverges (the sweep stops early), and the
    # steepest descent lies inside the sweep.
    assert not found["inconclusive"] and 1e-4 < found["suggested"] < 10 and 10 <= found["steps_run"] < 60
    assert (out / "lr_find.png").stat().st_size > 1000
    assert not (out / "model.safetensors").exists()  # a sweep, not a training run
