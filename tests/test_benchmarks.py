"""Smoke tests of every script in benchmarks/ and scripts/ on tiny data, so that none can rot unseen.

Each runs the script as a user would (a subprocess, its own argv) and checks the one JSON line it prints.
(scripts/gpu_check.py, gpu_pretrain.py and ship_lm.py have their own tests; scripts/test.sh is the suite.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_prepare import make_imdb_tar

from ulmfit.training.precision import cpu_bf16_speedup

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_script(*cmd, timeout=300, env=None):
    r = subprocess.run([sys.executable, *map(str, cmd)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env=env or ENV)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_lm_throughput_runs_its_default_precisions_on_any_cpu():
    # The default precisions include bf16: on a CPU without it (AVX2 only) the row says why, not a crash.
    js = run_script("benchmarks/lm_throughput.py", "--preset", "tiny", "--vocab-size", "300", "--bs", "4",
                    "--bptt", "8", "--steps", "1", "--warmup", "1", "--threads", "1", "--device", "cpu",
                    "--precisions", "fp32,bf16,auto")
    rows = {(r["arch"], r["requested"] if "requested" in r else r["precision"], r["softmax"]): r for r in js["results"]}
    assert len(rows) == 2 * 3 * 2
    for (_arch, prec, _softmax), r in rows.items():
        if prec == "bf16" and cpu_bf16_speedup() == 0.0:
            assert "skipped" in r and "tokens_per_s" not in r
        else:
            assert r["tokens_per_s"] > 0 and r["s_per_step"] > 0
        if prec == "auto":  # what training would use here
            assert r["precision"] == ("bf16" if js["cpu_bf16_matmul_speedup"] >= 1.3 else "fp32")


def test_predict_imdb_without_a_folder_and_with_one(tmp_path):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=12)
    js = run_script("benchmarks/predict_imdb.py", "--source", tar, "--limit", "8", "--single", "4", "--bs", "4",
                    "--vocab-docs", "10", "--preset", "tiny", "--arch", "qrnn", "--threads", "1", "--workers", "1,2")
    assert js["n_reviews"] == 8 and js["reviews_per_s"] > 0 and js["p50_ms"] > 0 and js["workers_tried"] == [1, 2]
    for m in ("float32", "int8", "onnx", "onnx_int8"):  # each mode both ways, the faster reported
        by = js[m]["reviews_per_s_by_workers"]
        assert set(by) == {"1", "2"} and js[m]["reviews_per_s"] == max(by.values()) == by[str(js[m]["workers"])]
    # the roofline: the recurrent layers' matmul rate against the machine's float32 matmul ceiling
    assert js["macs_per_token"] > 0 and js["tokens_per_review"] > 1 and js["gemm_peak_gflops_float32"] > 0
    r = js["float32"]
    want = 2 * js["macs_per_token"] * r["reviews_per_s"] * js["tokens_per_review"] / 1e9
    assert r["gflops_recurrent"] == pytest.approx(want, rel=0.05, abs=0.1) and r["share_of_gemm_peak"] >= 0
    assert js["gemm_peak_gops_int8"] > 0 and js["onnx_int8"]["share_of_int8_gemm_peak"] >= 0
    assert js["tanh_ns_per_element"] > 0 and js["sigmoid_ns_per_element"] > 0
    assert set(js) >= {"float32", "int8", "int8_agreement"} and "tiny" in js["model"]
    # every backend in the same run: the ONNX export (float32) gives torch's probabilities, int8 ONNX close to them
    assert all(js[m]["reviews_per_s"] > 0 and js[m]["p50_ms"] > 0 for m in ("onnx", "onnx_int8"))
    assert js["onnx_max_abs_diff"] < 1e-4 and js["onnx_int8_max_abs_diff"] < 0.05
    # with a trained classifier folder: accuracy per mode and the int8 cost
    data, lm, clas = tmp_path / "data", tmp_path / "lm", tmp_path / "clas"
    cli = [sys.executable, "-m", "ulmfit"]
    for args in (["prepare", "imdb", tar, "--out", data, "--quiet"],
                 ["tokenize", data, "--min-freq", "1", "--workers", "1", "--quiet"],
                 ["pretrain", data, "--out", lm, "--preset", "tiny", "--epochs", "1", "--max-steps", "4", "--bs", "4",
                  "--bptt", "10", "--threads", "1", "--quiet"],
                 ["train-classifier", data, "--lm", lm, "--out", clas, "--stages", "all:1:5e-3", "--bs", "8",
                  "--bptt", "10", "--max-len", "40", "--threads", "1", "--quiet"]):
        subprocess.run([*cli, *map(str, args)], check=True, env=ENV, cwd=ROOT, capture_output=True)
    js = run_script("benchmarks/predict_imdb.py", clas, "--source", tar, "--limit", "8", "--single", "3",
                    "--bs", "4", "--threads", "1")
    assert 0 <= js["float32"]["accuracy"] <= 1 and "int8_accuracy_cost_points" in js


def test_tokenize_imdb(tmp_path):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=5)
    js = run_script("benchmarks/tokenize_imdb.py", "--source", tar, "--workers", "1")
    assert js["n_docs"] == 25 and js["n_tokens"] > 0 and js["spacy_tokens"] > 0 and js["seconds"] > 0


def test_few_labels(tmp_path):
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=16)
    data, lm = tmp_path / "data", tmp_path / "lm"
    cli = [sys.executable, "-m", "ulmfit"]
    for args in (["prepare", "imdb", tar, "--out", data, "--quiet"],
                 ["tokenize", data, "--min-freq", "1", "--workers", "1", "--quiet"],
                 ["pretrain", data, "--out", lm, "--preset", "tiny", "--epochs", "1", "--max-steps", "4", "--bs", "4",
                  "--bptt", "10", "--threads", "1", "--quiet"]):
        subprocess.run([*cli, *map(str, args)], check=True, env=ENV, cwd=ROOT, capture_output=True)
    js = run_script("benchmarks/few_labels.py", data, lm, "--sizes", "8", "--stages", "all:1:5e-3",
                    "--out", tmp_path / "few")
    (row,) = js["results"]
    assert row["labels"] == 8 and row["test_docs"] == 32
    assert all(0 <= row[k] <= 1 for k in ("ulmfit_accuracy", "baseline_accuracy", "blend_accuracy"))


def test_imdb_sh_runs_a_preset_end_to_end(tmp_path):
    # the README's main command, on the tiny preset and a tiny archive (it installs nothing when .venv exists)
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=12)
    venv_ulmfit = ROOT / ".venv" / "bin" / "ulmfit"
    env = {**ENV, "PRESET": "tiny", "IMDB": str(tar)}
    if not venv_ulmfit.exists():  # the suite run outside scripts/test.sh: the script would build a venv
        import pytest

        pytest.skip("no .venv (scripts/test.sh makes it)")
    r = subprocess.run(["bash", "scripts/imdb.sh", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=600, cwd=ROOT, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (tmp_path / "run" / "report.md").exists() and "accuracy" in r.stdout.lower()


def test_peers_score_every_bag_of_words_model_on_the_same_split(tmp_path):
    import csv
    import random

    rng = random.Random(0)
    for name, n in (("train", 80), ("test", 30)):
        with open(tmp_path / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "text"])
            for _ in range(n):
                y = rng.choice(["sport", "money"])
                cue = {"sport": "match goal", "money": "bank price"}[y]
                w.writerow([y, f"{cue} " + " ".join(rng.choice(["the", "a", "of", "news", "today"]) for _ in range(6))])
    js = run_script("benchmarks/peers.py", "--train", tmp_path / "train.csv", "--test", tmp_path / "test.csv",
                    "--fasttext-epochs", "3", "--fasttext-buckets", "1000")
    assert js["n_scored"] == 30 and set(js["results"]) == {"tfidf_lr", "nbsvm", "fasttext"}
    assert all(r["accuracy"] > 0.9 for r in js["results"].values())  # the label's cue words are in every text
    js = run_script("benchmarks/peers.py", "--train", tmp_path / "train.csv", "--test", tmp_path / "test.csv",
                    "--valid-frac", "0.25", "--peers", "nbsvm")
    assert js["scored_on"] == "valid" and js["n_scored"] == 20 and js["n_train"] == 60


def test_fastai_predict_says_when_fastai_is_missing(tmp_path):
    # ulmfit's environment has no fastai (it is no dependency): the anchor script says so and exits 0; where fastai
    # is installed it measures a tiny model instead
    import importlib.util

    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=6)
    js = run_script("benchmarks/fastai_predict.py", "--source", tar, "--limit", "4", "--single", "3", "--bs", "2",
                    "--vocab-docs", "12", "--tiny", "--threads", "1")
    if importlib.util.find_spec("fastai") is None:
        assert "fastai is not importable" in js["skipped"]
    else:
        assert js["n_reviews"] == 4 and js["reviews_per_s"] > 0
