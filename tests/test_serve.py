"""`ulmfit serve` (ulmfit.serve): the HTTP API end to end on a tiny classifier trained here, its dynamic batching,
every limit with its status code, graceful shutdown; and TextClassifier's thread safety, which a threaded server
needs (torch's thread count is process-wide)."""

import threading
import types

import numpy as np
import torch

from classifier_helpers import one_thread, tiny_classifier  # noqa: F401 (autouse)

from ulmfit.inference import TextClassifier


def _gated(on_forward):
    """A TextClassifier of a tiny untrained model whose forward first calls on_forward() (to hold a batch)."""
    model = tiny_classifier()
    plain = model.forward
    model.forward = lambda *a, **k: (on_forward(), plain(*a, **k))[1]
    return TextClassifier(model, None, types.SimpleNamespace(classifier=model_settings(),
                                                         model=types.SimpleNamespace(pad_id=1)))


def model_settings():
    from ulmfit.models.classifier import ClassifierSettings

    return ClassifierSettings(classes=["c0", "c1"], bptt=7, max_len=20)


def test_overlapping_multi_worker_predictions_leave_torch_threads_as_they_were():
    # predict_ids(workers > 1) runs its batches on one thread each; two such calls overlapping in a server used to
    # leave torch on 1 thread for good (B saved A's temporary 1 and restored it after A had put the 2 back).
    torch.set_num_threads(2)
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    a = _gated(lambda: (a_inside.set(), b_inside.wait(10)))
    b = _gated(lambda: (b_inside.set(), a_done.wait(10)))
    docs = [np.array([2, 9, 10, 11, 12][: 2 + k % 3]) for k in range(4)]

    def run_a():
        a.predict_ids(docs, bs=2, workers=2)
        a_done.set()

    ta = threading.Thread(target=run_a)
    ta.start()
    assert a_inside.wait(10)
    tb = threading.Thread(target=lambda: b.predict_ids(docs, bs=2, workers=2))
    tb.start()
    ta.join(20)
    tb.join(20)
    assert torch.get_num_threads() == 2


# ------------------------------------------------------------------------------------------------ the API

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from ulmfit.serve.app import create_app  # noqa: E402
from ulmfit.serve.model import load  # noqa: E402
from ulmfit.settings import ServeSettings  # noqa: E402

TEXTS = ["w0 w5 w6 w7 w8 w9 w10 w11 w12", "w1 w3", "w4 w0", "w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w1", "w9"]


@pytest.fixture(scope="module")
def clas(tmp_path_factory):
    from classifier_helpers import train_tiny_classifier

    torch.set_num_threads(1)
    return train_tiny_classifier(tmp_path_factory.mktemp("serve"), n_docs=60, n_test=20) / "clas"


@pytest.fixture(scope="module")
def served(clas):
    return load(clas, ServeSettings(threads=1))


class Recording:
    """The served model, recording the size of every batch it is given; `hold` (an Event) keeps each batch
    waiting until set."""

    def __init__(self, served, hold=None):
        self.served, self.hold, self.sizes, self.started = served, hold, [], threading.Event()

    def predict_proba(self, texts):
        self.sizes.append(len(texts))
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(30)
        return self.served.predict_proba(texts)

    def __getattr__(self, name):
        return getattr(self.served, name)


