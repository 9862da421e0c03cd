"""TextClassifier: a classifier folder -> predictions on raw text, fast on a CPU.

    from ulmfit import TextClassifier
    clf = TextClassifier.load("runs/imdb-clas")          # int8=True: dynamic int8 LSTMs (CPU serving)
    clf.predict(["A wonderful film.", "Dull."])          # [{"label": "pos", "probability": 0.97}, ...]
    clf.predict_proba(texts)                             # np.ndarray [n, n_classes]

Batch prediction sorts the documents by length (little padding; finished documents drop out of the
batch chunk by chunk), then restores the input order. The folder alone is enough: config.json,
model.safetensors, tokenizer.json and vocab.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UlmfitError
from .settings import ExplainSettings, InferenceSettings

CLASSIFIER_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.json", "spm.model")
ONNX_FILES = ("chunk.onnx", "head.onnx")  # what an ONNX export adds (ulmfit.onnx_export)

# torch's CPU thread count is process-wide. predict_ids(workers > 1) drops it to 1 while its batches run (one
# thread each); overlapping calls (a threaded server) share that one drop, counted here, so the last to finish
# restores what was set before the first began, and set_threads meanwhile changes that saved value.
_threads_lock = threading.Lock()
_threads_state = {"inside": 0, "saved": 0}


MAX_DEFAULT_WORKERS = 4  # batches at once when not given: one per thread (or core) up to this many


def default_workers(threads: int | None = None) -> int:
    """Batches predicted at once by default: one per thread (all cores when threads is None), at most 4. On few
    cores the per-step recurrent matmuls of one batch split poorly over threads (docs/benchmarks.md)."""
    import os

    return max(1, min(threads or os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def set_threads(n: int):
    """Set torch's CPU threads (process-wide), also while multi-worker predictions run (they restore n)."""
    with _threads_lock:
        if _threads_state["inside"]:
            _threads_state["saved"] = n
        else:
            torch.set_num_threads(n)


