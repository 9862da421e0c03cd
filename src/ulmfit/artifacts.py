"""Model folders: config.json + model.safetensors + the text encoder's tokenizer.json/vocab.json.

No pickle anywhere: weights are safetensors, everything else JSON. Tied weights (the LM decoder
shares the embedding matrix) are stored once; the alias is recorded in the safetensors metadata and
re-tied on load, so `model.load_state_dict(state_dict)` just works.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UlmfitError
from .io import atomic_dir, read_json, recover_dir, write_json, write_safetensors

if TYPE_CHECKING:  # for annotations only: importing them would import torch
    from .models.classifier import ClassifierSettings
    from .models.config import ModelConfig

CONFIG, WEIGHTS, VOCAB, TOKENIZER = "config.json", "model.safetensors", "vocab.json", "tokenizer.json"
_ALIASES = "ulmfit_aliases"


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _memory_key(t):
    """Equal for two tensors that are views of the same memory with the same layout (tied weights)."""
    return (t.device.type, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


def half_precision(state_dict) -> dict:
    """fp16 copies of a state dict's floating-point tensors; tied weights stay one tensor (stored once)."""
    import torch

    out, made = {}, {}
    for name, t in state_dict.items():
        t = t.detach()
        if not t.is_floating_point():
            out[name] = t
            continue
        key = _memory_key(t)
        if key not in made:
            made[key] = t.to(torch.float16)
        out[name] = made[key]
    return out


def _dedupe(state_dict):
    """Split a state dict into tensors to store (each memory block once) and {alias: stored name}."""
    tensors, aliases, seen = {}, {}, {}
    for name, t in state_dict.items():
        t = t.detach()
        key = _memory_key(t)
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        # Contiguous and not sharing memory with anything else, as safetensors requires.
        tensors[name] = t.to("cpu", copy=True).contiguous()
    return tensors, aliases


def _keep_other_files(old: Path, new: Path):
    """Carry over what else lives in the folder (training logs, checkpoints, a user's hidden files such as
    .git/) into the new version; only the leftovers of interrupted atomic writes (.NAME.*.tmp) are dropped.
    A symbolic link is kept as the link itself, never followed (its target is not copied nor linked to)."""
    if not old.is_dir():
        return
    for entry in old.iterdir():
        dst = new / entry.name
        if dst.exists() or dst.is_symlink() or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), dst)  # relative links still resolve: `new` replaces `old` in place
        elif entry.is_dir():
            shutil.copytree(entry, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, dst)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def save_model(folder, model, config: dict, encoder=None):
    """Write a model folder atomically: config.json, model.safetensors, and `encoder.save(folder)`
    (tokenizer.json + vocab.json). `model` is an nn.Module or a state dict; `config` a JSON-able dict
    such as {"kind": "language_model", "model": ModelConfig(...)} (dataclasses are converted).
    Other files already in the folder (metrics.json, log.csv, ...) are kept."""
    folder = Path(folder)
    state_dict = model.state_dict() if hasattr(model, "state_dict") else dict(model)
    tensors, aliases = _dedupe(state_dict)
    config = _jsonable(config)
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise UlmfitError(f"model config for {folder} is not JSON-serializable: {e}") from None
    with atomic_dir(folder) as tmp:
        write_safetensors(tmp / WEIGHTS, tensors, metadata={"format": "pt", _ALIASES: json.dumps(aliases)})
        write_json(tmp / CONFIG, config)
        if encoder is not None:
            encoder.save(tmp)
        _keep_other_files(folder, tmp)
    return folder


def read_config(folder) -> dict:
    """config.json of a model folder, with errors that name the file."""
    folder = recover_dir(folder)
    if not folder.is_dir():
        raise UlmfitError(f"model folder {folder} does not exist")
    path = folder / CONFIG
    if not path.exists():
        raise UlmfitError(f"{path} is missing: {folder} is not a model folder")
    try:
        config = read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UlmfitError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise UlmfitError(f'{path} has no "model" settings object')
    return config


