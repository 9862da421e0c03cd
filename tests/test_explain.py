"""Why a text got its label: integrated gradients (ulmfit.explain), TextClassifier.explain, `ulmfit explain`."""

import numpy as np
import pytest

from classifier_helpers import one_thread  # noqa: F401 (autouse)

from ulmfit.explain import readable
from ulmfit.inference import TextClassifier

LONG = " ".join(f"w{k % 20}" for k in range(150))  # longer than a bptt chunk (70): the chunks' state carries


@pytest.fixture(scope="module")
def clas(tmp_path_factory):
    import torch

    from classifier_helpers import train_tiny_classifier

    torch.set_num_threads(1)
    return train_tiny_classifier(tmp_path_factory.mktemp("explain"), n_docs=60, n_test=20) / "clas"


@pytest.mark.parametrize("text", ["w0 w3 w4 w5 w0 w6", LONG])
def test_scores_add_up_to_the_probability_over_the_baseline(clas, text):
    # completeness: the attributions sum to f(text) - f(all-zero embeddings), up to the integral's error;
    # across bptt chunks too (BPT3C's detached state would cut every gradient at its chunk's end)
    clf = TextClassifier.load(clas)
    r = clf.explain(text, steps=64)
    assert r["label"] == clf.predict([text])[0]["label"]
    assert r["probability"] == pytest.approx(clf.predict([text])[0]["probability"], abs=1e-5)
    delta = r["probability"] - r["baseline_probability"]
    assert abs(delta) > 1e-4
    assert r["total"] == pytest.approx(delta, rel=0.02, abs=1e-5)
    assert len(r["tokens"]) == len(r["scores"]) == len(r["spaces"]) == len(text.split())


def test_tokens_are_shown_as_the_user_wrote_them():
    words = ["xxbos", "xxmaj", "great", "film", "xxrep", "4", "!", "xxup", "wow", "(", "xxfld", "2", "ok", ")", "."]
    scores = np.arange(len(words), dtype=float)
    toks, s, spaces = readable(words, scores)
    assert toks == ["Great", "film", "!!!!", "WOW", "(", "ok", ")", "."]
    assert s == [1 + 2, 3, 4 + 5 + 6, 7 + 8, 9, 12, 13, 14]
    assert spaces == [False, True, True, True, True, False, False, False]


def test_unknown_words_int8_folders_and_the_page(clas, run_cli, tmp_path):
    clf = TextClassifier.load(clas, int8=True)  # no gradients through int8 layers: the folder's float weights
    r = clf.explain("w0 zebra", steps=8)
    assert r["tokens"] == ["w0", "zebra"]  # not xxunk
    out = tmp_path / "why.html"
    code, stdout, err = run_cli("explain", clas, "w1 w2 w3", "--html", out, "--steps", "8", "--threads", "1")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].split()[0] in ("neg", "pos") and [ln.split()[1] for ln in lines[1:4]] == ["w1", "w2", "w3"]
    page = out.read_text()
    assert page.count('class="tok" data-score=') == 3 and "<script" not in page and "http" not in page
    assert run_cli("explain", clas, "w1", "--steps", "0")[0] == 1  # a bad setting names its flag
