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

Batches are tensors or tuples/lists/dicts of tensors; the loop moves them to the device. `state` is
the task's carry between batches (the LM's hidden state, None for the classifier): None at the start
of every epoch and of validation; a nested list/tuple of tensors, saved in checkpoints.

Files in out_dir: log.csv and history.json (one row per epoch), training_curve.png, and
checkpoint.safetensors (model, optimiser, RNG states, task state; its metadata holds the position
as JSON, mirrored in checkpoint.json for people to read).
"""

from __future__ import annotations

import csv
import io
import json
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
from ..io import atomic_path, write_json, write_text
from . import precision
from .optim import freeze_to, group_lrs, make_optimizer, model_groups, set_hyper
from .schedules import make_schedule

CKPT = "checkpoint.safetensors"
CKPT_JSON = "checkpoint.json"
CKPT_FORMAT = "ulmfit-checkpoint-1"


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


# ----------------------------------------------------------------------------------- helpers


def pick_device(cfg) -> torch.device:
    if cfg.device:
        dev = torch.device(cfg.device)
    else:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    return dev


def autocast(device, cfg):
    return precision.autocast(device, cfg.bf16)


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def split_loss(loss):
    """(loss to backpropagate, float to report) from a task's train_step loss."""
    if isinstance(loss, (tuple, list)):
        return loss[0], float(loss[1])
    return loss, float(loss.detach())


def iter_from(batches, start: int):
    if start and hasattr(batches, "iterate"):
        return iter(batches.iterate(start))
    return islice(iter(batches), start, None)


def validate(task, model, device, cfg, interrupt=None):
    """Run the task's validation; returns its summarized metrics, or None when interrupted."""
    model.eval()
    sums, state = {}, None
    with torch.no_grad():
        for batch in task.valid_batches():
            with autocast(device, cfg):
                s, state = task.eval_step(model, to_device(batch, device), state)
            for k, v in s.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if interrupt is not None and interrupt.flag:
                return None
    model.train()
    return task.summarize(sums)


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