def load_state_dict(folder) -> dict:
    """The tensors of model.safetensors, on the CPU, with tied weights re-tied (the same tensor)."""
    from safetensors import safe_open

    path = Path(folder) / WEIGHTS
    if not path.exists():
        raise UlmfitError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
        aliases = json.loads(meta.get(_ALIASES, "{}"))
    except Exception as e:  # safetensors raises several types for truncated/garbled files
        raise UlmfitError(f"{path} is not a readable safetensors file ({type(e).__name__}: {e})") from None
    for alias, target in aliases.items():
        if target not in state_dict:
            raise UlmfitError(f"{path}: tied weight {alias} refers to missing tensor {target}")
        state_dict[alias] = state_dict[target]
    for name, t in state_dict.items():  # loading would cast integer weights silently
        if not t.is_floating_point() and not name.endswith("num_batches_tracked"):
            raise UlmfitError(
                f"{path}: tensor {name} is {str(t.dtype).replace('torch.', '')}, not floating point "
                "(model weights are float32 or float16)"
            )
    return state_dict


def load_encoder(folder):
    """The folder's TextEncoder (tokenizer settings + vocab)."""
    folder = Path(folder)
    for name in (TOKENIZER, VOCAB):
        if not (folder / name).exists():
            raise UlmfitError(f"{folder / name} is missing: the model folder cannot encode text")
    from .text.encoder import TextEncoder  # lazy: tokenizer backends are heavy imports

    return TextEncoder.load(folder)


def load_model(folder, with_encoder: bool = True):
    """-> (config dict, state_dict, TextEncoder or None when with_encoder=False)."""
    config = read_config(folder)
    state_dict = load_state_dict(folder)
    return config, state_dict, (load_encoder(folder) if with_encoder else None)


def model_config(config, where: str | None = None):
    """The ModelConfig of a config.json dict (or of its "model" dict, or a ModelConfig itself); errors name
    `where` (the config.json) and the field."""
    from .models.config import ModelConfig

    if isinstance(config, ModelConfig):
        return config
    d = config.get("model", config) if isinstance(config, dict) else None
    if not isinstance(d, dict):
        raise UlmfitError(f"{where + ': ' if where else ''}model config must be a dict with the model settings")
    return ModelConfig.from_dict(d, where)


# ------------------------------------------------------------------ the two kinds of model folder

FOLDER_FORMAT = 1  # config.json["format"]; folders written before it was recorded read as format 1


@dataclasses.dataclass
class LanguageModelConfig:
    """config.json of a language-model folder: the model, its reading direction, how it was trained."""

    model: ModelConfig
    backwards: bool = False
    training: dict = dataclasses.field(default_factory=dict)
    kind = "language_model"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "format": FOLDER_FORMAT,
            "model": self.model.to_dict(),
            "backwards": bool(self.backwards),
            "training": _jsonable(self.training),
        }

    @classmethod
    def from_dict(cls, d: dict, where="config.json") -> "LanguageModelConfig":
        _check_kind(d, cls.kind, where)
        return cls(
            model_config(d, where), _field(d, "backwards", bool, False, where), _field(d, "training", dict, {}, where)
        )


@dataclasses.dataclass
class ClassifierConfig:
    """config.json of a classifier folder: the encoder's model settings, the classifier's, the training."""

    model: ModelConfig
    classifier: ClassifierSettings
    training: dict = dataclasses.field(default_factory=dict)
    kind = "classifier"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "format": FOLDER_FORMAT,
            "model": self.model.to_dict(),
            "classifier": dataclasses.asdict(self.classifier),
            "training": _jsonable(self.training),
        }

    @classmethod
    def from_dict(cls, d: dict, where="config.json") -> "ClassifierConfig":
        from .models.classifier import ClassifierSettings

        _check_kind(d, cls.kind, where)
        if "classifier" not in d:
            raise UlmfitError(f"{where}: field 'classifier' is missing")
        if not isinstance(d["classifier"], dict):
            raise UlmfitError(f"{where}: field 'classifier' must be an object, got {d['classifier']!r}")
        return cls(
            model_config(d, where),
            ClassifierSettings.from_dict(d["classifier"], where=where),
            _field(d, "training", dict, {}, where),
        )


def _field(d, name, tp, default, where):
    """config.json's field `name`, of type `tp` (a missing or null one: `default`), never silently cast."""
    v = d.get(name)
    if v is None:
        return default
    if not isinstance(v, tp):
        raise UlmfitError(
            f"{where}: field {name!r} must be {'true or false' if tp is bool else 'an object'}, got {v!r}"
        )
    return v


