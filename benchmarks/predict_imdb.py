"""Classifier prediction speed on IMDb test reviews: raw text in, tokenization included, all cores.

    PYTHONPATH=src python benchmarks/predict_imdb.py [DIR] --source ../shared/data/aclImdb_v1.tar.gz --limit 2000

Prints one JSON line: `n_reviews`, `reviews_per_s` (batch prediction of `--limit` test reviews) and
`p50_ms` / `p95_ms` (single-review `predict` on `--single` other reviews) of the best mode, then the
figures of each mode under "float32" and "int8" (int8: dynamic quantized LSTMs). With DIR (a trained
classifier whose classes include pos and neg) it also reports each mode's accuracy on those reviews and
the int8 accuracy cost. Without DIR it builds a `paper`-preset classifier with untrained weights and a
vocab counted from `--vocab-docs` train reviews (speed does not depend on the weights).
`--float32-limit` bounds the float32 batch run (it is the slow one) to keep the benchmark short.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time

# Threads that sleep at OpenMP barriers instead of spinning: on a machine whose cores are shared,
# spinning threads wait for descheduled ones and prediction gets up to 10x slower. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def read_reviews(source, split, limit=None, seed=0):
    """(texts, labels 1=pos 0=neg) of aclImdb/{split}/{pos,neg}/*.txt read straight from the tarball;
    a fixed random `limit` of them (both classes mixed)."""
    out = []
    with tarfile.open(source, "r:*") as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[1] == split and parts[2] in ("pos", "neg"):
                out.append((m.name, tar.extractfile(m).read().decode("utf-8"), int(parts[2] == "pos")))
    out.sort()
    idx = np.random.default_rng(seed).permutation(len(out))
    if limit:
        idx = idx[:limit]
    return [out[i][1] for i in idx], np.array([out[i][2] for i in idx])


def untrained_classifier(source, vocab_docs, size="paper", arch="awd_lstm"):
    from ulmfit.artifacts import ClassifierConfig
    from ulmfit.inference import TextClassifier
    from ulmfit.models.classifier import ClassifierSettings, build_classifier
    from ulmfit.models.config import classifier_dropouts, preset
    from ulmfit.text.encoder import TextEncoder

    t = time.time()
    train, _ = read_reviews(source, "train", vocab_docs, seed=1)
    encoder = TextEncoder.from_texts(train, max_vocab=60000, min_freq=3)
    torch.manual_seed(0)
    mcfg = preset(size, len(encoder.vocab), **classifier_dropouts(arch), drop_mult=0.5, arch=arch)
    settings = ClassifierSettings(classes=["neg", "pos"])
    model = build_classifier(mcfg, settings)
    config = ClassifierConfig(mcfg, settings)
    print(f"# built an untrained {size} {arch} classifier, vocab {len(encoder.vocab)} from {len(train)} train reviews "
          f"in {time.time() - t:.0f}s", file=sys.stderr)
    return TextClassifier(model, encoder, config)


def measure(clf, texts, singles, bs, workers=1):
    clf.encoder.processor.cache.clear()  # tokenization starts cold, as for new text
    t = time.perf_counter()
    probs = clf.predict_proba(texts, bs, workers)
    dt = time.perf_counter() - t
    lat = []
    clf.predict(singles[:1])  # warm-up
    for s in singles[1:]:
        t = time.perf_counter()
        clf.predict([s])
        lat.append((time.perf_counter() - t) * 1000)
    return probs, {"n_reviews": len(texts), "reviews_per_s": round(len(texts) / dt, 2), "seconds": round(dt, 1),
                   "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
                   "n_single": len(lat)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", nargs="?", metavar="DIR", help="a classifier folder (default: untrained paper model)")
    p.add_argument("--source", default="../shared/data/aclImdb_v1.tar.gz", help="the aclImdb tarball")
    p.add_argument("--limit", type=int, default=2000, help="test reviews for the batch run (default 2000)")
    p.add_argument("--float32-limit", type=int, default=None, help="fewer reviews for the float32 batch run")
    p.add_argument("--single", type=int, default=41, help="single-review predictions timed (default 41, 1 warm-up)")
    p.add_argument("--bs", type=int, default=64, help="documents per batch (default 64)")
    p.add_argument("--modes", default="float32,int8", help="comma-separated: float32,int8 (default both)")
    p.add_argument("--vocab-docs", type=int, default=25000, help="train reviews to count the vocab from (no DIR)")
    p.add_argument("--preset", default="paper", help="model size of the untrained classifier (no DIR; default paper)")
    p.add_argument("--arch", default="awd_lstm", help="encoder of the untrained classifier (no DIR; default awd_lstm)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--workers", type=int, default=1,
                   help="batches predicted at once, one thread each (default 1: one batch on --threads threads)")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    texts_all, labels_all = read_reviews(a.source, "test", a.limit + a.single)
    texts, labels, singles = texts_all[: a.limit], labels_all[: a.limit], texts_all[a.limit :]
    if a.model_dir:
        from ulmfit.inference import TextClassifier

        make = lambda int8: TextClassifier.load(a.model_dir, int8=int8)  # noqa: E731
    else:
        base = untrained_classifier(a.source, a.vocab_docs, a.preset, a.arch)
        make = lambda int8: base.quantize() if int8 else base  # noqa: E731 (float32 runs first)
    result = {"model": a.model_dir or f"untrained {a.preset} preset ({a.arch})", "threads": torch.get_num_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "load_avg_1m": round(os.getloadavg()[0], 2), "bs": a.bs, "workers": a.workers}
    preds = {}
    for mode in [m for m in ("float32", "int8") if m in a.modes.split(",")]:
        clf = make(mode == "int8")
        n = a.float32_limit if mode == "float32" and a.float32_limit else a.limit
        probs, r = measure(clf, texts[:n], singles, a.bs, a.workers)
        preds[mode] = probs
        if a.model_dir and {"pos", "neg"} <= set(clf.classes):
            pos = clf.classes.index("pos")
            r["accuracy"] = round(float(((probs[:, pos] > 0.5).astype(int) == labels[:n]).mean()), 4)
        result[mode] = r
        print(f"# {mode}: {json.dumps(r)}", file=sys.stderr)
    if "float32" in preds and "int8" in preds:
        n = len(preds["float32"])
        result["int8_agreement"] = round(float((preds["float32"].argmax(1) == preds["int8"][:n].argmax(1)).mean()), 4)
        if "accuracy" in result["float32"]:
            f32 = preds["float32"].argmax(1) == labels[:n]
            i8 = preds["int8"][:n].argmax(1) == labels[:n]
            result["int8_accuracy_cost_points"] = round(100 * float(f32.mean() - i8.mean()), 2)
    best = max((m for m in ("float32", "int8") if m in result), key=lambda m: result[m]["reviews_per_s"])
    result = {"mode": best, **{k: result[best][k] for k in ("n_reviews", "reviews_per_s", "p50_ms", "p95_ms")},
              **result}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
