"""Benchmark: IMDb (all 100k reviews) prepare + tokenize + numericalize, cold and cached, against bare spaCy.

Prints one JSON line. `seconds` is the whole pipeline from the tarball with a cold cache (two CLI
processes, as a user runs them), `spacy_seconds` is `spacy.blank("en").tokenizer` over the same raw
texts in one process measured in the same run, `cached_seconds` is the same two commands again,
`peak_rss_mb` the largest summed RSS of the pipeline's process tree (workers included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import run_measured  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", default="../shared/data/aclImdb_v1.tar.gz", help="aclImdb folder or tarball")
    ap.add_argument("--workers", type=int, default=None, help="tokenize workers (default: all cores)")
    ap.add_argument("--tokenizer", default="spacy", choices=["spacy", "sentencepiece"])
    ap.add_argument("--keep", help="write the dataset here instead of a temporary folder")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    out = Path(args.keep or tmp.name) / "imdb"
    py = [sys.executable, "-m", "ulmfit"]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    prep = py + ["prepare", "imdb", args.source, "--out", str(out), "--quiet"]
    tok = py + ["tokenize", str(out), "--quiet", "--tokenizer", args.tokenizer]
    if args.workers:
        tok += ["--workers", str(args.workers)]

    s1, rss1, _ = run_measured(prep + ["--force"], env)
    s2, rss2, _ = run_measured(tok + ["--force"], env)
    c1, _, o1 = run_measured(prep, env)
    c2, _, o2 = run_measured(tok, env)
    assert o1.startswith("reused") and o2.startswith("reused"), (o1, o2)

    # Bare spaCy on one core over the same raw texts, in this process.
    import spacy

    texts = []
    with open(out / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
    tokenizer = spacy.blank("en").tokenizer
    t0 = time.perf_counter()
    n_spacy = 0
    for t in texts:
        n_spacy += len(tokenizer(t))
    spacy_s = time.perf_counter() - t0

    man = json.loads((out / "tokens" / "manifest.json").read_text())
    print(json.dumps({
        "benchmark": "tokenize_imdb", "tokenizer": args.tokenizer, "n_docs": man["n_docs"],
        "n_tokens": man["n_tokens"], "vocab_size": man["vocab_size"], "unk_rate": man["unk_rate"],
        "seconds": round(s1 + s2, 2), "prepare_seconds": round(s1, 2), "tokenize_seconds": round(s2, 2),
        "spacy_seconds": round(spacy_s, 2), "spacy_tokens": n_spacy, "ratio_to_spacy": round((s1 + s2) / spacy_s, 3),
        "cached_seconds": round(c1 + c2, 2), "peak_rss_mb": round(max(rss1, rss2), 1),
        "cpus": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
    }))


if __name__ == "__main__":
    main()
