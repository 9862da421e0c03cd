"""Classifier prediction speed on IMDb test reviews: raw text in, tokenization included, all cores.

    PYTHONPATH=src python benchmarks/predict_imdb.py [DIR] --source ../shared/data/aclImdb_v1.tar.gz --limit 2000

Prints one JSON line: `n_reviews`, `reviews_per_s` (batch prediction of `--limit` test reviews) and
`p50_ms` / `p95_ms` (single-review `predict` on `--single` other reviews) of the best mode, then the
figures of each mode: "float32" and "int8" (torch; int8: dynamic quantized recurrent layers), "onnx" and
"onnx_int8" (the folder's ONNX export run by onnxruntime, float32 / dynamic int8), each mode's largest
probability difference from float32 and its agreement with float32's labels. With DIR (a trained
classifier whose classes include pos and neg) it also reports each mode's accuracy on those reviews and
the int8 accuracy costs. Without DIR it builds a `paper`-preset classifier with untrained weights and a
vocab counted from `--vocab-docs` train reviews (speed does not depend on the weights).
`--float32-limit` bounds the float32 batch runs (torch and ONNX: the slow ones) to keep the benchmark short.
`--workers 1,2` measures each mode's batch run both ways (one batch at a time on every thread; two batches at once,
one thread each) and reports the faster: which wins depends on the model, the runtime and the CPU, so it is
probed, not assumed. Single-review latency is measured with every thread on the one review.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import platform
import tarfile
import tempfile
import time
from pathlib import Path

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


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


def measure_batch(clf, texts, bs, workers=1):
    clf.encoder.processor.cache.clear()  # tokenization starts cold, as for new text
    t = time.perf_counter()
    probs = clf.predict_proba(texts, bs, workers)
    dt = time.perf_counter() - t
    return probs, {"n_reviews": len(texts), "reviews_per_s": round(len(texts) / dt, 2), "seconds": round(dt, 1)}


def measure_single(clf, singles):
    lat = []
    clf.predict(singles[:1])  # warm-up
    for s in singles[1:]:
        t = time.perf_counter()
        clf.predict([s])
        lat.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
            "n_single": len(lat)}


MODES = ("float32", "int8", "onnx", "onnx_int8")


def int8_gemm_peak_gops(threads, seconds=1.0, n=1024) -> float | None:
    """onnxruntime's u8 x s8 integer matmul rate (MatMulInteger, n x n) at `threads`: the ceiling of the int8
    backends' matmuls here (on AVX2 without VNNI about twice the float32 rate). None without onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-128, 127, (n, n)).astype(np.int8), "W")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "W"], ["Y"])], "mm",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = {"A": rng.integers(0, 255, (n, n)).astype(np.uint8)}
    return _best_rate(lambda: sess.run(None, x), 2 * n**3, seconds)


def macs_per_token(model) -> int:
    """Multiply-adds per token of the encoder's recurrent layers: every weight matrix but the embedding is used
    once per token (an LSTM's input and hidden matrices, a QRNN's windowed linear), the head once per document."""
    return sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "encoder.rnns." in n)


