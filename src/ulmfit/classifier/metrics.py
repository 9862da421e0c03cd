"""Classification metrics from a confusion matrix; reports as JSON + PNG.

The training loop sums scalar metrics over batches, so batches report their confusion matrix as
scalar entries `cm.i.j` (true class i, predicted j); `summarize` rebuilds the matrix.
"""

from __future__ import annotations

import numpy as np

from ..io import atomic_path, write_json


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts: rows are true classes, columns predicted ones."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def cm_to_sums(cm: np.ndarray) -> dict:
    n = cm.shape[0]
    return {f"cm.{i}.{j}": float(cm[i, j]) for i in range(n) for j in range(n) if cm[i, j]}


def cm_from_sums(sums: dict, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for k, v in sums.items():
        if k.startswith("cm."):
            _, i, j = k.split(".")
            cm[int(i), int(j)] = int(round(v))
    return cm


def scores(cm: np.ndarray) -> dict:
    """accuracy, macro-F1 (the mean over classes of 2PR/(P+R); a class never seen nor predicted
    counts as 0) and per-class precision/recall/F1."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    pred, true = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    n = cm.sum()
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "n": int(n),
    }


def multilabel_scores(tp, fp, fn, n_correct_rows, n_rows) -> dict:
    """Multi-label: exact-match accuracy over documents, macro-F1 over labels, per-label precision/recall/F1."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "accuracy": float(n_correct_rows / n_rows) if n_rows else 0.0,
        "macro_f1": float(f1.mean()),
        "precision": (tp / np.maximum(tp + fp, 1)).tolist(),
        "recall": (tp / np.maximum(tp + fn, 1)).tolist(),
        "f1": f1.tolist(),
        "n": int(n_rows),
    }


def write_report(folder, name: str, cm: np.ndarray, classes, extra: dict | None = None) -> dict:
    """Write NAME.json (metrics + confusion matrix) and NAME.png (the matrix as a heat map)."""
    report = {**scores(cm), "classes": list(classes), "confusion_matrix": cm.tolist(), **(extra or {})}
    write_json(f"{folder}/{name}.json", report)
    plot_confusion(
        f"{folder}/{name}.png", cm, classes, f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}"
    )
    return report


def plot_confusion(path, cm, classes, title=""):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(classes)
    size = max(3.5, 0.6 * n + 2)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels=classes, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        hi = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(int(cm[i, j])),
                    ha="center",
                    va="center",
                    color="white" if cm[i, j] > hi / 2 else "black",
                    fontsize=8,
                )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
