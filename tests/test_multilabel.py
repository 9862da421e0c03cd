"""Multi-label data end to end: prepare table (--label-sep, or several 0/1 --label-col) -> tokenize ->
train-classifier (multi-label from the data) -> predict / evaluate."""

import csv
import json

import numpy as np

from classifier_helpers import one_thread  # noqa: F401 (autouse)


def _docs(n, seed):
    """Texts of filler words; 'alpha' marks label a, 'beta' label b (either, both or neither)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        words = [f"w{int(w)}" for w in rng.integers(0, 15, size=int(rng.integers(4, 14)))]
        tags = [t for t in ("a", "b") if rng.random() < 0.5]
        for t in tags:
            words.insert(int(rng.integers(0, len(words))), {"a": "alpha", "b": "beta"}[t])
        rows.append((" ".join(words), tags))
    return rows


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "tags"])
        for text, tags in rows:
            w.writerow([text, "|".join(tags)])


def test_label_sep_table_trains_predicts_and_evaluates(tmp_path, run_cli):
    _write_csv(tmp_path / "train.csv", _docs(320, 0))
    _write_csv(tmp_path / "test.csv", _docs(80, 1))
    data = tmp_path / "data"
    code, out, err = run_cli("prepare", "table", tmp_path / "train.csv", "--test", tmp_path / "test.csv",
                             "--text-col", "text", "--label-col", "tags", "--label-sep", "|", "--out", data, "--quiet")
    assert code == 0, err
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["multi_label"] is True and meta["classes"] == ["a", "b"]
    labels = np.load(data / "labels.npy")
    rows = _docs(320, 0) + _docs(80, 1)
    assert labels.shape == (400, 2)
    assert labels.tolist() == [[int("a" in t), int("b" in t)] for _, t in rows]
    assert meta["class_counts"]["train"]["a"] == sum("a" in t for _, t in rows[:320])

    assert run_cli("tokenize", data, "--workers", "1", "--min-freq", "1", "--quiet")[0] == 0
    clf = tmp_path / "clf"
    code, out, err = run_cli("train-classifier", data, "--out", clf, "--preset", "tiny", "--threads", "1",
                             "--bs", "16", "--stages", "all:6:3e-2", "--lr-div", "1", "--drop-mult", "0.1", "--quiet")
    assert code == 0, err
    assert json.loads((clf / "config.json").read_text())["classifier"]["multi_label"] is True

    code, out, err = run_cli("predict", clf, "w1 alpha w3 beta w2", "w4 w5 w6", "beta w7 w8", "--quiet")
    assert code == 0, err
    got = [json.loads(line)["labels"] for line in out.splitlines()]
    assert got == [["a", "b"], [], ["b"]]

    code, out, err = run_cli("evaluate", clf, data, "--out", tmp_path / "ev", "--quiet")
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 80 and report["classes"] == ["a", "b"] and report["support"] == labels[320:].sum(0).tolist()
    assert report["accuracy"] >= 0.8 and min(report["f1"]) >= 0.85
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["macro_f1"] == report["macro_f1"]


def test_zero_one_label_columns_and_their_errors(tmp_path, run_cli):
    lines = [{"text": "good and kind", "toxic": 0, "insult": 0},
             {"text": "you fool", "toxic": 1, "insult": "true"},
             {"text": "", "toxic": 1, "insult": 1},
             {"text": "awful words", "toxic": 1.0, "insult": 0}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    code, out, err = run_cli("prepare", "table", tmp_path / "t.jsonl", "--text-col", "text", "--label-col", "toxic",
                             "--label-col", "insult", "--out", tmp_path / "d", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["classes"] == ["toxic", "insult"]
    assert np.load(tmp_path / "d" / "labels.npy").tolist() == [[0, 0], [1, 1], [1, 0]]  # the empty text skipped

    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "x", "toxic": "maybe", "insult": 0}) + "\n")
    code, out, err = run_cli("prepare", "table", tmp_path / "bad.jsonl", "--text-col", "text", "--label-col", "toxic",
                             "--label-col", "insult", "--out", tmp_path / "d2", "--quiet")
    assert code == 1 and "bad.jsonl: line 1: field 'toxic'" in err and "expected 0 or 1" in err
    assert not (tmp_path / "d2" / "documents.jsonl").exists()
    code, out, err = run_cli("prepare", "table", tmp_path / "t.jsonl", "--text-col", "text", "--label-col", "toxic",
                             "--label-col", "insult", "--label-sep", ",", "--out", tmp_path / "d3", "--quiet")
    assert code == 1 and "exactly one --label-col" in err
