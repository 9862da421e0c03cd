"""The one training loop, for the language model and the classifier alike.

The loop knows nothing of text. A *task* supplies the model, the batches and the loss; the loop
supplies the optimiser (AdamW, one group per model group), per-phase lr schedules, freezing,
discriminative lrs, gradient clipping, bf16 autocast where it pays, metrics, logs, checkpoints and resume.

The task protocol is `ulmfit.training.task.Task` (a typing.Protocol; the LM's is training.lm_task.LMTask).

How `fit` reads: a `_Run` holds the model, optimiser, position and history of one call; `fit` walks the
phases and epochs, and each epoch is `_Run.train_epoch` (its steps, `_Run.step`, with a host sync every
SYNC_EVERY of them, `_Run.sync`) then `_Run.end_epoch` (validation, the history row, the position, the
checkpoint and logs). The other processes under torchrun are behind one object, `_Run.group`
(training.distributed): the loop calls it the same way with one process, where it does nothing.

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
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import settings as S
from ..errors import UlmfitError
from . import distributed as D
from . import precision
from .checkpoints import CKPT, load_checkpoint, save_checkpoint
from .logs import ema, fmt_row, write_logs
from .optim import freeze_to, group_lrs, make_optimizer, model_groups, set_hyper
from .schedules import Schedule, make_schedule
from .task import Task

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
    # the defaults of a language model's stages (ulmfit.settings); each stage passes its own settings' values
    schedule: str = S.default(S.LMOptimSettings, "schedule")  # "one_cycle" | "stlr" | "constant"
    lr_div: float = S.default(S.FinetuneSettings, "lr_div")  # group k from the top gets lr / lr_div**k (1: same lr)
    wd: float = S.default(S.LMOptimSettings, "wd")  # decoupled weight decay (AdamW)
    betas: tuple = S.default(S.LMOptimSettings, "betas")  # Adam betas; beta1 is overridden by `moms` under one-cycle
    eps: float = 1e-5
    moms: tuple | None = S.default(S.LMOptimSettings, "moms")  # one-cycle beta1: start, middle, end (None: betas[0])
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


def validate(task: Task, model, device, cfg, interrupt=None, group=None):
    """Run the task's validation; returns its summarized metrics, or None when interrupted. Under torchrun
    each rank validates its share of every batch's rows and the sums are added up."""
    group = D.group(device) if group is None else group
    model.eval()
    sums: dict[str, float] = {}
    state = None
    with torch.no_grad():
        for batch in task.valid_batches():
            batch = group.shard(batch)
            if batch is None:  # this rank's share of a small batch is empty
                continue
            with autocast(device, cfg):
                s, state = task.eval_step(model, to_device(batch, device), state)
            for k, v in s.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if interrupt is not None and interrupt.flag and group.alone:  # ranks stop together, at syncs
                return None
    model.train()
    return task.summarize(group.merge_sums(sums))


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


def _check_resumable(meta: dict, phases, cfg: TrainConfig, identity, out_dir: Path) -> None:
    """Refuse a checkpoint made with other phases, another seed or other settings (identity)."""
    if meta["phases"] != [asdict(p) for p in phases]:
        raise UlmfitError(
            f"the checkpoint in {out_dir} was made with other training phases "
            f"({meta['phases']}); resume with the same settings or start afresh"
        )
    if meta["seed"] != cfg.seed:
        raise UlmfitError(f"the checkpoint in {out_dir} was made with seed {meta['seed']}, not {cfg.seed}")
    old = meta.get("identity") or {}
    # a key one side lacks counts as None: a setting added since (default None) does not block a resume
    diff = sorted(k for k in set(old) | set(identity or {}) if old.get(k) != (identity or {}).get(k))
    if identity is not None and meta.get("identity") is not None and diff:
        raise UlmfitError(
            f"the checkpoint in {out_dir} was made with other settings: "
            + ", ".join(f"{k} {old.get(k)!r} (now {identity.get(k)!r})" for k in diff)
            + "; resume with the same settings or start afresh"
        )