@contextlib.contextmanager
def _one_thread_each():
    with _threads_lock:
        if not _threads_state["inside"]:
            _threads_state["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_state["inside"] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_state["inside"] -= 1
            if not _threads_state["inside"]:
                torch.set_num_threads(_threads_state["saved"])


def plain_lstms(model: nn.Module) -> nn.Module:
    """Swap each LSTM subclass (the AWD-LSTM's weight-dropped ones) for a plain nn.LSTM with the same
    weights: what int8 dynamic quantization recognises. Inference only: weight dropout is gone."""
    for name, child in model.named_children():
        if isinstance(child, nn.LSTM) and type(child) is not nn.LSTM:
            plain = nn.LSTM(
                child.input_size,
                child.hidden_size,
                num_layers=child.num_layers,
                bias=child.bias,
                batch_first=child.batch_first,
                bidirectional=child.bidirectional,
            )
            plain.load_state_dict(child.state_dict())
            setattr(model, name, plain)
        else:
            plain_lstms(child)
    return model


def quantize_int8(model: nn.Module) -> nn.Module:
    """int8 dynamic quantization (weights int8, activations quantized per step) of what the model's encoder
    architecture names (`ArchSpec.int8_targets`: the AWD-LSTM's LSTMs, the QRNN's gate Linears); an
    architecture that names nothing stays float. The head's Linear layers stay float: they are a negligible
    share of the work."""
    from .models.registry import spec_of

    spec = spec_of(model)
    model = model.eval()
    if spec.int8_targets is None:
        return model
    model = plain_lstms(model)
    targets = spec.int8_targets(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notices
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, targets, dtype=torch.qint8)


class TextClassifier:
    """A trained classifier ready to predict: the model, its text encoder and its ClassifierConfig."""

    def __init__(self, model, encoder, config, folder=None):
        self.model, self.encoder, self.config = model.eval(), encoder, config
        self.settings = config.classifier
        self.classes = list(self.settings.classes)
        self.folder = Path(folder) if folder is not None else None
        self.int8 = False
        self.backend = "torch"
        # The tokenizer's chunk cache is not safe for concurrent writers: `encode` holds this, so predict's workers,
        # a server's threads and any caller's own threads may share one classifier (explain holds it too).
        self.encode_lock = threading.Lock()

    @classmethod
    def load(
        cls, folder, int8: bool | None = None, threads: int | None = None, backend: str = "torch"
    ) -> "TextClassifier":
        """Load a classifier folder. int8: None follows the folder's `quantized` setting.
        threads: torch CPU threads to use (default: leave torch's setting).
        backend "onnx": run the folder's ONNX export (`export(out, onnx=True)`) with onnxruntime instead, on
        `threads` intra-op threads (default: torch's count) fixed in its session; int8 as exported."""
        from .artifacts import load_classifier

        if backend == "onnx":
            return cls._load_onnx(folder, int8, threads)
        if backend != "torch":
            raise UlmfitError(f"unknown backend {backend!r} (choose from: torch, onnx)")
        if threads:
            set_threads(threads)
        model, config, encoder = load_classifier(folder)
        clf = cls(model, encoder, config, folder)
        if config.classifier.quantized if int8 is None else int8:
            clf.quantize()
        return clf

    @classmethod
    def _load_onnx(cls, folder, int8, threads) -> "TextClassifier":
        from .artifacts import ClassifierConfig, check_vocab, load_encoder, read_config
        from .onnx_export import OnnxModel, read_spec

        folder = Path(folder)
        d = read_config(folder)
        config = ClassifierConfig.from_dict(d, where=str(folder / "config.json"))
        spec = read_spec(folder, d)
        if int8 is not None and bool(int8) != spec["int8"]:
            want = "int8" if int8 else "float32"
            raise UlmfitError(
                f"{folder}'s ONNX graphs are {'int8' if spec['int8'] else 'float32'}, not {want}: "
                f"export again with `ulmfit export-classifier ... --onnx{' --int8' if int8 else ''}`"
            )
        encoder = load_encoder(folder)
        check_vocab(folder, len(encoder.vocab), config.model)
        clf = cls(OnnxModel(folder, spec, threads or torch.get_num_threads()), encoder, config, folder)
        clf.int8, clf.backend = spec["int8"], "onnx"
        return clf

    def quantize(self):
        """Switch to int8 dynamic quantized LSTMs (in place)."""
        if self.backend == "onnx" and not self.int8:
            raise UlmfitError(
                "an ONNX classifier is quantized when exported: ulmfit export-classifier DIR OUT --onnx --int8"
            )
        if not self.int8:
            self.model = quantize_int8(self.model)
            self.int8 = True
        return self

    def explain(self, text: str, steps: int = ExplainSettings.steps) -> dict:
        """Why `text` got its label: {"label", "probability", "probabilities", "tokens", "scores", ...}, one score
        per token as the user reads it (integrated gradients: `ulmfit.explain`)."""
        from .explain import explain

        return explain(self, text, steps)

    # ------------------------------------------------------------------------------ prediction

    def encode(self, texts) -> list:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts (a single string would be read as a list of characters)")
        texts = list(texts)
        with self.encode_lock:
            return self.encoder.encode(texts)

    def predict_ids(self, docs, bs: int = InferenceSettings.bs, workers: int = 1, progress: bool = False) -> np.ndarray:
        """Token id arrays (each starting with bos) -> probabilities [n, n_classes], in input order.

        workers > 1 runs that many batches at once, each on one thread (torch's intra-op threads are set
        to 1 meanwhile): on a few cores this beats splitting every small per-step matmul across threads.
        progress: a progress bar on stderr (documents done) when there is more than one batch."""
        batches = _batches([len(d) for d in docs], bs)
        return self._predict_batches(batches, lambda idx: [docs[i] for i in idx], len(docs), workers, progress)

    def _predict_batches(self, batches, docs_of, n, workers, progress) -> np.ndarray:
        """Run batches (index arrays into the n documents; docs_of(idx) -> their id arrays) -> probabilities."""
        import sys

        from tqdm.auto import tqdm

        from .batching.documents import pad_collate
        from .text.special import EOS_ID

        probs = np.zeros((n, len(self.classes)), dtype=np.float32)
        if n == 0:
            return probs
        eos = EOS_ID if self.settings.add_eos else None
        pad = self.config.model.pad_id
        bar = tqdm(
            total=n,
            desc="predicting",
            unit="doc",
            file=sys.stderr,
            leave=False,
            disable=not progress or len(batches) < 2,
        )

        def run(idx):
            docs = docs_of(idx)
            with torch.inference_mode():  # grad mode is per thread
                x, lengths = pad_collate(docs, pad, eos, self.settings.backwards)
                logits = self.model(x, lengths).float()
                p = torch.sigmoid(logits) if self.settings.multi_label else torch.softmax(logits, -1)
                probs[idx] = p.numpy()
            bar.update(len(idx))

        workers = min(workers or 1, len(batches))
        try:
            if workers <= 1:
                for idx in batches:
                    run(idx)
            else:
                from concurrent.futures import ThreadPoolExecutor

                with _one_thread_each():
                    with ThreadPoolExecutor(workers) as pool:
                        list(pool.map(run, batches))  # longest batches first, each to the next free worker
        finally:
            bar.close()
        return probs

    def predict_proba(
        self, texts, bs: int = InferenceSettings.bs, workers: int = 1, progress: bool = False
    ) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts (a single string would be read as a list of characters)")
        texts = list(texts)
        if (workers or 1) <= 1 or len(texts) <= bs:
            return self.predict_ids(self.encode(texts), bs, workers, progress)
        # Several workers: each tokenizes its own batch just before running it, so that one batch's tokenizing
        # (Python: one core) overlaps the others' model work instead of preceding all of it (the shipped size
        # spends about a sixth of its time there). Batches are cut by characters, which order like tokens.
        # One batch tokenizes at a time: encode holds the tokenizer's lock.
        batches = _batches([len(t) if isinstance(t, str) else sum(map(len, t)) for t in texts], bs)
        return self._predict_batches(
            batches, lambda idx: self.encode([texts[i] for i in idx]), len(texts), workers, progress
        )

    def labels_of(self, probs: np.ndarray) -> list:
        """Probabilities -> [{"label", "probability"}] (multi-label: [{"labels", "probabilities"}])."""
        out: list[dict] = []
        for p in probs:
            if self.settings.multi_label:
                on = [k for k in range(len(p)) if p[k] >= self.settings.threshold]
                out.append(
                    {
                        "labels": [self.classes[k] for k in on],
                        "probabilities": {c: round(float(v), 6) for c, v in zip(self.classes, p)},
                    }
                )
            else:
                k = int(p.argmax())
                out.append({"label": self.classes[k], "probability": float(p[k])})
        return out

    def predict(self, texts, bs: int = InferenceSettings.bs, workers: int = 1, progress: bool = False) -> list:
        """Raw texts -> one {"label", "probability"} per text, in input order."""
        return self.labels_of(self.predict_proba(texts, bs, workers, progress))

    # -------------------------------------------------------------------------------- export

    def export(self, out, int8: bool = False, onnx: bool = False):
        """Copy the folder's model files (no training files) to `out`; int8 marks it to load quantized.
        Weights stay float32 in the file: quantization happens on load, in a second or two.
        onnx: also write the ONNX graphs that `load(backend="onnx")` and other runtimes run (`ulmfit.onnx_export`);
        with int8 they are quantized by onnxruntime."""
        if self.folder is None:
            raise UlmfitError("this classifier was not loaded from a folder; nothing to export")
        from .io import atomic_dir, recover_dir, write_json

        out = recover_dir(out)
        if out.resolve() == self.folder.resolve():
            raise UlmfitError(f"{out} is the classifier folder itself: export to another folder")
        if out.is_dir():
            foreign = sorted(p.name for p in out.iterdir() if p.name not in CLASSIFIER_FILES + ONNX_FILES)
            if foreign:
                raise UlmfitError(
                    f"{out} holds files an export does not write ({', '.join(foreign[:5])}"
                    f"{', ...' if len(foreign) > 5 else ''}): refusing to replace it; export to a new "
                    "or empty folder, or to an earlier export"
                )
        config = dataclasses.replace(self.config, classifier=dataclasses.replace(self.settings, quantized=bool(int8)))
        with atomic_dir(out) as tmp:
            for name in CLASSIFIER_FILES:
                if (self.folder / name).exists():
                    shutil.copyfile(self.folder / name, tmp / name)
            d = config.to_dict()
            if onnx:
                from .artifacts import load_classifier
                from .onnx_export import write_onnx

                exact = self.backend == "torch" and not self.int8  # else trace the folder's float weights
                d["onnx"] = write_onnx(self.model if exact else load_classifier(self.folder)[0], config, tmp, int8)
            write_json(tmp / "config.json", d)
        return Path(out)


def _batches(lengths, bs: int) -> list:
    """Index arrays of batches of `bs` documents, longest first (little padding)."""
    from .batching.documents import sort_order

    order = sort_order(lengths)
    return [order[s : s + bs] for s in range(0, len(order), bs)]


def check_ensemble(classifiers):
    """Classifiers whose probabilities may be averaged: the same classes in the same order, and all single-label
    (softmax) or all multi-label (sigmoids): a mean of the two kinds is neither."""
    first = classifiers[0]
    for c in classifiers[1:]:
        if c.classes != first.classes:
            raise UlmfitError(
                f"cannot ensemble classifiers with different classes: {first.classes} ({first.folder}) "
                f"vs {c.classes} ({c.folder})"
            )
        if c.settings.multi_label != first.settings.multi_label:
            single, multi = (first, c) if c.settings.multi_label else (c, first)
            raise UlmfitError(
                f"cannot ensemble a single-label classifier ({single.folder}) with a multi-label one "
                f"({multi.folder}): their probabilities mean different things"
            )


def ensemble_proba(
    classifiers, texts, bs: int = InferenceSettings.bs, progress: bool = False, workers: int = 1
) -> np.ndarray:
    """The mean of several classifiers' probabilities (e.g. a forward and a backward model).
    Each classifier tokenizes with its own folder's encoder; they must pass `check_ensemble`."""
    check_ensemble(classifiers)
    return np.mean([c.predict_proba(texts, bs, workers, progress) for c in classifiers], axis=0)
