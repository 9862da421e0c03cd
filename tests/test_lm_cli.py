import json

import numpy as np
import pytest
import torch

from ulmfit.cli import main
from ulmfit.text.special import SPECIAL_TOKENS
from ulmfit.text.store import write_store

SPACY = {"backend": "spacy", "lang": "en"}


def pattern_docs(words, n_docs, seed):
    """Documents counting up through `words` (a learnable language), ids offset past the specials."""
    rng = np.random.default_rng(seed)
    k = len(SPECIAL_TOKENS)
    docs = []
    for _ in range(n_docs):
        a = int(rng.integers(len(words)))
        docs.append([2] + [k + (a + i) % len(words) for i in range(int(rng.integers(15, 40)))])
    return docs


def make_store(path, words, n_docs=80, seed=0):
    docs = pattern_docs(words, n_docs, seed)
    n_valid = n_docs // 5
    return write_store(path, docs, SPECIAL_TOKENS + words, tokenizer=SPACY,
                       splits={"lm_train": np.arange(n_valid, n_docs), "lm_valid": np.arange(n_valid)})


COMMON = ["--preset", "tiny", "--bs", "4", "--bptt", "10", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    make_store(root / "corpus", [f"w{i}" for i in range(20)])
    out = root / "pre"
    assert main(["pretrain", str(root / "corpus"), "--out", str(out), "--epochs", "2", "--max-steps", "30",
                 "--lr", "1e-2", "--ckpt-every", "10"] + COMMON) == 0
    return root, out


def test_pretrain_writes_a_model_folder(pretrained):
    root, out = pretrained
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer.json", "metrics.json", "log.csv",
                 "history.json", "training_curve.png", "checkpoint.safetensors", "checkpoint.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "language_model" and config["model"]["vocab_size"] == len(SPECIAL_TOKENS) + 20
    hist = json.loads((out / "history.json").read_text())
    assert hist[-1]["step"] == 30 and np.isfinite(hist[-1]["valid_loss"])
    from ulmfit.artifacts import load_language_model

    lm, _, _ = load_language_model(out, with_encoder=False)
    logits, *_ = lm(torch.tensor([[2, 9, 10]]))
    assert logits.shape == (1, 3, len(SPECIAL_TOKENS) + 20)
    # a finished run resumes to nothing
    assert main(["pretrain", str(root / "corpus"), "--out", str(out), "--epochs", "2", "--max-steps", "30",
                 "--lr", "1e-2", "--ckpt-every", "10", "--resume"] + COMMON) == 0


def test_finetune_lm_onto_another_vocab(pretrained, capsys):
    root, pre = pretrained
    words = [f"w{i}" for i in range(10, 30)]  # half the words are new
    make_store(root / "data", words, seed=1)
    out = root / "ft"
    assert main(["finetune-lm", str(root / "data"), "--from", str(pre), "--out", str(out), "--epochs", "1",
                 "--max-steps", "8", "--frozen-epochs", "1"] + COMMON[2:]) == 0
    assert "19 of the dataset's 29 tokens" in capsys.readouterr().out  # the 9 specials + w10..w19
    hist = json.loads((out / "history.json").read_text())
    assert [r["phase"] for r in hist] == [1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["vocab_size"] == len(SPECIAL_TOKENS) + 20 and config["model"]["drop_mult"] == 0.3
    from ulmfit.artifacts import load_language_model

    lm, _, _ = load_language_model(out, with_encoder=False)  # the encoder the classifier starts from
    assert lm.encoder.embedding.weight.shape[0] == len(SPECIAL_TOKENS) + 20


def test_lr_find_cli(pretrained, capsys):
    root, pre = pretrained
    out = root / "lrf"
    assert main(["lr-find", str(root / "corpus"), "--from", str(pre), "--out", str(out), "--steps", "20",
                 "--bs", "4", "--bptt", "10", "--quiet", "--threads", "1"]) == 0
    assert "suggested lr" in capsys.readouterr().out
    assert (out / "lr_find.csv").exists() and (out / "lr_find.png").exists()


def test_empty_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert main(["pretrain", str(tmp_path / "raw"), "--out", str(tmp_path / "o")]) == 1
    assert "ulmfit tokenize" in capsys.readouterr().err


def test_pretrain_on_raw_corpus_files(tmp_path, capsys):
    import json
    import lzma

    files = []
    for k in range(2):
        files.append(tmp_path / f"part{k}.jsonl.xz")
        with lzma.open(files[-1], "wt") as f:
            for i in range(60):
                f.write(json.dumps({"id": i, "text": f"The cat sat on mat number {i % 7}. It was happy."}) + "\n")
    out = tmp_path / "lm"
    args = ["pretrain", *map(str, files), "--out", str(out), "--preset", "tiny", "--epochs", "1", "--max-steps",
            "5", "--bs", "4", "--bptt", "8", "--min-freq", "1", "--max-words", "600", "--quiet", "--threads", "1"]
    assert main(args) == 0
    meta = json.loads((out / "corpus" / "dataset.json").read_text())
    assert 50 <= meta["n_docs"] < 120  # --max-words took a slice
    assert (out / "corpus" / "tokens" / "ids.npy").exists() and (out / "model.safetensors").exists()
    assert json.loads((out / "vocab.json").read_text())["itos"][9:12]


def test_building_the_parser_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ulmfit.cli; ulmfit.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_evaluate_lm_cli(pretrained, capsys):
    import json

    root, pre = pretrained
    assert main(["evaluate-lm", str(pre), str(root / "corpus"), "--bs", "4", "--bptt", "10", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    res = json.loads(line)
    assert res["perplexity"] > 1 and 0 <= res["accuracy"] <= 1 and res["tokens"] > 0
