"""Training logs: history.json and log.csv (a row per epoch), the training-curve plot, smoothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..io import atomic_path, write_json, write_text


def ema(values, beta=0.98):
    """Debiased exponential moving average (the smoothed loss of bars, plots and lr_find)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def new_figure(size=(8, 4.5)):
    """A matplotlib figure drawn off-screen (no display needed), and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_figure(fig, ax, path):
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def write_logs(out_dir, history, step_losses, plot=True):
    out_dir = Path(out_dir)
    write_json(out_dir / "history.json", history)
    cols = []
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(out_dir / "log.csv", buf.getvalue())
    if plot:
        plot_curve(out_dir / "training_curve.png", history, step_losses)


def plot_curve(path, history, step_losses):
    """Train loss per step (raw and smoothed) and valid loss per epoch, against the step."""
    fig, ax = new_figure()
    if step_losses:
        steps = np.arange(1, len(step_losses) + 1)
        ax.plot(steps, step_losses, color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(steps, ema(step_losses), color="tab:blue", label="train loss (smoothed)")
    rows = [r for r in history if r.get("valid_loss") is not None]
    if rows:
        ax.plot(
            [r["step"] for r in rows], [r["valid_loss"] for r in rows], "o-", color="tab:orange", label="valid loss"
        )
    for a, b in zip(history, history[1:]):  # phase boundaries (a new lr cycle starts)
        if a["phase"] != b["phase"]:
            ax.axvline(a["step"], color="gray", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    save_figure(fig, ax, path)


def fmt_row(row):
    skip = {"phase", "epoch", "step", "partial"}
    parts = [f"phase {row['phase']} epoch {row['epoch']} step {row['step']}"]
    parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k not in skip]
    return "  ".join(parts) + ("  (cut short)" if row.get("partial") else "")
