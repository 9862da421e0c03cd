"""The encoder architectures: one `ArchSpec` per name stored in `config.json["model"]["arch"]` (fastai's `_model_meta`).

Everything above the encoder (language model, BPT3C classifier, parameter groups, vocab transfer, saving and
loading folders, int8) reads the spec of `cfg.arch`, so a new architecture is an encoder class and one
`register(ArchSpec(...))`, from any module: see "How to add an architecture" in docs/internals.md.

The encoder contract (`RNNEncoder` meets it; subclassing it and giving `make_layer` is the short way):
  cls(cfg: ModelConfig); `.embedding` an nn.Embedding (the LM decoder shares its weight);
  `embed(ids)` -> what the first layer reads; `forward(ids, state=None, embedded=None)` -> (raw, out, state),
  raw and out [bs, seq, emb_size], state a list over layers of tuples of [1, bs, dim] tensors (None: zeros);
  `param_groups()` -> lists of parameters, input side first, [0] the embedding: the classifier's layer groups
  (discriminative lrs, gradual unfreezing) and, with the decoder joined to the embedding's, the LM's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from torch import nn

from .. import archs
from ..errors import UlmfitError
from .awd_lstm import AWDLSTM
from .config import CLASSIFIER_DROPOUTS, DROPOUTS, PRESETS, ModelConfig
from .qrnn import QRNN


@dataclass(frozen=True)
class ArchSpec:
    """What ulmfit needs to know of one encoder architecture.

    name: the `arch` of settings and config.json.  encoder: the class (the contract above).
    presets: preset name -> ModelConfig fields (sizes and the LM dropouts), all but vocab_size and arch.
    classifier_dropouts: the five dropouts (config.DROPOUTS) a classifier replaces the LM's with.
    int8_targets: model -> what int8 dynamic quantization converts in it (module types and/or qualified
      names, torch's `quantize_dynamic` qconfig set); None: the architecture stays float under int8.
    onnx: how the BPT3C chunk step exports to ONNX (`ulmfit.onnx_export`, traced with torch's TorchScript-based
      exporter): "any_len" (the graph takes chunks of any width: the AWD-LSTM, whose layers are ONNX LSTM ops),
      "fixed_len" (the time loop is unrolled at the chunk length: the QRNN's fo-pooling; the runtime pads the last
      chunk), None: no ONNX export.
    """

    name: str
    encoder: type[nn.Module]
    presets: Mapping[str, Mapping] = field(default_factory=lambda: PRESETS)
    classifier_dropouts: Mapping[str, float] = field(default_factory=lambda: CLASSIFIER_DROPOUTS)
    int8_targets: Callable[[nn.Module], set] | None = None
    onnx: str | None = None


def lstm_int8_targets(model: nn.Module) -> set:
    """The LSTMs (`quantize_int8` makes the weight-dropped ones plain nn.LSTMs first)."""
    return {nn.LSTM}


def rnn_linear_int8_targets(model: nn.Module) -> set:
    """The Linear layers inside the encoder's `rnns` (the QRNN's gate layers), by qualified name."""
    return {name for name, m in model.named_modules() if isinstance(m, nn.Linear) and ".rnns." in name}


ONNX_KINDS = ("any_len", "fixed_len", None)
_SPECS: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> None:
    """Make `spec.name` an architecture of settings, model configs and folders (checked here, not at first use)."""
    at = f"architecture {spec.name!r}"
    if not isinstance(spec.name, str) or not spec.name:
        raise UlmfitError(f"an architecture's name must be a non-empty string, got {spec.name!r}")
    if spec.name in _SPECS:
        raise UlmfitError(f"{at} is already registered (unregister it first)")
    if not (isinstance(spec.encoder, type) and issubclass(spec.encoder, nn.Module)):
        raise UlmfitError(f"{at}: encoder must be an nn.Module class, got {spec.encoder!r}")
    if set(spec.classifier_dropouts) != set(DROPOUTS):
        raise UlmfitError(
            f"{at}: classifier_dropouts must give exactly {', '.join(DROPOUTS)}, got "
            f"{', '.join(spec.classifier_dropouts) or 'none'}"
        )
    if spec.onnx not in ONNX_KINDS:
        raise UlmfitError(f"{at}: onnx must be one of {', '.join(map(repr, ONNX_KINDS))}, got {spec.onnx!r}")
    if not spec.presets:
        raise UlmfitError(f"{at} has no presets")
    settable = {f.name for f in fields(ModelConfig)} - {"vocab_size", "arch"}
    for pname, values in spec.presets.items():
        unknown = sorted(set(values) - settable)
        if unknown:
            raise UlmfitError(f"{at}: preset {pname!r} sets unknown model setting(s): {', '.join(unknown)}")
    _SPECS[spec.name] = spec
    archs.ARCHS.add(spec.name)
    for pname in spec.presets:
        archs.PRESETS.add(pname)


def unregister(name: str) -> ArchSpec:
    """Remove an architecture (and the preset names only it had); returns its spec."""
    spec = get(name)
    del _SPECS[name]
    archs.ARCHS.discard(name)
    for pname in spec.presets:
        if not any(pname in other.presets for other in _SPECS.values()):
            archs.PRESETS.discard(pname)
    return spec


def get(name: str) -> ArchSpec:
    if name not in _SPECS:
        raise UlmfitError(f"unknown model arch {name!r} (choose from: {', '.join(_SPECS)})")
    return _SPECS[name]


def names() -> list[str]:
    return list(_SPECS)


def spec_of(model: nn.Module) -> ArchSpec:
    """The spec of the registered encoder inside `model` (a language model, a classifier or an encoder)."""
    by_class = {spec.encoder: spec for spec in _SPECS.values()}
    for m in model.modules():
        if type(m) in by_class:
            return by_class[type(m)]
    raise UlmfitError(f"{type(model).__name__} holds no encoder of a registered architecture ({', '.join(_SPECS)})")


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """A fresh encoder of `cfg.arch`."""
    return get(cfg.arch).encoder(cfg)


register(ArchSpec("awd_lstm", AWDLSTM, int8_targets=lstm_int8_targets, onnx="any_len"))
register(ArchSpec("qrnn", QRNN, int8_targets=rnn_linear_int8_targets, onnx="fixed_len"))