def fit(
    task: Task, phases, cfg: TrainConfig | None = None, out_dir=".", resume=False, on_epoch_end=None, identity=None
) -> list[dict]:
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
    run = _Run(task, phases, cfg, Path(out_dir), identity, on_epoch_end)
    if resume and (run.out_dir / CKPT).exists():
        run.restore()
        if run.pos["done"]:
            return run.history
    else:
        if resume and run.progress:
            print(f"no checkpoint in {run.out_dir}: starting afresh", file=sys.stderr)
        run.seed()
    run.t_start = time.time()  # the time budget counts from here
    with _Interrupt() as run.interrupt:
        for p in range(run.pos["phase"], len(phases)):
            plan = run.start_phase(p)
            for j in range(run.pos["epoch"], len(plan)):
                if run.pos["batch"] == 0:  # an epoch boundary: the budget may be spent before it starts
                    run.sync()
                    if run.over_budget():
                        run.checkpoint()
                        return run.history
                row = run.epoch(j, plan)
                if row.get("partial"):  # a budget stop cut it short
                    return run.history + [row]
                if run.pos["done"]:  # early stopping
                    return run.history
    return run.history


class _Run:
    """One call of `fit`: the model, optimiser, position, history and pending losses, and the parts of
    training that move them on. `pos` is what a checkpoint stores to resume exactly: phase, epoch and batch
    (within the phase and epoch), the global step, the step within the phase (its lr schedule), the epoch's
    running train-loss sums, and whether the run is done."""

    def __init__(self, task: Task, phases: list[Phase], cfg: TrainConfig, out_dir: Path, identity, on_epoch_end):
        self.task, self.phases, self.cfg, self.out_dir = task, phases, cfg, out_dir
        self.identity, self.on_epoch_end = identity, on_epoch_end
        out_dir.mkdir(parents=True, exist_ok=True)
        D.init_from_env()
        self.device = pick_device(cfg)
        self.group = D.group(self.device)  # the other ranks under torchrun; with one process all no-ops
        self.main = self.group.main  # only rank 0 writes files, logs and progress bars
        self.progress = cfg.progress and self.main
        self.model = task.model.to(self.device)
        self.group.broadcast_model(self.model)
        self.n_groups = len(model_groups(self.model))
        self.opt = make_optimizer(self.model, cfg)
        self.pos: dict[str, Any] = {
            "phase": 0,
            "epoch": 0,
            "batch": 0,
            "step": 0,
            "phase_step": 0,
            "train_sum": 0.0,
            "train_n": 0.0,
            "done": False,
        }
        self.history: list[dict] = []
        self.step_losses: list[float] = []  # every step's reported loss (the training curve)
        self.pending: list = []  # (detached loss tensor, items) of the steps since the last sync
        self.state = None  # the task's carry between batches
        self.interrupt = _Interrupt()  # not armed: fit replaces it with an armed one while training
        self.t_start = 0.0
        # the current phase, set by start_phase
        self.p, self.epoch0, self.total = 0, 0, 0
        self.sched: Schedule
        self.base_lrs: list[float] = []

    # ------------------------------------------------------------------ start: afresh or from a checkpoint

    def seed(self) -> None:
        random.seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        torch.manual_seed(D.rank_seed(self.cfg.seed, self.group.rank))  # rank 0: a single process's seed

    def restore(self) -> None:
        """Continue from out_dir's checkpoint: the model first, then `load_checkpoint` restores the optimiser
        and the RNGs."""
        meta, state = load_checkpoint(self.out_dir, self.model, self.opt, self.device)
        _check_resumable(meta, self.phases, self.cfg, self.identity, self.out_dir)
        self.pos, self.history, self.step_losses = meta["position"], meta["history"], meta["step_losses"]
        self.state = self.group.portable_state(state)
        self.group.reseed_after_resume(self.cfg.seed, self.pos["step"])
        pos = self.pos
        if self.progress:
            print(
                f"resuming from {self.out_dir / CKPT}: phase {pos['phase'] + 1}, epoch {pos['epoch'] + 1}, "
                f"batch {pos['batch']}, step {pos['step']}",
                file=sys.stderr,
            )
        if pos["batch"] == 0 and self.history and self.main:
            # At an epoch boundary the weights are those of the last finished epoch, whose checkpoint is
            # written before its logs and on_epoch_end (its model folder, best/): the process may have died
            # in between. Redo that work from the same weights (both are idempotent), so a resumed run's
            # folders equal a clean run's.
            write_logs(self.out_dir, self.history, self.step_losses, self.cfg.plot)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self.model, self.history[-1])

    def start_phase(self, p: int) -> list[int]:
        """Set up phase p (frozen groups, lr schedule, discriminative lrs); returns its batches per epoch."""
        phase, cfg = self.phases[p], self.cfg
        self.p = p
        freeze_to(self.model, phase.freeze_to)
        self.sched = make_schedule(phase.schedule or cfg.schedule, cfg)
        self.base_lrs = group_lrs(phase.lr, self.n_groups, phase.lr_div or cfg.lr_div)
        self.epoch0 = sum(ph.epochs for ph in self.phases[:p])
        plan = _phase_plan(self.task, phase, self.epoch0, cfg.seed)
        self.total = sum(plan)
        return plan

    # ------------------------------------------------------------------------------ an epoch and its steps

    def epoch(self, j: int, plan: list[int]) -> dict:
        """Epoch j of the current phase, from the position on: its steps, then its validation and row."""
        t0 = time.time()
        stopped, ticks = self.train_epoch(j, plan[j], len(plan))
        return self.end_epoch(j, len(plan), stopped, ticks, t0)

    def train_epoch(self, j: int, n_batches: int, n_epochs: int) -> tuple[bool, list]:
        """The steps of epoch j (n_batches in all) from pos["batch"] to its end; stops early at Ctrl-C
        (a checkpoint, then KeyboardInterrupt) or when the budget is spent. Returns (whether the budget cut
        it short, the (step, clock) pairs at host syncs that give the steady speed)."""
        pos, cfg = self.pos, self.cfg
        ticks = [(pos["step"], time.perf_counter())]
        batches = self.task.train_batches(self.epoch0 + j, cfg.seed)
        bar = tqdm(
            total=n_batches,
            initial=pos["batch"],
            disable=not self.progress,
            leave=False,
            desc=f"phase {self.p + 1}/{len(self.phases)} epoch {j + 1}/{n_epochs}",
            file=sys.stderr,
        )
        self.model.train()
        it = iter_from(batches, pos["batch"])
        ran = trained = 0  # batches of this epoch seen / trained on (under torchrun a tiny one is skipped)
        while pos["batch"] < n_batches:
            trained += self.step(next(it))
            ran += 1
            bar.update(1)
            if pos["step"] % SYNC_EVERY == 0 or pos["batch"] == n_batches:
                self.sync()
                ticks.append((pos["step"], time.perf_counter()))
                if self.step_losses:
                    bar.set_postfix_str(f"loss {ema(self.step_losses[-200:])[-1]:.4f}", refresh=False)
            if self.interrupted():
                bar.close()
                self.stop_interrupted()
            if cfg.ckpt_every and pos["step"] % cfg.ckpt_every == 0 and pos["batch"] < n_batches:
                self.checkpoint()
            if pos["batch"] < n_batches and self.over_budget():
                bar.close()
                return True, ticks
        bar.close()
        if ran and not trained:
            raise UlmfitError(
                f"no step of this epoch could be split over {self.group.world} ranks: every batch "
                f"needs at least 2 rows per rank (raise --bs to {2 * self.group.world} or more)"
            )
        return False, ticks

    def step(self, batch) -> bool:
        """One optimiser step on the batch (this rank's share of it); False when the batch is too small to
        split over the ranks and is skipped. The reported loss stays on the device until the next sync."""
        pos, cfg = self.pos, self.cfg
        factor, beta1 = self.sched(pos["phase_step"], self.total)
        set_hyper(self.opt, [lr * factor for lr in self.base_lrs], beta1)
        share = self.group.train_share(batch)
        if share is not None:
            batch, weight = share
            batch = to_device(batch, self.device)
            with autocast(self.device, cfg):
                loss, n, self.state = self.task.train_step(self.model, batch, self.state)
            loss, reported = loss_parts(loss)
            self.opt.zero_grad(set_to_none=True)
            (loss * weight if weight != 1.0 else loss).backward()
            self.group.average_gradients(self.model)
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_([q for q in self.model.parameters() if q.requires_grad], cfg.clip)
            self.opt.step()
            self.pending.append((reported, n))
        pos["batch"] += 1
        pos["step"] += 1
        pos["phase_step"] += 1
        return share is not None

    # ------------------------------------------------------------------------- host syncs and stopping

    def sync(self) -> None:
        """Bring the pending step losses to the host (averaged over ranks, weighted by their items) and
        agree on whether to stop (Ctrl-C on any rank, or the time budget on rank 0's clock)."""
        if self.pending:
            losses = torch.stack([loss.float().reshape(()) for loss, _ in self.pending])
            items = torch.tensor([float(n) for _, n in self.pending], device=losses.device)
            losses, items = self.group.mean_losses(losses, items)
            first = self.pos["step"] - len(self.pending)
            values, counts = torch.stack([losses, items]).tolist()  # the one host sync
            for i, (v, n) in enumerate(zip(values, counts)):
                if not math.isfinite(v):
                    raise UlmfitError(
                        f"the training loss became {v} at step {first + i + 1}: "
                        "lower the learning rate (see `ulmfit lr-find`)"
                    )
                self.step_losses.append(v)
                self.pos["train_sum"] += v * n
                self.pos["train_n"] += n
            self.pending.clear()
        self._stops(at_sync=True)

    def _stops(self, at_sync: bool = False) -> tuple[bool, bool]:
        """(Ctrl-C, time budget spent). One process acts on its own flag and clock at once; ranks act
        together on what they agreed at the last host sync (rank 0's clock decides the budget)."""
        cfg = self.cfg
        timed_out = cfg.max_minutes is not None and time.time() - self.t_start >= cfg.max_minutes * 60
        return self.group.agree((self.interrupt.flag, timed_out and self.main), at_sync)

    def interrupted(self) -> bool:
        return self._stops()[0]

    def over_budget(self) -> bool:
        if self.cfg.max_steps is not None and self.pos["step"] >= self.cfg.max_steps:
            return True
        return self._stops()[1]

    def checkpoint(self) -> None:
        self.sync()
        if self.main:
            save_checkpoint(
                self.out_dir,
                self.model,
                self.opt,
                self.pos,
                self.history,
                self.step_losses,
                self.group.portable_state(self.state),
                self.phases,
                self.cfg,
                self.identity,
            )

    def stop_interrupted(self):
        """Ctrl-C: save a checkpoint at this exact step, then raise KeyboardInterrupt."""
        self.checkpoint()
        if self.main:
            print(f"checkpoint saved in {self.out_dir}; resume to continue", file=sys.stderr)
        raise KeyboardInterrupt

    # ------------------------------------------------------------------------------------ end of an epoch

    def end_epoch(self, j: int, n_epochs: int, stopped: bool, ticks: list, t0: float) -> dict:
        """Validate epoch j and log its row. A finished epoch joins the history and moves the position on,
        then is checkpointed; one the budget cut short is checkpointed first (resuming continues it) and
        logged with partial=True, outside the history."""
        if stopped:
            self.checkpoint()  # before validation: resuming continues this epoch where it stopped
        else:
            self.sync()
        ticks.append((self.pos["step"], time.perf_counter()))
        self.group.broadcast_buffers(self.model)
        metrics = validate(self.task, self.model, self.device, self.cfg, self.interrupt, self.group)
        if metrics is None:
            self.stop_interrupted()
        row = self.row(j, metrics, ticks, t0)
        if stopped:
            row["partial"] = True
            if self.main:
                write_logs(self.out_dir, self.history + [row], self.step_losses, self.cfg.plot)
        else:
            self.history.append(row)
            self.advance(j, n_epochs, row)
            self.checkpoint()
            if self.main:
                write_logs(self.out_dir, self.history, self.step_losses, self.cfg.plot)
        if self.progress:
            tqdm.write(fmt_row(row), file=sys.stderr)
        if self.on_epoch_end is not None and self.main:
            self.on_epoch_end(self.model, row)
        self.group.barrier()  # the other ranks wait for rank 0's files (a resume may read them)
        return row

    def row(self, j: int, metrics: dict, ticks: list, t0: float) -> dict:
        """The history row of epoch j of the current phase."""
        pos = self.pos
        row: dict[str, Any] = {
            "phase": self.p + 1,
            "epoch": self.epoch0 + j + 1,
            "step": pos["step"],
            "train_loss": pos["train_sum"] / max(pos["train_n"], 1e-12),
        }
        row.update({("valid_loss" if k == "loss" else k): float(v) for k, v in metrics.items()})
        row["lr"] = self.phases[self.p].lr
        row["time"] = round(time.time() - t0, 3)
        row["step_s"] = steady_step_s(ticks)
        return row

    def advance(self, j: int, n_epochs: int, row: dict) -> None:
        """The position after finished epoch j: the next epoch, the next phase, or done (after the last
        phase, or by early stopping, which marks the row)."""
        pos, last_phase = self.pos, self.p + 1 == len(self.phases)
        pos.update(epoch=j + 1, batch=0, train_sum=0.0, train_n=0.0)
        self.state = None
        # early stopping, in the last phase only (the earlier ones unfreeze the model step by step); decided
        # from the history alone, so every rank and a resumed run decide alike
        early = (
            self.cfg.patience is not None
            and last_phase
            and j + 1 < n_epochs
            and epochs_since_best(self.history, *monitor_of(self.task)) >= self.cfg.patience
        )
        if early:
            row["early_stop"] = True
            pos.update(phase=len(self.phases), epoch=0, phase_step=0, done=True)
        elif j + 1 == n_epochs:
            pos.update(phase=self.p + 1, epoch=0, phase_step=0, done=last_phase)
