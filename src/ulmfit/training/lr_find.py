"""The learning-rate finder: train briefly with an exponentially growing lr and watch the loss.

Every group gets the same lr during the sweep (no discriminative lrs), with the optimiser settings
of the TrainConfig. The model's weights, its trainable flags and the RNG states are restored
afterwards, so an lr_find before `fit` does not change the training that follows.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import UlmfitError
from ..io import write_json, write_text
from .logs import ema, new_figure, save_figure
from .loop import TrainConfig, autocast, iter_from, pick_device, split_loss, to_device
from .optim import make_optimizer, set_hyper, trial_steps


def suggest_lr(lrs, smoothed) -> dict:
    """Suggestions from a sweep: the lr of the steepest descent of the smoothed loss (per log-lr),
    and a tenth of the lr at the minimum loss."""
    lrs, sm = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    i_min = int(np.nanargmin(sm))
    out = {"min_div10": float(lrs[i_min] / 10)}
    if i_min >= 2:
        slope = np.gradient(sm[: i_min + 1], np.log(lrs[: i_min + 1]))
        out["steepest"] = float(lrs[int(np.argmin(slope))])
    else:  # the loss never fell: nothing to read off the curve but its start
        out["steepest"] = out["min_div10"]
    out["inconclusive"] = i_min < 2
    return out


def _sweep(task, model, cfg: TrainConfig, device, start: float, end: float, steps: int, beta: float, diverge, progress):
    """The sweep itself: up to `steps` training steps, every group at an lr growing exponentially from `start`
    to `end`, stopped where the smoothed loss (EMA `beta`) diverges -> (lrs, losses), one per step run."""
    with trial_steps(model):  # weights, trainable flags and RNGs as they were afterwards
        opt = make_optimizer(model, cfg)
        beta1 = cfg.moms[0] if cfg.schedule == "one_cycle" and cfg.moms else None
        lrs, losses = [], []
        state, epoch, best = None, 0, math.inf
        batches = iter_from(task.train_batches(epoch, cfg.seed), 0)
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, disable=not progress, desc="lr_find", leave=False, file=sys.stderr)
        model.train()
        try:
            for i in range(steps):
                lr = start * (end / start) ** (i / (steps - 1))
                try:
                    batch = next(batches)
                except StopIteration:  # short data: go on into the next epoch
                    epoch, state = epoch + 1, None
                    batches = iter_from(task.train_batches(epoch, cfg.seed), 0)
                    batch = next(batches)
                set_hyper(opt, [lr] * len(opt.param_groups), beta1)
                with autocast(device, cfg):
                    loss, _, state = task.train_step(model, to_device(batch, device), state)
                loss, reported = split_loss(loss)
                lrs.append(lr)
                losses.append(reported)
                bar.update(1)
                smooth = ema(losses, beta)[-1]
                if not math.isfinite(smooth) or (i > 5 and smooth > diverge * best):
                    break
                best = min(best, smooth)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip:
                    torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], cfg.clip)
                opt.step()
        finally:
            bar.close()
    return lrs, losses


def lr_find(
    task,
    cfg: TrainConfig | None = None,
    out_dir=".",
    *,
    start: float,
    end: float,
    steps: int,
    diverge=4.0,
    progress=None,
):
    """Sweep the lr from `start` to `end` over `steps` steps (stopping early when the smoothed loss
    exceeds `diverge` times its best); writes lr_find.csv, lr_find.json and lr_find.png into out_dir
    and returns the suggested lr (steepest descent)."""
    cfg = cfg or TrainConfig()
    if not (0 < start < end) or steps < 2:
        raise UlmfitError("lr_find needs 0 < start < end and at least 2 steps")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = cfg.progress if progress is None else progress
    device = pick_device(cfg)
    model = task.model.to(device)
    # fastai's 0.98 suits its 100-step sweeps; a shorter sweep needs a shorter memory, or the smoothed
    # curve lags the lr by a large part of the sweep and the suggestion lands too far right.
    beta = min(0.98, 1 - 4 / steps)
    lrs, losses = _sweep(task, model, cfg, device, start, end, steps, beta, diverge, progress)

    smoothed = ema(losses, beta)
    # Drop a final non-finite point so suggestions and plots see only real numbers.
    while lrs and not math.isfinite(smoothed[-1]):
        lrs, losses, smoothed = lrs[:-1], losses[:-1], smoothed[:-1]
    if len(lrs) < 2:
        raise UlmfitError("lr_find: the loss diverged at once; try a smaller start lr")
    sugg = suggest_lr(lrs, smoothed)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", "lr", "loss", "smoothed_loss"])
    for i, (lr, loss, s) in enumerate(zip(lrs, losses, smoothed)):
        w.writerow([i, f"{lr:.6g}", f"{loss:.6g}", f"{s:.6g}"])
    write_text(out_dir / "lr_find.csv", buf.getvalue())
    write_json(
        out_dir / "lr_find.json",
        {"suggested": sugg["steepest"], **sugg, "start": start, "end": end, "steps_run": len(lrs)},
    )
    _plot(out_dir / "lr_find.png", lrs, losses, smoothed, sugg)
    if sugg["inconclusive"]:
        print(
            f"warning: lr_find: the smoothed loss was lowest at the start of the sweep, so the suggestion is a "
            f"guess; sweep from a lower start, over more steps, or look at {out_dir / 'lr_find.png'}",
            file=sys.stderr,
        )
    return sugg["steepest"]


def _plot(path, lrs, losses, smoothed, sugg):
    fig, ax = new_figure((7, 4.5))
    ax.plot(lrs, losses, color="tab:blue", alpha=0.3, lw=0.8, label="loss")
    ax.plot(lrs, smoothed, color="tab:blue", label="smoothed loss")
    ax.axvline(sugg["steepest"], color="tab:red", ls="--", label=f"steepest {sugg['steepest']:.2g}")
    ax.axvline(sugg["min_div10"], color="tab:green", ls=":", label=f"min/10 {sugg['min_div10']:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    save_figure(fig, ax, path)