@contextlib.contextmanager
def running(app):
    """A real uvicorn server for `app` on a free loopback port, in a thread -> (base url, server)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not server.started:
        assert t.is_alive()
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        t.join(30)
        sock.close()


def wait_until(cond):
    for _ in range(3000):
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_predict_returns_labels_and_probabilities_in_input_order(clas, served):
    expect = TextClassifier.load(clas).predict(TEXTS)
    with TestClient(create_app(served, ServeSettings())) as c:
        r = c.post("/predict", json={"texts": TEXTS})
        assert r.status_code == 200
        got = r.json()["predictions"]
        assert [g["label"] for g in got] == [e["label"] for e in expect]
        assert [g["probability"] for g in got] == pytest.approx([e["probability"] for e in expect], abs=1e-6)
        assert all(set(g["probabilities"]) == {"neg", "pos"} for g in got)
        one = c.post("/predict", json={"texts": TEXTS[::-1]}).json()["predictions"]
        assert [g["probability"] for g in one] == pytest.approx([g["probability"] for g in got][::-1], abs=1e-6)
        assert len({round(g["probability"], 6) for g in got}) == len(TEXTS)  # so the order is seen
        assert c.post("/predict", json={"texts": []}).json() == {"predictions": []}
        assert c.get("/health").json()["status"] == "ok"
        info = c.get("/info").json()
        assert info["classes"] == ["neg", "pos"] and info["model"]["config"]["kind"] == "classifier"
        assert info["versions"]["ulmfit"] and info["limits"]["max_texts"] == ServeSettings.max_texts


def test_multi_label_predictions_hold_every_label_over_the_threshold(clas, tmp_path):
    from classifier_helpers import edit_json

    multi = tmp_path / "multi"
    shutil.copytree(clas, multi)
    edit_json(multi / "config.json", **{"classifier.multi_label": True})
    probs = TextClassifier.load(multi).predict_proba(TEXTS)  # sigmoids
    low = np.sort(probs.ravel())
    threshold = float((low[4] + low[5]) / 2)  # a threshold between the texts' label probabilities
    edit_json(multi / "config.json", **{"classifier.threshold": threshold})
    with TestClient(create_app(load(multi, ServeSettings(threads=1)))) as c:
        got = c.post("/predict", json={"texts": TEXTS}).json()["predictions"]
    want = [[c for c, p in zip(["neg", "pos"], row) if p >= threshold] for row in probs]
    assert [g["labels"] for g in got] == want
    assert sum(map(len, want)) == 5  # some labels on, some off
    assert [v for g in got for v in g["probabilities"].values()] == pytest.approx(probs.ravel().tolist(), abs=1e-5)


def test_each_bad_request_is_a_json_error_with_its_status(served):
    s = ServeSettings(max_texts=3, max_chars=20, max_body=300)
    with TestClient(create_app(served, s)) as c:
        def err(resp, status):
            assert resp.status_code == status, resp.text
            return resp.json()["error"]

        e = err(c.post("/predict", content=b'{"texts": ["a",', headers={"content-type": "application/json"}), 422)
        assert e["field"] == "body" and "JSON" in e["message"]
        assert err(c.post("/predict", json={"texts": "one text"}), 422)["field"] == "texts"
        assert err(c.post("/predict", json={"texts": ["a", 3]}), 422)["field"] == "texts[1]"
        assert err(c.post("/predict", json={}), 422)["field"] == "texts"
        assert err(c.post("/predict", json={"texts": ["a"], "text": "b"}), 422)["field"] == "text"
        assert err(c.post("/predict", json=["a"]), 422)["field"] == "body"
        assert err(c.post("/explain", json={"text": None}), 422)["field"] == "text"
        e = err(c.post("/predict", json={"texts": ["a"] * 4}), 413)
        assert e["field"] == "texts" and "more than 3" in e["message"]
        assert err(c.post("/predict", json={"texts": ["a", "b" * 21]}), 413)["field"] == "texts[1]"
        assert err(c.post("/explain", json={"text": "b" * 21}), 413)["field"] == "text"
        big = json.dumps({"texts": ["a" * 10] * 30}).encode()
        e = err(c.post("/predict", content=big, headers={"content-type": "application/json"}), 413)
        assert e["field"] == "body"
        # a chunked body (no Content-Length) is counted while it streams in
        chunks = (big[k : k + 50] for k in range(0, len(big), 50))
        assert err(c.post("/predict", content=chunks, headers={"content-type": "application/json"}), 413)
        assert c.post("/predict", json={"texts": ["w0 w1"]}).status_code == 200  # and the server goes on


def test_concurrent_requests_are_batched_together(served):
    hold = threading.Event()
    rec = Recording(served, hold)
    with running(create_app(rec, ServeSettings(workers=1, batch_ms=1))) as (url, _):
        results = {}

        def ask(k):
            results[k] = httpx.post(url + "/predict", json={"texts": [TEXTS[k % 5]]}, timeout=60)

        first = threading.Thread(target=ask, args=(0,))
        first.start()
        assert rec.started.wait(30)  # the only worker is busy with request 0...
        rest = [threading.Thread(target=ask, args=(k,)) for k in range(1, 9)]
        for t in rest:
            t.start()
        wait_until(lambda: _queued(url) == 8)  # ...while 8 more arrive
        hold.set()
        for t in [first, *rest]:
            t.join(60)
    assert rec.sizes == [1, 8]
    expect = served.rows(served.predict_proba(TEXTS))
    assert all(results[k].json()["predictions"][0]["label"] == expect[k % 5]["label"] for k in range(9))


def _queued(url):
    return httpx.get(url + "/health", timeout=10).json()["queued"]


def test_a_full_queue_is_503_with_retry_after_and_a_slow_result_504(served):
    hold = threading.Event()
    rec = Recording(served, hold)
    with running(create_app(rec, ServeSettings(workers=1, max_queue=2, timeout=20))) as (url, _):
        busy = threading.Thread(target=lambda: httpx.post(url + "/predict", json={"texts": ["w0"]}, timeout=60))
        busy.start()
        assert rec.started.wait(30)
        waiting = threading.Thread(target=lambda: httpx.post(url + "/predict", json={"texts": ["w1", "w2"]},
                                                             timeout=60))
        waiting.start()
        wait_until(lambda: _queued(url) == 2)
        r = httpx.post(url + "/predict", json={"texts": ["w3"]}, timeout=60)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "queue is full" in r.json()["error"]["message"]
        hold.set()
        busy.join(60)
        waiting.join(60)
        assert httpx.post(url + "/predict", json={"texts": ["w3"]}, timeout=60).status_code == 200
    hold = threading.Event()
    rec = Recording(served, hold)
    with TestClient(create_app(rec, ServeSettings(timeout=0.2))) as c:
        r = c.post("/predict", json={"texts": ["w0"]})
        assert r.status_code == 504 and "no result within 0.2 s" in r.json()["error"]["message"]
        hold.set()


def test_shutdown_lets_requests_in_flight_finish(served):
    # SIGTERM in uvicorn is `handle_exit`: no new connections, the requests in flight are answered, then the
    # lifespan ends (the batcher stops after them).
    import signal

    hold = threading.Event()
    rec = Recording(served, hold)
    got = {}
    with running(create_app(rec, ServeSettings())) as (url, server):
        t = threading.Thread(target=lambda: got.update(r=httpx.post(url + "/predict", json={"texts": TEXTS},
                                                                      timeout=60)))
        t.start()
        assert rec.started.wait(30)
        server.handle_exit(signal.SIGTERM, None)
        time.sleep(0.2)  # the server is shutting down, the request still held
        hold.set()
        t.join(60)
    assert got["r"].status_code == 200 and len(got["r"].json()["predictions"]) == len(TEXTS)


def test_a_client_that_disconnects_mid_request_does_not_harm_the_others(served):
    hold = threading.Event()
    rec = Recording(served, hold)
    with running(create_app(rec, ServeSettings(workers=1))) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps({"texts": ["w0 w1"]}).encode()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert rec.started.wait(30)
        s.close()  # gone while its batch runs
        half = socket.create_connection(("127.0.0.1", port))  # and one gone halfway through its body
        half.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100"
                     b"\r\n\r\n{\"texts\": [")
        half.close()
        hold.set()
        r = httpx.post(url + "/predict", json={"texts": TEXTS}, timeout=60)
        assert r.status_code == 200 and len(r.json()["predictions"]) == len(TEXTS)
        assert httpx.get(url + "/health", timeout=10).json()["queued"] == 0


def test_the_load_benchmark_runs(tmp_path):
    from test_benchmarks import run_script
    from test_prepare import make_imdb_tar

    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=12)
    js = run_script("benchmarks/serve_load.py", "--source", tar, "--seconds", "0.5", "--clients", "1,4",
                    "--reviews", "6", "--single", "3", "--bs", "4", "--vocab-docs", "10", "--preset", "tiny",
                    "--threads", "1")
    assert [r["clients"] for r in js["server"]] == [1, 4] and js["failed"] == 0
    assert all(r["requests"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in js["server"])
    assert js["in_process"]["reviews_per_s"] > 0 and js["server_peak_rss_mb"] > 0
    assert "throughput_ratio_at_4" in js and "p50_overhead_ms_at_1" in js and js["n_compared_at_1"] == 3
    assert js["server_workers"] >= 1 and js["server_threads"] == 1


def test_onnx_backend_serves_and_explains(clas, tmp_path):
    out = TextClassifier.load(clas).export(tmp_path / "onnx", onnx=True)
    expect = TextClassifier.load(out, backend="onnx").predict(TEXTS)
    served = load(out, ServeSettings(onnx=True, threads=1, explain_steps=4))
    with TestClient(create_app(served, ServeSettings())) as c:
        got = c.post("/predict", json={"texts": TEXTS}).json()["predictions"]
        assert [g["probability"] for g in got] == pytest.approx([e["probability"] for e in expect], abs=1e-6)
        assert c.get("/info").json()["model"]["backend"] == "onnx"
        r = c.post("/explain", json={"text": "w0 w1"})  # float weights of the folder: ONNX has no gradients
        assert r.status_code == 200 and r.json()["tokens"] == ["w0", "w1"]
