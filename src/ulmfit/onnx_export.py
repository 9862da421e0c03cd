"""ONNX export of a classifier, and the onnxruntime backend that runs it (`TextClassifier.load(backend="onnx")`).

An ONNX export is a classifier folder (`TextClassifier.export(out, onnx=True)`) with two graphs more:

  chunk.onnx  one BPT3C chunk step. Inputs: ids [bs, L] int64 (positions start .. start + L - 1 of each document,
              right-padded), start [] int64, lengths [bs] int64 (at least 1), then the encoder state
              state_0, state_1, ... (each [1, bs, dim] float32; zeros before the first chunk). Outputs: the new
              state (new_state_0, ...), then max, sum, last [bs, emb] float32: the chunk's share of concat
              pooling over each document's last max_len positions (`models.classifier.chunk_pool`).
  head.onnx   last, max, sum [bs, emb], count [bs, 1] (positions pooled: min(length, max_len)) -> logits.

config.json["onnx"] says what a runtime needs to drive the chunk loop: the files, the state's names and widths,
`chunk_len` (bptt; `fixed_len`: every ids input must be exactly bptt wide, the last chunk padded with pad ids,
which pooling masks) and `int8` (onnxruntime dynamic quantization of the recurrent layers' matmuls/LSTMs).
A runtime keeps a running max/sum/last per document, feeds chunks until every document has ended (a document
that has ended may leave the batch: its state is not read again), and calls the head once. `OnnxModel` below
does exactly that in numpy; onnxruntime is imported only here, when an export or the backend is used.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UlmfitError
from .models.classifier import chunk_pool

CHUNK, HEAD = "chunk.onnx", "head.onnx"
OPSET = 17
# Measured on a 2-core AVX2 EPYC (docs/benchmarks.md): ORT_ENABLE_ALL's fusions are as fast as or faster than the
# lower levels for both architectures, and threads that sleep rather than spin when out of work (as OMP_WAIT_POLICY
# =PASSIVE for torch) keep a shared machine from slowing down several-fold.
GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"
SPIN = "0"


class ChunkStep(nn.Module):
    """The traceable chunk step: (ids, start, lengths, *state) -> (*new_state, max, sum, last)."""

    def __init__(self, encoder: nn.Module, max_len: int, layout: list[int]):
        super().__init__()
        self.encoder, self.max_len, self.layout = encoder, max_len, layout

    def forward(self, ids, start, lengths, *state):
        st, k = [], 0
        for n in self.layout:  # the flat inputs back into the encoder's list of per-layer tuples
            st.append(tuple(state[k : k + n]))
            k += n
        out, _, new = self.encoder(ids, st)
        first_kept = (lengths - self.max_len).clamp(min=0)
        return (*[t for layer in new for t in layer], *chunk_pool(out.float(), start, lengths, first_kept))


class PooledHead(nn.Module):
    """The pooling head on the running statistics: (last, max, sum, count) -> logits."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, last, mx, total, count):
        return self.head(torch.cat([last, mx, total / count], dim=1))


