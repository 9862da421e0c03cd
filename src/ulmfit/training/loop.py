"""The one training loop, for the language model and the classifier alike.

The loop knows nothing of text. A *task* supplies the model, the batches and the loss; the loop
supplies the optimiser (AdamW, one group per model group), per-phase lr schedules, freezing,
discriminative lrs, gradient clipping, bf16 autocast where it pays, metrics, logs, checkpoints and resume.

The task protocol
-----------------
    task.model                               nn.Module with param_groups() (input side first)
    task.train_batches(epoch, seed)          sized iterable of batches, the same for the same arguments;
                                             if it has .iterate(start), that is used to resume at batch
                                             `start` (else the first `start` batches are skipped)
    task.valid_batches()                     iterable of batches
    task.train_step(model, batch, state)     -> (loss, n, state). loss: scalar tensor to backpropagate, or
                                             a pair (loss to backpropagate, loss to report) when they
                                             differ (the LM reports cross entropy without AR/TAR);
                                             n: items in the batch (weights the epoch's mean loss)
    task.eval_step(model, batch, state)      -> (dict of metric sums, state); called under no_grad, eval()
    task.summarize(sums)                     -> dict of metrics; must hold "loss" (logged as valid_loss)
    task.n_tokens(batch)                     -> tokens in a batch (only the speed probe, training.probe)

Batches are tensors or tuples/lists/dicts of tensors; the loop moves them to the device. `state` is
the task's carry between batches (the LM's hidden state, None for the classifier): None at the start
of every epoch and of validation; a nested list/tuple of tensors, saved in checkpoints.

Files in out_dir: log.csv and history.json (one row per epoch), training_curve.png, and
checkpoint.safetensors (model, optimiser, RNG states, task state; its metadata holds the position
as JSON, mirrored in checkpoint.json for people to read).
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from ..errors import UlmfitError
from . import distributed as D
from . import precision
from .checkpoints import CKPT, load_checkpoint, save_checkpoint
from .logs import ema, fmt_row, write_logs
from .optim import freeze_to, group_lrs, make_optimizer, model_groups, set_hyper
from .schedules import make_schedule

# Steps between host syncs in fit: the step losses come back from the device, and the time budget and
# Ctrl-C are checked (on every rank at once). Pulling a loss every step (`.item()`) would make a GPU wait
# for each step to finish before the next is queued.
SYNC_EVERY = 10

@dataclass
class Phase:
    """A stretch of training with one lr cycle: `epochs` epochs at peak lr `lr` (top group).

    freeze_to: groups[:freeze_to] frozen (-1: only the last group trains; 0: everything trains).
    steps: if set, the phase stops after this many steps (its last epoch cut short, then validated);
        its schedule spans exactly these steps.
    schedule, lr_div: override TrainConfig's for this phase.
    """

    epochs: int = 1
    lr: float = 1e-3
    freeze_to: int = 0
    steps: int | None = None
    schedule: str | None = None
    lr_div: float | None = None


@dataclass
class TrainConfig:
    schedule: str = "one_cycle"  # "one_cycle" | "stlr" | "constant"
    lr_div: float = 2.6  # discriminative lrs: group k from the top gets lr / lr_div**k (1: same lr)
    wd: float = 0.01  # decoupled weight decay (AdamW)
    betas: tuple = (0.9, 0.99)  # Adam betas; beta1 is overridden by `moms` under one-cycle
    eps: float = 1e-5
    moms: tuple | None = (0.95, 0.85, 0.95)  # one-cycle beta1: start, middle, end (None: keep betas[0])
    cut_frac: float = 0.1  # STLR: fraction of the steps spent warming up
    ratio: float = 32.0  # STLR: peak lr / lowest lr
    pct_start: float = 0.25  # one-cycle: fraction of the steps spent warming up
    div: float = 25.0  # one-cycle: start lr = lr / div
    div_final: float = 1e5  # one-cycle: final lr = lr / div_final
    clip: float | None = None  # gradient norm clipping (None: off)
    seed: int = 0
    ckpt_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    max_steps: int | None = None  # budget: stop the run at this global step (resumable; lr plan unchanged)
    max_minutes: float | None = None  # budget: stop after this many minutes of this invocation
    device: str | None = None  # None: cuda if available, else cpu
    threads: int | None = None  # CPU threads for torch (None: all cores)
    bf16: bool = True  # bf16 autocast on CUDA, and on CPUs where it is faster (see training.precision)
    progress: bool = True  # tqdm bars and a line per epoch on stderr
    plot: bool = True  # write training_curve.png at each epoch end
    patience: int | None = None  # stop the last phase after this many epochs without a better monitored metric


# ----------------------------------------------------------------------------------- helpers


def pick_device(cfg) -> torch.device:
    if cfg.device:
        dev = torch.device(cfg.device)
    elif torch.cuda.is_available():
        dev = torch.device("cuda", D.local_rank())  # under torchrun: this rank's GPU
    else:
        dev = torch.device("cpu")
    if dev.type == "cpu":
        # ranks on one machine share its cores
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // D.local_world()))
    return dev


def autocast(device, cfg):
    return precision.autocast(device, cfg.bf16)


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        if device.type == "cuda" and batch.device.type == "cpu":
            batch = batch.pin_memory()  # page-locked: the copy below runs asynchronously, no wait for it
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def split_loss(loss):
    """(loss to backpropagate, float to report) from a task's train_step loss."""
    loss, reported = loss_parts(loss)
    return loss, float(reported)