def ema(values, beta=0.98):
    """Debiased exponential moving average (the smoothed loss of bars, plots and lr_find)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


# ------------------------------------------------------------------------------ checkpoints


def _flatten(obj, prefix, tensors):
    """A nested list/tuple/dict of tensors -> a JSON structure, tensors stored under `prefix.i`."""
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"tensor": key}
    if isinstance(obj, (list, tuple)):
        return {"list" if isinstance(obj, list) else "tuple": [_flatten(o, prefix, tensors) for o in obj]}
    if isinstance(obj, dict):
        return {"dict": {str(k): _flatten(v, prefix, tensors) for k, v in obj.items()}}
    if isinstance(obj, (int, float, bool, str)):
        return {"value": obj}
    raise TypeError(f"cannot checkpoint a task state of type {type(obj).__name__}")


def _unflatten(spec, tensors, device):
    if spec is None:
        return None
    if "tensor" in spec:
        return tensors[spec["tensor"]].to(device)
    if "list" in spec:
        return [_unflatten(s, tensors, device) for s in spec["list"]]
    if "tuple" in spec:
        return tuple(_unflatten(s, tensors, device) for s in spec["tuple"])
    if "dict" in spec:
        return {k: _unflatten(v, tensors, device) for k, v in spec["dict"].items()}
    return spec["value"]


def _model_tensors(model, tensors):
    """Model state under `model.NAME`; tied tensors stored once, the others named in `aliases`."""
    aliases, seen = {}, {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[f"model.{name}"] = t.detach().cpu().contiguous()
    return aliases


def _optimizer_tensors(opt, tensors):
    sd = opt.state_dict()
    state_meta = {}
    for idx, st in sd["state"].items():
        meta = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{idx}.{k}"] = v.detach().cpu().contiguous()
                meta[k] = "tensor"
            else:
                meta[k] = v
        state_meta[str(idx)] = meta
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return {"state": state_meta, "param_groups": groups}


def _rng_state(tensors):
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def _set_rng_state(meta, tensors):
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(out_dir, model, opt, position, history, step_losses, state, phases, cfg):
    """Write checkpoint.safetensors atomically (everything needed to resume), then checkpoint.json."""
    from safetensors.torch import save_file

    tensors = {}
    meta = {
        "format": CKPT_FORMAT,
        "position": position,
        "phases": [asdict(p) for p in phases],
        "seed": cfg.seed,
        "history": history,
        "aliases": _model_tensors(model, tensors),
        "optimizer": _optimizer_tensors(opt, tensors),
        "rng": _rng_state(tensors),
        "task_state": _flatten(state, "state", tensors),
        "time": time.time(),
    }
    tensors["curve.step_loss"] = torch.tensor(step_losses, dtype=torch.float64)
    with atomic_path(Path(out_dir) / CKPT) as tmp:
        save_file(tensors, str(tmp), metadata={"ulmfit": json.dumps(meta)})
    readable = {k: meta[k] for k in ("format", "position", "phases", "time")}
    readable["config"] = asdict(cfg)
    readable["note"] = "a readable copy; the authoritative one is the metadata of " + CKPT
    write_json(Path(out_dir) / CKPT_JSON, readable)


def load_checkpoint(out_dir, model, opt, device):
    """Load a checkpoint into model and optimiser and restore the RNGs; returns (meta, task state)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(out_dir) / CKPT
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["ulmfit"])
        tensors = load_file(str(path))
    except Exception as e:  # a corrupt or foreign file: say which
        raise UlmfitError(f"cannot read the checkpoint {path}: {e}") from e
    if meta.get("format") != CKPT_FORMAT:
        raise UlmfitError(f"{path} is not an ulmfit training checkpoint")
    sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    for name, target in meta["aliases"].items():
        sd[name] = sd[target]
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise UlmfitError(f"the checkpoint {path} does not fit this model: {e}") from e
    o = meta["optimizer"]
    state = {}
    for idx, st in o["state"].items():
        state[int(idx)] = {k: (tensors[f"opt.{idx}.{k}"] if v == "tensor" else v) for k, v in st.items()}
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in o["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    _set_rng_state(meta["rng"], tensors)
    meta["step_losses"] = tensors["curve.step_loss"].tolist()
    return meta, _unflatten(meta["task_state"], tensors, device)


# ---------------------------------------------------------------------------------- logging


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if step_losses:
        steps = np.arange(1, len(step_losses) + 1)
        ax.plot(steps, step_losses, color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(steps, ema(step_losses), color="tab:blue", label="train loss (smoothed)")
    rows = [r for r in history if r.get("valid_loss") is not None]
    if rows:
        ax.plot([r["step"] for r in rows], [r["valid_loss"] for r in rows], "o-", color="tab:orange",
                label="valid loss")
    for a, b in zip(history, history[1:]):  # phase boundaries (a new lr cycle starts)
        if a["phase"] != b["phase"]:
            ax.axvline(a["step"], color="gray", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _fmt_row(row):
    skip = {"phase", "epoch", "step", "partial"}
    parts = [f"phase {row['phase']} epoch {row['epoch']} step {row['step']}"]
    parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k not in skip]
    return "  ".join(parts) + ("  (cut short)" if row.get("partial") else "")


# ------------------------------------------------------------------------------------- fit


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


def fit(task, phases, cfg: TrainConfig | None = None, out_dir=".", resume=False, on_epoch_end=None):
    """Train `task.model` through `phases`; returns the history (one dict per epoch).

    resume: continue from out_dir's checkpoint if there is one (same phase, epoch, batch, optimiser
    state, RNG states and task state: the result equals an uninterrupted run). Without a checkpoint
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
    device = pick_device(cfg)
    model = task.model.to(device)
    n_groups = len(model_groups(model))
    opt = make_optimizer(model, cfg)

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
        pos, history, step_losses = meta["position"], meta["history"], meta["step_losses"]
        if cfg.progress:
            print(f"resuming from {out_dir / CKPT}: phase {pos['phase'] + 1}, epoch {pos['epoch'] + 1}, "
                  f"batch {pos['batch']}, step {pos['step']}", file=sys.stderr)
        if pos["done"]:
            return history
    else:
        if resume and cfg.progress:
            print(f"no checkpoint in {out_dir}: starting afresh", file=sys.stderr)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

    from tqdm.auto import tqdm

    t_start = time.time()

    def over_budget():
        if cfg.max_steps is not None and pos["step"] >= cfg.max_steps:
            return True
        return cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60

    def checkpoint():
        save_checkpoint(out_dir, model, opt, pos, history, step_losses, state, phases, cfg)

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
                if pos["batch"] == 0 and over_budget():
                    checkpoint()
                    return history
                e, n_e = epoch0 + j, plan[j]
                t_epoch = time.time()
                batches = task.train_batches(e, cfg.seed)
                stopped = False
                bar = tqdm(total=n_e, initial=pos["batch"], disable=not cfg.progress, leave=False,
                           desc=f"phase {p + 1}/{len(phases)} epoch {j + 1}/{len(plan)}", file=sys.stderr)
                model.train()
                it = iter_from(batches, pos["batch"])
                while pos["batch"] < n_e:
                    batch = next(it)
                    factor, beta1 = sched(pos["phase_step"], total)
                    set_hyper(opt, [lr * factor for lr in base_lrs], beta1)
                    batch = to_device(batch, device)
                    with autocast(device, cfg):
                        loss, n, state = task.train_step(model, batch, state)
                    loss, reported = split_loss(loss)
                    if not math.isfinite(reported):
                        raise UlmfitError(f"the training loss became {reported} at step {pos['step'] + 1}: "
                                          "lower the learning rate (see `ulmfit lr-find`)")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.clip:
                        torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], cfg.clip)
                    opt.step()
                    step_losses.append(reported)
                    pos["train_sum"] += reported * float(n)
                    pos["train_n"] += float(n)
                    pos["batch"] += 1
                    pos["step"] += 1
                    pos["phase_step"] += 1
                    bar.update(1)
                    if pos["step"] % 10 == 0 or pos["batch"] == n_e:
                        bar.set_postfix_str(f"loss {ema(step_losses[-200:])[-1]:.4f}", refresh=False)
                    if interrupt.flag:
                        bar.close()
                        checkpoint()
                        print(f"checkpoint saved in {out_dir}; resume to continue", file=sys.stderr)
                        raise KeyboardInterrupt
                    if cfg.ckpt_every and pos["step"] % cfg.ckpt_every == 0 and pos["batch"] < n_e:
                        checkpoint()
                    if pos["batch"] < n_e and over_budget():
                        stopped = True
                        break
                bar.close()
                if stopped:
                    checkpoint()  # before validation: resuming continues this epoch where it stopped
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
                if stopped:
                    row["partial"] = True
                    write_logs(out_dir, history + [row], step_losses, cfg.plot)
                else:
                    history.append(row)
                    pos.update(epoch=j + 1, batch=0, train_sum=0.0, train_n=0.0)
                    state = None
                    if j + 1 == len(plan):
                        pos.update(phase=p + 1, epoch=0, phase_step=0, done=p + 1 == len(phases))
                    checkpoint()
                    write_logs(out_dir, history, step_losses, cfg.plot)
                if cfg.progress:
                    tqdm.write(_fmt_row(row), file=sys.stderr)
                if on_epoch_end is not None:
                    on_epoch_end(model, row)
                if stopped:
                    return history + [row]
    return history