def _check_kind(d, kind, where):
    found = d.get("kind", "language_model")
    if found != kind:
        hint = " (train one with `ulmfit train-classifier`)" if kind == "classifier" else ""
        raise UlmfitError(f"{where}: field 'kind' is {found!r}, not {kind!r}{hint}")
    fmt = d.get("format", FOLDER_FORMAT)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise UlmfitError(
            f"{where}: field 'format' must be a whole number from 1 (this ulmfit writes {FOLDER_FORMAT}), got {fmt!r}"
        )
    if fmt > FOLDER_FORMAT:
        raise UlmfitError(
            f"{where}: folder format {d['format']} is newer than this ulmfit reads ({FOLDER_FORMAT}); upgrade ulmfit"
        )


def save_language_model(folder, model, config: LanguageModelConfig, text_encoder=None):
    """A language-model folder: config.json, model.safetensors, the text encoder's tokenizer.json/vocab.json."""
    return save_model(folder, model, config.to_dict(), text_encoder)  # ties found on the device, then copied


def read_language_model_state(folder):
    """-> (LanguageModelConfig, state_dict) of a language-model folder (no model built), the embedding
    checked against the config's vocab_size."""
    folder = Path(folder)
    config, state_dict, _ = load_model(folder, with_encoder=False)
    config = LanguageModelConfig.from_dict(config, where=str(folder / CONFIG))
    emb = state_dict.get("encoder.embedding.weight")
    if emb is not None and emb.shape[0] != config.model.vocab_size:
        raise UlmfitError(
            f"{folder / WEIGHTS}: the embedding has {emb.shape[0]:,} rows, but {folder / CONFIG}'s "
            f"field 'model.vocab_size' is {config.model.vocab_size:,}"
        )
    return config, state_dict


def check_vocab(folder, n_words: int, model):
    """The folder's vocab.json (of `n_words` tokens) has one token per row of the embedding (model: the
    ModelConfig): a longer or shorter one would map words to other words' rows."""
    if n_words != model.vocab_size:
        raise UlmfitError(
            f"{Path(folder) / VOCAB}: {n_words:,} tokens, but {Path(folder) / CONFIG}'s field "
            f"'model.vocab_size' (the embedding's rows) is {model.vocab_size:,}"
        )


def load_language_model(folder, with_encoder: bool = True):
    """-> (LanguageModel in eval mode with the folder's weights, LanguageModelConfig, TextEncoder or None).
    `folder` may also name a shipped model (see `ulmfit.pretrained`)."""
    from .models.language_model import LanguageModel
    from .pretrained import resolve_lm

    folder = resolve_lm(folder)
    config, state_dict = read_language_model_state(folder)
    encoder = load_encoder(folder) if with_encoder else None
    if encoder is not None:
        check_vocab(folder, len(encoder.vocab), config.model)
    lm = LanguageModel(config.model)
    _load_weights(lm, state_dict, folder)
    return lm.eval(), config, encoder


def save_classifier(folder, model, config: ClassifierConfig, text_encoder):
    """A classifier folder: config.json, model.safetensors, tokenizer.json/vocab.json."""
    return save_model(folder, model, config.to_dict(), text_encoder)  # ties found on the device, then copied


def load_classifier(folder, with_encoder: bool = True):
    """-> (SequenceClassifier in eval mode with the folder's weights, ClassifierConfig, TextEncoder or None)."""
    from .models.classifier import build_classifier

    folder = Path(folder)
    config, state_dict, encoder = load_model(folder, with_encoder)
    config = ClassifierConfig.from_dict(config, where=str(folder / CONFIG))
    if encoder is not None:
        check_vocab(folder, len(encoder.vocab), config.model)
    model = build_classifier(config.model, config.classifier)
    _load_weights(model, state_dict, folder)
    return model.eval(), config, encoder


def _load_weights(model, state_dict, folder):
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise UlmfitError(f"{Path(folder) / WEIGHTS} does not fit its config.json: {e}") from None


def build_language_model(config):
    """A fresh (randomly initialized) LanguageModel from config.json's dict or a ModelConfig."""
    from .models.language_model import LanguageModel

    if isinstance(config, dict) and config.get("kind", "language_model") != "language_model":
        raise UlmfitError(f"expected a language model, the config says kind={config.get('kind')!r}")
    return LanguageModel(model_config(config))
