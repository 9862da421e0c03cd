"""How fast this machine trains and evaluates a task: a few real steps, timed, then everything put back.

`ulmfit run` sizes its stages to a time budget from these figures (`ulmfit.run.budget`). The probe runs
the task's own batches through the same code as `fit` (optimiser step, autocast, threads), so the speed
is that of this machine, this model, this batch shape and whatever else the machine is busy with.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .loop import autocast, pick_device, split_loss, to_device
from .optim import make_optimizer, trial_steps


def _sample(batches, n: int) -> list:
    """n batches spread over an epoch (document batches differ in length; LM batches do not)."""
    if hasattr(batches, "batch") and hasattr(batches, "batches"):  # document batches: pick by index
        picks = np.linspace(0, len(batches.batches) - 1, num=min(n, len(batches.batches))).round().astype(int)
        return [batches.batch(batches.batches[i]) for i in picks]
    out = []
    for b in batches:
        out.append(b)
        if len(out) == n:
            break
    return out


def measure(task, cfg, train_steps: int = 6, warmup: int = 2, eval_batches: int = 2) -> dict:
    """Seconds per token of a training step (forward, backward, AdamW step, all groups trainable: the
    slowest phase) and of an evaluation step, measured on the task's batches; the model's weights,
    trainability and the RNGs are as they were afterwards."""
    device = pick_device(cfg)
    model = task.model.to(device)
    batches = _sample(task.train_batches(0, cfg.seed), warmup + train_steps)
    train_s = train_tokens = eval_s = eval_tokens = 0.0
    with trial_steps(model):
        for p in model.parameters():
            p.requires_grad_(True)
        opt = make_optimizer(model, cfg)
        model.train()
        state = None
        for i, batch in enumerate(batches):
            tokens = task.n_tokens(batch)
            t0 = time.perf_counter()
            with autocast(device, cfg):
                loss, _, state = task.train_step(model, to_device(batch, device), state)
            loss, _ = split_loss(loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= min(warmup, len(batches) - 1):  # the first steps pay for allocation and kernel choice
                train_s += time.perf_counter() - t0
                train_tokens += tokens
        model.eval()
        state = None
        with torch.no_grad():
            for batch in _sample(task.valid_batches(), eval_batches):
                t0 = time.perf_counter()
                with autocast(device, cfg):
                    _, state = task.eval_step(model, to_device(batch, device), state)
                eval_s += time.perf_counter() - t0
                eval_tokens += task.n_tokens(batch)
        model.train()
    return {"train_s_per_token": train_s / max(train_tokens, 1.0), "eval_s_per_token": eval_s / max(eval_tokens, 1.0)}
