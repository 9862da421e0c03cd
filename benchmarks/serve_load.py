"""Load test of `ulmfit serve` on loopback: requests/s and latency at 1, 8 and 64 concurrent clients.

    PYTHONPATH=src python benchmarks/serve_load.py [DIR] --source ../shared/data/aclImdb_v1.tar.gz --seconds 60

Starts `ulmfit serve` as its own process on a free 127.0.0.1 port, then for each --clients count runs that many
clients for --seconds, each sending one IMDb test review per request (POST /predict) and the next as soon as the
answer comes. Beside it, the same reviews through `TextClassifier.predict` in this process: batch throughput
(`--bs` per batch; the better of one batch at a time on all cores and one batch per core on one thread each) and
the p50 of single-review calls on the first --single reviews, the very ones the lone client sends first (latency
depends on length: the same texts on both sides), so the server's overhead is a measured ratio. Prints one JSON
line: per client count requests/s, p50/p99 ms, failed requests, the server's mean batch size; the server's peak
RSS; the ratios.
Without DIR: a classifier of the shipped models' size (`cpu` preset, QRNN) with untrained weights (speed does
not depend on them; see predict_imdb.py), saved to a temporary folder for the server.
The clients share the machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does, before torch loads

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _proc import tree_rss_mb  # noqa: E402
from predict_imdb import measure_batch, read_reviews, untrained_classifier  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _post(reader, writer, host, body: bytes) -> int:
    """One POST /predict on a kept-alive connection -> the status code (the body is read and dropped)."""
    writer.write(
        b"POST /predict HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return status


async def clients(url, reviews, n, seconds):
    """n clients, each on its own kept-alive connection, one review per request. A bare HTTP/1.1 client on
    asyncio streams: an HTTP library's per-request cost (httpx: ~1-2 ms) would make the clients, which share
    the server's cores, the bottleneck at 64 of them."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"texts": [t]}).encode() for t in reviews]
    lat, failed, nxt, first = [], [0], [0], {}  # first: review index -> ms of its first answer
    stop = time.perf_counter() + seconds

    async def one():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                k = nxt[0]
                body = bodies[k % len(bodies)]
                nxt[0] += 1
                t = time.perf_counter()
                try:
                    ok = await asyncio.wait_for(_post(reader, writer, host.encode(), body), 120) == 200
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                    ok = False
                if ok:
                    lat.append((time.perf_counter() - t) * 1000)
                    first.setdefault(k, lat[-1])
                else:
                    failed[0] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[one() for _ in range(n)])
    wall = time.perf_counter() - t0
    return {
        "clients": n,
        "requests": len(lat),
        "failed": failed[0],
        "seconds": round(wall, 2),
        "requests_per_s": round(len(lat) / wall, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat else None,
        "first_ms": [first[k] for k in sorted(first)],
    }


def in_process(folder, reviews, singles, bs, int8, cores):
    """The same model in this process: batch throughput, the best of one batch at a time on every core and
    `cores` batches at once on one thread each (TextClassifier.predict's workers), and the single-review p50."""
    from ulmfit.inference import TextClassifier

    clf = TextClassifier.load(folder, int8=int8)
    clf.predict(reviews[:bs])  # warm-up
    rates = {w: measure_batch(clf, reviews, bs, w)[1]["reviews_per_s"] for w in sorted({1, cores})}  # cold cache
    lat = []
    for s in singles:
        t = time.perf_counter()
        clf.predict([s])
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "reviews": len(reviews),
        "reviews_per_s": max(rates.values()),
        "reviews_per_s_by_workers": rates,
        "single_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "n_single": len(lat),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", nargs="?", metavar="DIR", help="a classifier folder (default: an untrained one)")
    p.add_argument("--source", default="../shared/data/aclImdb_v1.tar.gz", help="the aclImdb tarball")
    p.add_argument("--seconds", type=float, default=60, help="seconds per client count (default 60)")
    p.add_argument("--clients", default="1,8,64", help="comma-separated client counts (default 1,8,64)")
    p.add_argument("--reviews", type=int, default=1000, help="test reviews the clients cycle through (default 1000)")
    p.add_argument(
        "--single",
        type=int,
        default=200,
        help="single-review calls compared, in process and at one client: the first N reviews (default 200)",
    )
    p.add_argument("--bs", type=int, default=64, help="documents per batch, server and in-process (default 64)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="the server's torch threads per worker (default: its "
        "own, all cores / workers); the in-process figure always uses all cores",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the server's inference workers (default: its own, one per core up to 4)",
    )
    p.add_argument("--batch-ms", type=float, default=None, help="the server's batching window (default: its own)")
    p.add_argument("--int8", action="store_true", help="int8 recurrent layers, both sides")
    p.add_argument("--vocab-docs", type=int, default=25000, help="train reviews to count the vocab from (no DIR)")
    p.add_argument(
        "--preset",
        default="cpu",
        help="model size of the untrained classifier (no DIR; default cpu: 128/384/3, the shipped en-qrnn's)",
    )
    p.add_argument("--arch", default="qrnn", help="its encoder (no DIR; default qrnn, the shipped models')")
    a = p.parse_args(argv)

    import torch

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)  # the in-process figure: the best one process does with every core
    reviews, _ = read_reviews(a.source, "test", a.reviews)
    singles = reviews[: a.single]
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.model_dir
        if not folder:
            from ulmfit.artifacts import save_classifier

            clf = untrained_classifier(a.source, a.vocab_docs, a.preset, a.arch)
            folder = os.path.join(tmp, "clas")
            save_classifier(folder, clf.model, clf.config, clf.encoder)
        base = in_process(folder, reviews, singles, a.bs, a.int8, cores)
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "ulmfit",
            "serve",
            str(folder),
            "--port",
            str(port),
            "--quiet",
            "--bs",
            str(a.bs),
            "--max-queue",
            str(max(1024, 4 * a.bs)),
        ] + (["--int8"] if a.int8 else [])
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        if a.workers:
            cmd += ["--workers", str(a.workers)]
        if a.batch_ms is not None:
            cmd += ["--batch-ms", str(a.batch_ms)]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = [0.0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(server.pid))
                time.sleep(0.2)

        threading.Thread(target=sample, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            for _ in range(1200):
                if server.poll() is not None:
                    raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            limits = httpx.get(url + "/info", timeout=10).json()["limits"]
            rows = []
            for n in a.clients.split(","):
                before = httpx.get(url + "/health", timeout=10).json()
                rows.append(asyncio.run(clients(url, reviews, int(n), a.seconds)))
                after = httpx.get(url + "/health", timeout=10).json()
                batches = after["batches"] - before["batches"]
                rows[-1]["mean_batch"] = round((after["texts"] - before["texts"]) / max(batches, 1), 1)
        finally:
            done.set()
            server.terminate()  # SIGTERM: a graceful stop
            server.wait(60)
    by = {r["clients"]: r for r in rows}
    top = by[max(by)]
    result = {
        "model": a.model_dir or f"untrained {a.preset} preset ({a.arch})",
        "cores": cores,
        "server_workers": limits["workers"],
        "server_threads": limits["torch_threads"],
        "int8": a.int8,
        "bs": a.bs,
        "seconds": a.seconds,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "in_process": base,
        "server": rows,
        "failed": sum(r["failed"] for r in rows),
        "server_peak_rss_mb": round(peak[0], 1),
        f"throughput_ratio_at_{max(by)}": round(top["requests_per_s"] / base["reviews_per_s"], 3),
    }
    if 1 in by and by[1]["p50_ms"] is not None:
        same = by[1]["first_ms"][: len(singles)]  # the lone client's latencies on the same reviews
        result["p50_overhead_ms_at_1"] = round(float(np.percentile(same, 50)) - base["single_p50_ms"], 1)
        result["n_compared_at_1"] = len(same)
    for r in rows:
        del r["first_ms"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
