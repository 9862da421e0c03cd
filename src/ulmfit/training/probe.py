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


def _second_runs(task, batches, step) -> tuple[float, float]:
    """Every batch through `step` once untimed, then again timed -> (seconds, tokens) of the timed runs."""
    for batch in batches:
        step(batch)
    seconds = tokens = 0.0
    for batch in batches:
        t0 = time.perf_counter()
        step(batch)
        seconds += time.perf_counter() - t0
        tokens += task.n_tokens(batch)
    return seconds, tokens


def measure(task, cfg, train_steps: int = 6, eval_batches: int = 2) -> dict:
    """Seconds per token of a training step (forward, backward, AdamW step, all groups trainable: the
    slowest phase) and of an evaluation step, measured on the task's batches; the model's weights,
    trainability and the RNGs are as they were afterwards.

    Every sampled batch runs twice and only the second run is timed. The first call of a batch shape pays
    for allocation and kernel choice (oneDNN's bf16 primitives most of all): a real run pays that once per
    shape and then reuses it, but LM batches vary in length (variable bptt) and document batches too, so
    timing first calls measured a bf16 CPU 1.2-2.5x slower than its stages then ran (docs/benchmarks.md)."""
    device = pick_device(cfg)
    model = task.model.to(device)
    batches = _sample(task.train_batches(0, cfg.seed), train_steps)
    with trial_steps(model):
        for p in model.parameters():
            p.requires_grad_(True)
        opt = make_optimizer(model, cfg)
        model.train()
        state = None

        def train_step(batch):
            nonlocal state
            with autocast(device, cfg):
                loss, _, state = task.train_step(model, to_device(batch, device), state)
            loss, _ = split_loss(loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:  # as fit does
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()

        train_s, train_tokens = _second_runs(task, batches, train_step)
        model.eval()
        with torch.no_grad():

            def eval_step(batch):
                nonlocal state
                with autocast(device, cfg):
                    _, state = task.eval_step(model, to_device(batch, device), state)

            state = None

            eval_s, eval_tokens = _second_runs(task, _sample(task.valid_batches(), eval_batches), eval_step)
        model.train()
    return {"train_s_per_token": train_s / max(train_tokens, 1.0), "eval_s_per_token": eval_s / max(eval_tokens, 1.0)}
