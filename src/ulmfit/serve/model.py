"""What the server runs: a classifier folder (+ ensemble members, + a TF-IDF blend) loaded once, thread-safe."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from ..errors import UlmfitError
from ..settings import ServeSettings


class Served:
    """clfs: TextClassifiers whose probabilities are averaged; tfidf (a TfidfModel) blended in with `weight`."""

    def __init__(
        self,
        clfs,
        tfidf=None,
        weight: float | None = None,
        explain_steps: int = ServeSettings.explain_steps,
        bs: int = ServeSettings.bs,
        extra_info: dict | None = None,
    ):
        from ..inference import check_ensemble

        check_ensemble(clfs)
        self.clfs, self.tfidf, self.weight, self.bs = clfs, tfidf, weight, bs
        self.explain_steps = explain_steps
        self.first = clfs[0]
        self.classes, self.multi_label = self.first.classes, self.first.settings.multi_label
        self._info = extra_info or {}

    def predict_proba(self, texts: list) -> np.ndarray:
        """Called on an inference thread: texts -> probabilities [n, n_classes] (length-sorted inside)."""
        probs = []
        for c in self.clfs:
            ids = c.encode(texts)  # the inference threads share each classifier's tokenizer: encode locks it
            probs.append(c.predict_ids(ids, self.bs))
        p = np.mean(probs, axis=0)
        if self.tfidf is not None and self.weight is not None:  # load() refuses a blend without a weight
            from ..tfidf import blend

            q = self.tfidf.predict_proba(texts)
            q = q[:, np.array([self.tfidf.classes.index(c) for c in self.classes])]
            p = blend(p, q, self.weight)
        return p

    def rows(self, probs: np.ndarray) -> list:
        """One prediction per row: {"label", "probability", "probabilities"} ({"labels", "probabilities"})."""
        rows = self.first.labels_of(probs)
        for r, p in zip(rows, probs):
            r["probabilities"] = {c: round(float(v), 6) for c, v in zip(self.classes, p)}
        return rows

    def explain(self, text: str) -> dict:
        from ..explain import explain

        return explain(self.first, text, self.explain_steps)

    def info(self) -> dict:
        return {"classes": self.classes, "multi_label": self.multi_label, **self._info}


def serve_workers(s: ServeSettings) -> int:
    """How many inference workers the server runs (--workers, or one per core up to 4)."""
    from ..inference import default_workers

    return s.workers or default_workers()


def load(folder, s: ServeSettings) -> Served:
    """Load what `ulmfit serve` serves, with torch's threads set once, here, for the whole process."""
    import torch

    from .. import __version__
    from ..inference import TextClassifier, set_threads
    from ..io import read_json

    set_threads(s.threads or max(1, (os.cpu_count() or 1) // serve_workers(s)))
    kw: dict = {"int8": s.int8}
    if s.onnx:
        kw["backend"] = "onnx"  # a folder exported with `export-classifier --onnx`
    clfs = [TextClassifier.load(d, **kw) for d in [folder, *s.ensemble]]
    tfidf = None
    if s.blend:
        from ..tfidf import TfidfModel

        if s.blend_weight is None:
            raise UlmfitError("--blend needs --blend-weight (`ulmfit evaluate --blend` chooses one on validation)")
        if clfs[0].settings.multi_label:
            raise UlmfitError("blending with a TF-IDF baseline (--blend) is for single-label classifiers")
        tfidf = TfidfModel.load(s.blend)
        if sorted(tfidf.classes) != sorted(clfs[0].classes):
            raise UlmfitError(
                f"{Path(s.blend) / 'tfidf.json'}: field 'classes' {tfidf.classes} differs from the "
                f"classifier's {clfs[0].classes}"
            )
    folder = Path(folder)
    card = {}
    for name in ("config.json", "metrics.json"):  # read once here: no request ever names a file
        if (folder / name).is_file():
            card[name.split(".")[0]] = read_json(folder / name)
    if (folder / "README.md").is_file():
        card["model_card"] = (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    import fastapi
    import uvicorn

    info = {
        "model": {
            "folder": folder.name,
            "ensemble": [Path(d).name for d in s.ensemble],
            "int8": clfs[0].int8,
            "backend": "onnx" if s.onnx else "torch",
            "blend": Path(s.blend).name if s.blend else None,
            "blend_weight": s.blend_weight,
            "threshold": clfs[0].settings.threshold,
            **card,
        },
        "limits": {
            "max_texts": s.max_texts,
            "max_chars": s.max_chars,
            "max_body": s.max_body,
            "max_queue": s.max_queue,
            "timeout_s": s.timeout,
            "batch_ms": s.batch_ms,
            "max_batch": s.bs,
            "workers": serve_workers(s),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {
            "ulmfit": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__,
        },
    }
    served = Served(clfs, tfidf, s.blend_weight, s.explain_steps, s.bs, info)
    served.predict_proba([""])  # warm up (and fail now, not on the first request)
    if clfs[0].int8 or s.onnx:
        from ..explain import _float_model

        _float_model(clfs[0])  # /explain's float weights, loaded at start-up rather than on a request
    return served
