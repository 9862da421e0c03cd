"""Language models shipped with ulmfit, resolved by name wherever a language-model folder is accepted.

Each shipped model is an ordinary language-model folder under this package (config.json, fp16
model.safetensors, vocab.json, tokenizer.json) plus README.md, its model card, and card.json, the
card's figures for `ulmfit models`. `resolve_lm("en-qrnn-fwd")` gives its path; an existing folder
path is returned as it is, so every `--from` takes either.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UlmfitError

HERE = Path(__file__).parent


def shipped_names() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if (p / "config.json").is_file())


def resolve_lm(spec) -> Path:
    """A language-model folder path, or the name of a shipped model -> the folder's path."""
    from ..io import recover_dir

    path = recover_dir(spec)  # a folder whose last save was interrupted mid-swap is put back first
    if path.is_dir():
        return path
    if str(spec) in shipped_names():
        return HERE / str(spec)
    names = ", ".join(shipped_names()) or "none"
    raise UlmfitError(
        f"language-model folder {spec} does not exist, and no shipped model has that name "
        f"(shipped: {names}; `ulmfit models` lists them)"
    )


def describe(name: str) -> dict:
    """What `ulmfit models` shows of a shipped model: its architecture and sizes, and card.json's figures."""
    folder = HERE / name
    config = json.loads((folder / "config.json").read_text())
    card = json.loads((folder / "card.json").read_text()) if (folder / "card.json").exists() else {}
    m = config["model"]
    return {
        "name": name,
        "path": str(folder),
        "arch": m.get("arch", "awd_lstm"),
        "size": f"{m['emb_size']}/{m['n_hid']}/{m['n_layers']}",
        "vocab": m["vocab_size"],
        "backwards": bool(config.get("backwards", False)),
        **card,
    }
