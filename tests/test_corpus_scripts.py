"""scripts/build_lm_corpus.py (the shipped LMs' corpus) and scripts/imdb_snippets.py (a short-text dev table), on
an aclImdb-shaped tarball and a general-en-shaped file made here."""

import csv
import importlib.util
import io
import json
import lzma
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tarball(path: Path, reviews: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in reviews.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _reviews(n_per_class: int) -> dict[str, str]:
    out = {"aclImdb/README": "not a review"}
    for split in ("train", "test"):
        for lab, word in (("pos", "wonderful"), ("neg", "dreadful")):
            for i in range(n_per_class):
                out[f"aclImdb/{split}/{lab}/{i}_7.txt"] = (
                    f"Seen in 2019.<br />The plot moves along at its own pace here. "
                    f"All in all a {word} film{' truly' * i} of its kind! I rate it 8/10."
                )
    out["aclImdb/train/unsup/0_0.txt"] = "An unlabelled review.<br />Two lines."
    return out


def test_the_corpus_keeps_every_review_in_tarball_order_and_every_8th_book(tmp_path):
    _tarball(tmp_path / "aclImdb_v1.tar.gz", _reviews(2))
    (tmp_path / "general-en").mkdir()
    with lzma.open(tmp_path / "general-en" / "gutenberg-part1.jsonl.xz", "wt", encoding="utf-8") as f:
        for i in range(17):
            f.write(json.dumps({"id": f"g{i}", "source": "gutenberg", "text": f"book {i}"}) + "\n")
    out = tmp_path / "corpus"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_lm_corpus.py"), str(tmp_path), str(out)], check=True)
    docs = [json.loads(line) for line in (out / "imdb-100k.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(docs) == 9  # 8 labelled + 1 unlabelled; the README is not a review
    assert docs[0]["id"] == "imdb-train-pos-0" and docs[-1]["id"] == "imdb-train-unsup-0"
    assert docs[-1]["text"] == "An unlabelled review.\nTwo lines."  # <br /> -> newline
    books = [json.loads(line)["id"] for line in (out / "gutenberg-every8th.jsonl").read_text().splitlines()]
    assert books == ["g0", "g8", "g16"]


def test_a_snippet_is_the_last_sentence_of_5_to_40_words_without_a_digit():
    verdict = _script("imdb_snippets").verdict
    assert verdict("It was long. Far too long for me, honestly. I rate it 3/10.") == "Far too long for me, honestly."
    assert verdict("Bad. Awful!") is None  # nothing of 5 words or more
    assert verdict("A good start.<br />And then it drags on and on and on.") == "And then it drags on and on and on."


def test_snippet_tables_are_balanced_and_test_never_shares_a_review_with_valid(tmp_path):
    tar = _tarball(tmp_path / "imdb.tar.gz", _reviews(10))
    out = tmp_path / "snip"
    args = [str(tar), str(out), "--train", "8", "--test", "6", "--valid", "8"]
    subprocess.run([sys.executable, str(ROOT / "scripts" / "imdb_snippets.py"), *args], check=True)
    tables = {}
    for name in ("train", "valid", "test"):
        with open(out / f"{name}.csv", newline="", encoding="utf-8") as f:
            tables[name] = list(csv.DictReader(f))
    assert [len(tables[n]) for n in ("train", "valid", "test")] == [8, 8, 6]
    assert sorted(r["label"] for r in tables["train"]) == ["neg"] * 4 + ["pos"] * 4
    for rows in tables.values():
        for r in rows:
            assert r["text"].startswith("All in all a") and ("wonderful" in r["text"]) == (r["label"] == "pos")
    # 14 of the 20 test reviews are drawn, each once: no review's snippet is in both test and valid
    texts = [r["text"] for n in ("valid", "test") for r in tables[n]]
    assert len(set(texts)) == 14