def loss_parts(loss):
    """(loss to backpropagate, detached loss to report) from a task's train_step loss: no host sync."""
    if isinstance(loss, (tuple, list)):
        return loss[0], loss[1].detach()
    return loss, loss.detach()


def iter_from(batches, start: int):
    if start and hasattr(batches, "iterate"):
        return iter(batches.iterate(start))
    return islice(iter(batches), start, None)


def validate(task, model, device, cfg, interrupt=None):
    """Run the task's validation; returns its summarized metrics, or None when interrupted. Under torchrun
    each rank validates its share of every batch's rows and the sums are added up."""
    model.eval()
    sums, state = {}, None
    world, rank = D.world(), D.rank()
    with torch.no_grad():
        for batch in task.valid_batches():
            if world > 1:
                batch = D.shard(batch, rank, world)
                if D.rows(batch) == 0:
                    continue
            with autocast(device, cfg):
                s, state = task.eval_step(model, to_device(batch, device), state)
            for k, v in s.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if world == 1 and interrupt is not None and interrupt.flag:
                return None
    model.train()
    return task.summarize(D.merge_sums(sums))


class _Interrupt:
    """The first Ctrl-C sets a flag the loop checks after each step (so the checkpoint it then writes
    is exact); a second one stops at once."""

    def __init__(self):
        self.flag, self.old = False, None

    def _handler(self, signum, frame):
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to stop now)", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


# ------------------------------------------------------------------------------------- fit


def monitor_of(task) -> tuple[str, str]:
    """(history key, "max" or "min") that early stopping watches: the task's `monitor`, else the valid loss."""
    return getattr(task, "monitor", ("valid_loss", "min"))


def epochs_since_best(history, key: str, mode: str) -> int:
    """Epochs since the first epoch with the best `key` (max or min) in the history."""
    values = [r[key] for r in history if r.get(key) is not None]
    if not values:
        return 0
    best = (max if mode == "max" else min)(values)
    return len(values) - 1 - values.index(best)