def write_onnx(model, config, tmp: Path, int8: bool = False) -> dict:
    """Export `model` (a SequenceClassifier) into the folder `tmp` -> the config.json["onnx"] block."""
    from .inference import plain_lstms
    from .models.registry import spec_of

    spec = spec_of(model)
    if spec.onnx is None:
        raise UlmfitError(f"architecture {spec.name!r} does not export to ONNX (its ArchSpec has onnx=None)")
    # A private copy: the exporter may change the modules it traces, and nn.LSTM subclasses become plain ones.
    model = plain_lstms(copy.deepcopy(model)).eval()
    bpt3c = model.encoder
    bs, L = 2, bpt3c.bptt
    ids = torch.full((bs, L), config.model.pad_id, dtype=torch.long)
    with torch.no_grad():
        _, _, st = bpt3c.encoder(ids[:, :1])
    layout = [len(layer) for layer in st]
    state = [torch.zeros_like(t) for layer in st for t in layer]
    names = [f"state_{k}" for k in range(len(state))]
    fixed = spec.onnx == "fixed_len"  # else "any_len": the graph takes chunks of any width
    step = ChunkStep(bpt3c.encoder, bpt3c.max_len, layout).eval()
    lengths = torch.tensor([L, 1])
    batch = {0: "batch"} if fixed else {0: "batch", 1: "steps"}
    emb = config.model.emb_size
    dense = tmp / (".chunk.float.onnx" if int8 else CHUNK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(
            step,
            (ids, torch.tensor(0), lengths, *state),
            str(dense),
            dynamo=False,
            opset_version=OPSET,
            input_names=["ids", "start", "lengths", *names],
            output_names=[f"new_{n}" for n in names] + ["max", "sum", "last"],
            dynamic_axes={
                "ids": batch,
                "lengths": {0: "batch"},
                "max": {0: "batch"},
                "sum": {0: "batch"},
                "last": {0: "batch"},
                **{n: {1: "batch"} for n in names},
                **{f"new_{n}": {1: "batch"} for n in names},
            },
        )
        pools = [torch.zeros(bs, emb) for _ in range(3)]
        torch.onnx.export(
            PooledHead(model.head).eval(),
            (*pools, torch.ones(bs, 1)),
            str(tmp / HEAD),
            dynamo=False,
            opset_version=OPSET,
            input_names=["last", "max", "sum", "count"],
            output_names=["logits"],
            dynamic_axes={k: {0: "batch"} for k in ("last", "max", "sum", "count", "logits")},
        )
    if int8:
        quantize_onnx(dense, tmp / CHUNK)
        dense.unlink()
    return {
        "chunk": CHUNK,
        "head": HEAD,
        "state": [[n, int(t.shape[-1])] for n, t in zip(names, state)],
        "chunk_len": L,
        "fixed_len": fixed,
        "max_len": bpt3c.max_len,
        "emb": emb,
        "pad_id": config.model.pad_id,
        "int8": bool(int8),
        "opset": OPSET,
    }


def quantize_onnx(src: Path, dst: Path):
    """onnxruntime's dynamic int8 quantization of the recurrent layers: LSTM ops (AWD-LSTM) and MatMuls (the
    QRNN's gate layers); the embedding lookup stays float, as in the torch int8 path."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    logging.disable(logging.WARNING)  # its advice to pre-process the graph, on the root logger: not for our users
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["LSTM", "MatMul"], weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def read_spec(folder: Path, config: dict) -> dict:
    """config.json["onnx"], checked: a clear error naming the file and field rather than a failure in the loop."""
    from .io import plain_file_name

    where = folder / "config.json"
    spec = config.get("onnx")
    if not isinstance(spec, dict):
        raise UlmfitError(
            f'{where} has no "onnx" block: {folder} is not an ONNX export (make one with '
            f"`ulmfit export-classifier {folder} OUT --onnx`)"
        )
    for key, tp in (
        ("chunk", str),
        ("head", str),
        ("state", list),
        ("chunk_len", int),
        ("fixed_len", bool),
        ("max_len", int),
        ("emb", int),
        ("pad_id", int),
        ("int8", bool),
    ):
        if not isinstance(spec.get(key), tp):
            raise UlmfitError(f"{where}: field 'onnx.{key}' is missing or not {tp.__name__}")
    for key in ("chunk", "head"):
        name = plain_file_name(spec[key], where, f"onnx.{key}")
        if not (folder / name).is_file():
            raise UlmfitError(f"{folder / name} is missing (config.json's field 'onnx.{key}')")
    return spec


class OnnxModel:
    """An ONNX export run by onnxruntime behind the torch classifier's contract: model(ids, lengths) -> logits.

    threads: onnxruntime's intra-op threads, fixed here in the session options (no per-call change)."""

    def __init__(self, folder, spec: dict, threads: int):
        import onnxruntime as ort  # type: ignore[import-untyped]

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION)
        so.add_session_config_entry("session.intra_op.allow_spinning", SPIN)
        folder = Path(folder)
        try:
            self.chunk = ort.InferenceSession(str(folder / spec["chunk"]), so, providers=["CPUExecutionProvider"])
            self.head = ort.InferenceSession(str(folder / spec["head"]), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable or invalid graphs
            raise UlmfitError(f"{folder}: cannot load the ONNX graphs ({type(e).__name__}: {e})") from None
        self.spec, self.threads = spec, threads
        self.state = [(name, int(dim)) for name, dim in spec["state"]]
        self.inputs = {i.name for i in self.chunk.get_inputs()}  # a state the graph never reads is pruned

    def eval(self):
        return self

    def __call__(self, ids, lengths) -> torch.Tensor:
        ids, host = np.asarray(ids, dtype=np.int64), np.maximum(np.asarray(lengths, dtype=np.int64), 1)
        bs, T = ids.shape
        L, max_len = self.spec["chunk_len"], self.spec["max_len"]
        if self.spec["fixed_len"] and T % L:  # every chunk exactly L wide: pad the last one (pooling masks it)
            ids = np.pad(ids, ((0, 0), (0, L - T % L)), constant_values=self.spec["pad_id"])
        rows = np.arange(bs)  # the documents still in the batch (BPT3C drops those that have ended)
        state = [np.zeros((1, bs, dim), np.float32) for _, dim in self.state]
        mx = np.full((bs, self.spec["emb"]), -np.inf, np.float32)
        total, last = np.zeros_like(mx), np.zeros_like(mx)
        for i in range(0, int(host.max()), L):
            keep = host[rows] > i
            if not keep.all():
                rows, state = rows[keep], [s[:, keep] for s in state]
            feed = {
                "ids": ids[rows, i : i + L],
                "start": np.array(i, dtype=np.int64),
                "lengths": host[rows],
                **{name: s for (name, _), s in zip(self.state, state)},
            }
            out = self.chunk.run(None, {k: v for k, v in feed.items() if k in self.inputs})
            state, (c_max, c_sum, c_last) = out[: len(self.state)], out[len(self.state) :]
            mx[rows] = np.maximum(mx[rows], c_max)
            total[rows] += c_sum
            last[rows] += c_last
        count = np.minimum(host, max_len).astype(np.float32)[:, None]
        (logits,) = self.head.run(None, {"last": last, "max": mx, "sum": total, "count": count})
        return torch.from_numpy(logits)
