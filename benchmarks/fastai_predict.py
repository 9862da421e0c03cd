"""The anchor of benchmarks/predict_imdb.py: fastai's own AWD-LSTM text classifier on the same IMDb test reviews.

    ~/fastai-venv/bin/python benchmarks/fastai_predict.py --source ../shared/data/aclImdb_v1.tar.gz --limit 2000

Run it with a Python where fastai is installed (a venv of its own: fastai is no dependency of ulmfit). It builds
`text_classifier_learner(dls, AWD_LSTM, pretrained=False)` (the paper size, 400/1150/3, untrained: speed does not
depend on the weights), its vocab counted from `--vocab-docs` train reviews, then measures `get_preds` on a test
DataLoader of `--limit` reviews (`reviews_per_s`: prediction only, on text fastai has already tokenized;
`reviews_per_s_with_tokenization`: tokenizing them too, as predict_imdb.py's figures include) and single-review
`learn.predict` latency (p50/p95, tokenization included). Prints one JSON line; without fastai it says so (a JSON
line with "skipped") and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as predict_imdb.py: threads sleep at barriers

import numpy as np  # noqa: E402

from predict_imdb import cpu_name, read_reviews  # noqa: E402 (this folder is on sys.path when run as a script)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="../shared/data/aclImdb_v1.tar.gz", help="the aclImdb tarball")
    p.add_argument("--limit", type=int, default=2000, help="test reviews for get_preds (default 2000)")
    p.add_argument("--single", type=int, default=41, help="single-review predictions timed (default 41, 1 warm-up)")
    p.add_argument("--bs", type=int, default=64, help="documents per batch (default 64)")
    p.add_argument("--vocab-docs", type=int, default=2000, help="train reviews to build the vocab from (default 2000)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--tiny", action="store_true", help="a tiny AWD-LSTM (emb 16, hidden 32, 2 layers): smoke tests")
    a = p.parse_args(argv)
    try:
        import torch
        from fastai.text.all import (AWD_LSTM, TextDataLoaders, awd_lstm_clas_config, defaults,
                                     text_classifier_learner)
        import fastai
    except ImportError as e:
        print(f"# fastai is not importable here ({e}): nothing measured", file=sys.stderr)
        print(json.dumps({"skipped": f"fastai is not importable ({e})"}))
        return
    import pandas as pd

    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    defaults.cpus = min(defaults.cpus, torch.get_num_threads())
    texts_all, _ = read_reviews(a.source, "test", a.limit + a.single)
    texts, singles = texts_all[: a.limit], texts_all[a.limit :]
    train, labels = read_reviews(a.source, "train", a.vocab_docs, seed=1)
    t = time.time()
    df = pd.DataFrame({"text": train, "label": np.where(labels == 1, "pos", "neg")})
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.1, bs=a.bs, seed=0,
                                  max_vocab=60000, min_freq=3)
    config = dict(awd_lstm_clas_config)
    if a.tiny:
        config.update(emb_sz=16, n_hid=32, n_layers=2)
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, pretrained=False, config=config)
    learn.model.eval()
    print(f"# built an untrained fastai AWD-LSTM classifier, vocab {len(dls.vocab[0])}, in {time.time() - t:.0f}s",
          file=sys.stderr)
    t = time.perf_counter()
    dl = learn.dls.test_dl(texts, bs=a.bs)
    tok = time.perf_counter() - t
    with learn.no_bar():
        t = time.perf_counter()
        learn.get_preds(dl=dl)
        dt = time.perf_counter() - t
        lat = []
        learn.predict(singles[0])  # warm-up
        for s in singles[1:]:
            t = time.perf_counter()
            learn.predict(s)
            lat.append((time.perf_counter() - t) * 1000)
    print(json.dumps({
        "model": f"fastai {fastai.__version__} AWD_LSTM classifier, untrained "
                 f"({config['emb_sz']}/{config['n_hid']}/{config['n_layers']})",
        "threads": torch.get_num_threads(), "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_1m": round(os.getloadavg()[0], 2), "bs": a.bs, "n_reviews": len(texts),
        "reviews_per_s": round(len(texts) / dt, 2), "tokenize_s": round(tok, 1),
        "reviews_per_s_with_tokenization": round(len(texts) / (dt + tok), 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "n_single": len(lat)}))


if __name__ == "__main__":
    main()
