"""Training checkpoints: everything to resume a run exactly, in one safetensors file.

checkpoint.safetensors holds the model, the optimiser state, the RNG states and the task state
(e.g. the LM's hidden state) as tensors; its metadata holds the position (phase, epoch, batch, step)
and history as JSON, mirrored in checkpoint.json for people to read.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..errors import UlmfitError
from ..io import write_json, write_safetensors

CKPT = "checkpoint.safetensors"
CKPT_JSON = "checkpoint.json"
CKPT_FORMAT = "ulmfit-checkpoint-1"


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
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def _set_rng_state(meta, tensors):
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [
        tensors[k]
        for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(out_dir, model, opt, position, history, step_losses, state, phases, cfg, identity=None):
    """Write checkpoint.safetensors atomically (everything needed to resume), then checkpoint.json."""
    tensors = {}
    meta = {
        "format": CKPT_FORMAT,
        "position": position,
        "phases": [asdict(p) for p in phases],
        "seed": cfg.seed,
        "identity": identity,
        "history": history,
        "aliases": _model_tensors(model, tensors),
        "optimizer": _optimizer_tensors(opt, tensors),
        "rng": _rng_state(tensors),
        "task_state": _flatten(state, "state", tensors),
        "time": time.time(),
    }
    tensors["curve.step_loss"] = torch.tensor(step_losses, dtype=torch.float64)
    write_safetensors(Path(out_dir) / CKPT, tensors, metadata={"ulmfit": json.dumps(meta)})
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
    sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
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