def _best_rate(run, ops, seconds) -> float:
    """The best of a few timings of 4 calls of run(), as ops per second / 1e9."""
    run()
    best, stop = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        for _ in range(4):
            run()
        best = max(best, 4 * ops / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def gemm_peak_gflops(seconds=1.0, n=1024) -> float:
    """This machine's float32 matmul rate at torch's threads (best of a few square n x n products): the
    ceiling any backend's float32 matmuls can reach here, measured in the same minutes as the rest."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return _best_rate(lambda: torch.mm(a, b), 2 * n**3, seconds)


def activation_ns(n=1 << 20, seconds=0.3) -> dict:
    """torch's float32 tanh and sigmoid, ns per element on one thread (best of a few calls on n elements): the
    QRNN's torch inference takes tanh as 2 sigmoid(2a) - 1 because the sigmoid is cheaper; this shows whether it
    is on the machine at hand."""
    rates, x = {}, torch.randn(n)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, fn in (("tanh", torch.tanh), ("sigmoid", torch.sigmoid)):
            fn(x)
            best, stop = float("inf"), time.perf_counter() + seconds
            while time.perf_counter() < stop:
                t = time.perf_counter()
                fn(x)
                best = min(best, time.perf_counter() - t)
            rates[f"{name}_ns_per_element"] = round(best * 1e9 / n, 3)
    finally:
        torch.set_num_threads(threads)
    return rates


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", nargs="?", metavar="DIR", help="a classifier folder (default: untrained paper model)")
    p.add_argument("--source", default="../shared/data/aclImdb_v1.tar.gz", help="the aclImdb tarball")
    p.add_argument("--limit", type=int, default=2000, help="test reviews for the batch run (default 2000)")
    p.add_argument("--float32-limit", type=int, default=None, help="fewer reviews for the float32 batch runs "
                   "(torch and ONNX)")
    p.add_argument("--single", type=int, default=41, help="single-review predictions timed (default 41, 1 warm-up)")
    p.add_argument("--bs", type=int, default=64, help="documents per batch (default 64)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {','.join(MODES)} (default all)")
    p.add_argument("--vocab-docs", type=int, default=25000, help="train reviews to count the vocab from (no DIR)")
    p.add_argument("--preset", default="paper", help="model size of the untrained classifier (no DIR; default paper)")
    p.add_argument("--arch", default="awd_lstm", help="encoder of the untrained classifier (no DIR; default awd_lstm)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--workers", default="1,2", help="comma-separated: batches predicted at once, one thread each "
                   "(1: one batch on --threads threads); each mode runs with each, the faster is reported "
                   "(default 1,2)")
    a = p.parse_args(argv)
    worker_counts = sorted({max(1, int(w)) for w in a.workers.split(",")})

    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    texts_all, labels_all = read_reviews(a.source, "test", a.limit + a.single)
    texts, labels, singles = texts_all[: a.limit], labels_all[: a.limit], texts_all[a.limit :]
    from ulmfit.inference import TextClassifier

    modes = [m for m in MODES if m in a.modes.split(",")]
    work = tempfile.TemporaryDirectory(prefix="predict_imdb.")
    folder = a.model_dir
    if not folder:  # a folder, so that every mode loads (and exports) the same weights as a user would
        from ulmfit.artifacts import save_classifier

        base = untrained_classifier(a.source, a.vocab_docs, a.preset, a.arch)
        folder = save_classifier(Path(work.name) / "clas", base.model, base.config, base.encoder)

    def make(mode, workers):
        if mode.startswith("onnx"):
            out = Path(work.name) / mode
            if not out.exists():  # exported once, loaded per worker count
                t = time.time()
                TextClassifier.load(folder, int8=False).export(out, onnx=True, int8=mode == "onnx_int8")
                print(f"# exported {mode} in {time.time() - t:.0f}s", file=sys.stderr)
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, threads // workers))  # onnxruntime's intra-op threads per session
            try:
                return TextClassifier.load(out, backend="onnx")  # (sessions run side by side with --workers)
            finally:
                torch.set_num_threads(threads)
        return TextClassifier.load(folder, int8=mode == "int8")

    ort = __import__("onnxruntime").__version__ if any(m.startswith("onnx") for m in modes) else None
    result = {"model": a.model_dir or f"untrained {a.preset} preset ({a.arch})", "threads": torch.get_num_threads(),
              "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "torch": torch.__version__, "onnxruntime": ort,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "load_avg_1m": round(os.getloadavg()[0], 2), "bs": a.bs, "workers_tried": worker_counts}
    ref = TextClassifier.load(folder)
    tokens = sum(len(d) for d in ref.encode(texts))  # per review as the model reads them (bos included)
    result["tokens_per_review"] = round(tokens / len(texts), 1)
    result["macs_per_token"] = macs_per_token(ref.model)
    result["gemm_peak_gflops_float32"] = gemm_peak_gflops()
    result["gemm_peak_gops_int8"] = int8_gemm_peak_gops(torch.get_num_threads())
    result.update(activation_ns())
    del ref
    preds = {}
    for mode in modes:
        n = a.float32_limit if mode in ("float32", "onnx") and a.float32_limit else a.limit
        r, by = {}, {}
        for w in worker_counts:
            if w == worker_counts[0] or mode.startswith("onnx"):  # an ONNX session's threads are fixed at load
                clf = make(mode, w)
            got, rw = measure_batch(clf, texts[:n], a.bs, w)
            by[w] = rw["reviews_per_s"]
            if not r or rw["reviews_per_s"] > r["reviews_per_s"]:
                probs, r = got, {**rw, "workers": w}
            if w == worker_counts[0]:
                single = measure_single(clf, singles)
        r = {**r, **single, "reviews_per_s_by_workers": by}
        preds[mode] = probs
        if a.model_dir and {"pos", "neg"} <= set(clf.classes):
            pos = clf.classes.index("pos")
            r["accuracy"] = round(float(((probs[:, pos] > 0.5).astype(int) == labels[:n]).mean()), 4)
        # the recurrent layers' matmul work per second, against the float32 matmul ceiling measured above
        r["gflops_recurrent"] = round(2 * result["macs_per_token"] * r["reviews_per_s"] * tokens / len(texts) / 1e9, 1)
        r["share_of_gemm_peak"] = round(r["gflops_recurrent"] / result["gemm_peak_gflops_float32"], 3)
        if "int8" in mode and result["gemm_peak_gops_int8"]:
            r["share_of_int8_gemm_peak"] = round(r["gflops_recurrent"] / result["gemm_peak_gops_int8"], 3)
        result[mode] = r
        print(f"# {mode}: {json.dumps(r)}", file=sys.stderr)
    for mode in [m for m in modes if m != "float32" and "float32" in preds]:
        n = min(len(preds["float32"]), len(preds[mode]))
        ref, got = preds["float32"][:n], preds[mode][:n]
        result[f"{mode}_agreement"] = round(float((ref.argmax(1) == got.argmax(1)).mean()), 4)
        result[f"{mode}_max_abs_diff"] = float(f"{np.abs(ref - got).max():.2e}")
        if "accuracy" in result["float32"]:
            cost = (ref.argmax(1) == labels[:n]).mean() - (got.argmax(1) == labels[:n]).mean()
            result[f"{mode}_accuracy_cost_points"] = round(100 * float(cost), 2)
    work.cleanup()
    best = max((m for m in modes if m in result), key=lambda m: result[m]["reviews_per_s"])
    result = {"mode": best, **{k: result[best][k] for k in ("n_reviews", "reviews_per_s", "p50_ms", "p95_ms")},
              **result}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