def steady_step_s(ticks) -> float | None:
    """Seconds per training step from (step, clock) pairs taken at host syncs: over the later half of the
    epoch's syncs when there are several (the first steps pay for allocation and kernel choice), else over
    all of it; None when no step ran."""
    ticks = [t for i, t in enumerate(ticks) if i == 0 or t[0] != ticks[i - 1][0]]
    if len(ticks) < 2:
        return None
    (s0, t0), (s1, t1) = ticks[len(ticks) // 2 - 1 if len(ticks) > 3 else 0], ticks[-1]
    return round((t1 - t0) / (s1 - s0), 6)


def _phase_plan(task, phase, epoch0, seed):
    """Batches per epoch of a phase (global epochs epoch0...), cut at phase.steps if set."""
    lens, left = [], phase.steps
    for j in range(phase.epochs):
        n = len(task.train_batches(epoch0 + j, seed))
        if left is not None:
            n = min(n, left)
            left -= n
        if n <= 0:
            break
        lens.append(n)
    return lens


def fit(task, phases, cfg: TrainConfig | None = None, out_dir=".", resume=False, on_epoch_end=None, identity=None):
    """Train `task.model` through `phases`; returns the history (one dict per epoch).

    resume: continue from out_dir's checkpoint if there is one (same phase, epoch, batch, optimiser
    state, RNG states and task state: the result equals an uninterrupted run). identity: a JSON-able dict
    of everything else that shapes the run (the stage's settings, the data's fingerprint), stored in the
    checkpoint; resuming with a different one is an error naming the keys that differ. Without a checkpoint
    it starts afresh. on_epoch_end(model, row) is called after each epoch's validation (e.g. to save
    the model folder). A budget stop (max_steps, max_minutes) validates the epoch cut short, logs it
    with partial=True and returns; Ctrl-C saves a checkpoint and raises KeyboardInterrupt.
    """
    cfg = cfg or TrainConfig()
    phases = [p if isinstance(p, Phase) else Phase(**p) for p in phases]
    if not phases:
        raise UlmfitError("nothing to train: no phases")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    D.init_from_env()
    world, rank = D.world(), D.rank()
    main = rank == 0  # only rank 0 writes files, logs and progress bars
    device = pick_device(cfg)
    model = task.model.to(device)
    if world > 1:
        D.broadcast_model(model)
    n_groups = len(model_groups(model))
    opt = make_optimizer(model, cfg)
    progress = cfg.progress and main

    pos = {"phase": 0, "epoch": 0, "batch": 0, "step": 0, "phase_step": 0, "train_sum": 0.0, "train_n": 0.0,
           "done": False}
    history, step_losses, state = [], [], None
    if resume and (out_dir / CKPT).exists():
        # Restore the model first; `load_checkpoint` then restores the optimiser and the RNGs.
        meta, state = load_checkpoint(out_dir, model, opt, device)
        if meta["phases"] != [asdict(p) for p in phases]:
            raise UlmfitError(f"the checkpoint in {out_dir} was made with other training phases "
                              f"({meta['phases']}); resume with the same settings or start afresh")
        if meta["seed"] != cfg.seed:
            raise UlmfitError(f"the checkpoint in {out_dir} was made with seed {meta['seed']}, not {cfg.seed}")
        old = meta.get("identity") or {}
        # a key one side lacks counts as None: a setting added since (default None) does not block a resume
        diff = sorted(k for k in set(old) | set(identity or {}) if old.get(k) != (identity or {}).get(k))
        if identity is not None and meta.get("identity") is not None and diff:
            raise UlmfitError(f"the checkpoint in {out_dir} was made with other settings: "
                              + ", ".join(f"{k} {old.get(k)!r} (now {identity.get(k)!r})" for k in diff)
                              + "; resume with the same settings or start afresh")
        pos, history, step_losses = meta["position"], meta["history"], meta["step_losses"]
        if world > 1:
            # A checkpoint holds the task state (the LM's hidden state) of all rows only when one process
            # wrote it; ranks resuming mid-epoch start it afresh, as at an epoch start.
            state = None
            if rank:  # other ranks' dropout must differ from rank 0's (restored from the checkpoint)
                torch.manual_seed(cfg.seed + 1000003 * rank + pos["step"])
        if progress:
            print(f"resuming from {out_dir / CKPT}: phase {pos['phase'] + 1}, epoch {pos['epoch'] + 1}, "
                  f"batch {pos['batch']}, step {pos['step']}", file=sys.stderr)
        if pos["batch"] == 0 and history and main:
            # At an epoch boundary the weights are those of the last finished epoch, whose checkpoint is
            # written before its logs and on_epoch_end (its model folder, best/): the process may have died
            # in between. Redo that work from the same weights (both are idempotent), so a resumed run's
            # folders equal a clean run's.
            write_logs(out_dir, history, step_losses, cfg.plot)
            if on_epoch_end is not None:
                on_epoch_end(model, history[-1])
        if pos["done"]:
            return history
    else:
        if resume and progress:
            print(f"no checkpoint in {out_dir}: starting afresh", file=sys.stderr)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed + 1000003 * rank)  # rank 0: exactly a single process's seed

    from tqdm.auto import tqdm

    t_start = time.time()
    pending: list = []  # (detached loss tensor, items) of the steps since the last sync
    flags = {"interrupt": False, "time": False}

    def sync():
        """Bring the pending step losses to the host (averaged over ranks, weighted by their items) and
        agree on whether to stop (Ctrl-C on any rank, or the time budget on rank 0's clock)."""
        if pending:
            losses = torch.stack([l.float().reshape(()) for l, _ in pending])
            items = torch.tensor([float(n) for _, n in pending], device=losses.device)
            if world > 1:
                both = D.sum_over_ranks(torch.stack([losses * items, items]))
                losses, items = both[0] / both[1].clamp(min=1e-12), both[1]
            first = pos["step"] - len(pending)
            values, counts = torch.stack([losses, items]).tolist()  # the one host sync
            for i, (v, n) in enumerate(zip(values, counts)):
                if not math.isfinite(v):
                    raise UlmfitError(f"the training loss became {v} at step {first + i + 1}: "
                                      "lower the learning rate (see `ulmfit lr-find`)")
                step_losses.append(v)
                pos["train_sum"] += v * n
                pos["train_n"] += n
            pending.clear()
        if world > 1:
            timed_out = cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60
            flags_t = torch.tensor([float(interrupt.flag), float(timed_out and main)], device=device)
            stop = D.max_over_ranks(flags_t).tolist()
            flags["interrupt"], flags["time"] = stop[0] > 0, stop[1] > 0

    def over_budget():
        if cfg.max_steps is not None and pos["step"] >= cfg.max_steps:
            return True
        if world == 1:  # reading the clock costs nothing; ranks must agree, so they decide at syncs
            return cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60
        return flags["time"]

    def checkpoint():
        sync()
        if main:
            save_checkpoint(out_dir, model, opt, pos, history, step_losses, state if world == 1 else None, phases,
                            cfg, identity)

    with _Interrupt() as interrupt:
        for p in range(pos["phase"], len(phases)):
            phase = phases[p]
            freeze_to(model, phase.freeze_to)
            sched = make_schedule(phase.schedule or cfg.schedule, cfg)
            base_lrs = group_lrs(phase.lr, n_groups, phase.lr_div or cfg.lr_div)
            epoch0 = sum(ph.epochs for ph in phases[:p])
            plan = _phase_plan(task, phase, epoch0, cfg.seed)
            total = sum(plan)
            for j in range(pos["epoch"], len(plan)):
                if pos["batch"] == 0:
                    sync()
                    if over_budget():
                        checkpoint()
                        return history
                e, n_e = epoch0 + j, plan[j]
                t_epoch = time.time()
                ticks = [(pos["step"], time.perf_counter())]  # (step, clock) at host syncs: the steady speed
                batches = task.train_batches(e, cfg.seed)
                stopped = False
                bar = tqdm(total=n_e, initial=pos["batch"], disable=not progress, leave=False,
                           desc=f"phase {p + 1}/{len(phases)} epoch {j + 1}/{len(plan)}", file=sys.stderr)
                model.train()
                it = iter_from(batches, pos["batch"])
                ran = trained = 0  # batches of this epoch seen / trained on (under torchrun a tiny one is skipped)
                while pos["batch"] < n_e:
                    batch = next(it)
                    factor, beta1 = sched(pos["phase_step"], total)
                    set_hyper(opt, [lr * factor for lr in base_lrs], beta1)
                    weight = 1.0
                    if world > 1:
                        n_rows = D.rows(batch)
                        batch = D.shard(batch, rank, world)
                        # this rank's mean loss x its share of the rows x world: the average over ranks is
                        # then the gradient of the whole batch's mean loss
                        weight = D.rows(batch) * world / n_rows
                    skip = world > 1 and n_rows < 2 * world  # too few rows to split (BatchNorm needs 2)
                    if not skip:
                        batch = to_device(batch, device)
                        with autocast(device, cfg):
                            loss, n, state = task.train_step(model, batch, state)
                        loss, reported = loss_parts(loss)
                        opt.zero_grad(set_to_none=True)
                        (loss * weight if weight != 1.0 else loss).backward()
                        if world > 1:
                            D.average_gradients(model)
                        if cfg.clip:
                            torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad],
                                                           cfg.clip)
                        opt.step()
                        pending.append((reported, n))
                        trained += 1
                    pos["batch"] += 1
                    pos["step"] += 1
                    pos["phase_step"] += 1
                    ran += 1
                    bar.update(1)
                    if pos["step"] % SYNC_EVERY == 0 or pos["batch"] == n_e:
                        sync()
                        ticks.append((pos["step"], time.perf_counter()))
                        if step_losses:
                            bar.set_postfix_str(f"loss {ema(step_losses[-200:])[-1]:.4f}", refresh=False)
                    # one process stops at the step Ctrl-C came; ranks at the next sync, together
                    if interrupt.flag if world == 1 else flags["interrupt"]:
                        bar.close()
                        checkpoint()
                        if main:
                            print(f"checkpoint saved in {out_dir}; resume to continue", file=sys.stderr)
                        raise KeyboardInterrupt
                    if cfg.ckpt_every and pos["step"] % cfg.ckpt_every == 0 and pos["batch"] < n_e:
                        checkpoint()
                    if pos["batch"] < n_e and over_budget():
                        stopped = True
                        break
                bar.close()
                if world > 1 and ran and not trained:
                    raise UlmfitError(f"no step of this epoch could be split over {world} ranks: every batch needs "
                                      f"at least 2 rows per rank (raise --bs to {2 * world} or more)")
                if stopped:
                    checkpoint()  # before validation: resuming continues this epoch where it stopped
                else:
                    sync()
                ticks.append((pos["step"], time.perf_counter()))
                if world > 1:
                    D.broadcast_buffers(model)
                metrics = validate(task, model, device, cfg, interrupt)
                if metrics is None:
                    checkpoint()
                    print(f"checkpoint saved in {out_dir}; resume to continue", file=sys.stderr)
                    raise KeyboardInterrupt
                row = {"phase": p + 1, "epoch": e + 1, "step": pos["step"],
                       "train_loss": pos["train_sum"] / max(pos["train_n"], 1e-12)}
                row.update({("valid_loss" if k == "loss" else k): float(v) for k, v in metrics.items()})
                row["lr"] = phase.lr
                row["time"] = round(time.time() - t_epoch, 3)
                row["step_s"] = steady_step_s(ticks)
                if stopped:
                    row["partial"] = True
                    if main:
                        write_logs(out_dir, history + [row], step_losses, cfg.plot)
                else:
                    history.append(row)
                    pos.update(epoch=j + 1, batch=0, train_sum=0.0, train_n=0.0)
                    state = None
                    # early stopping, in the last phase only (the earlier ones unfreeze the model step by step);
                    # decided from the history alone, so every rank and a resumed run decide alike
                    early = (cfg.patience is not None and p + 1 == len(phases) and j + 1 < len(plan)
                             and epochs_since_best(history, *monitor_of(task)) >= cfg.patience)
                    if early:
                        row["early_stop"] = True
                        pos.update(phase=len(phases), epoch=0, phase_step=0, done=True)
                    elif j + 1 == len(plan):
                        pos.update(phase=p + 1, epoch=0, phase_step=0, done=p + 1 == len(phases))
                    checkpoint()
                    if main:
                        write_logs(out_dir, history, step_losses, cfg.plot)
                if progress:
                    tqdm.write(fmt_row(row), file=sys.stderr)
                if on_epoch_end is not None and main:
                    on_epoch_end(model, row)
                D.barrier()  # the other ranks wait for rank 0's files (a resume may read them)
                if stopped:
                    return history + [row]
                if pos["done"]:  # stopped early
                    return history
    return history

