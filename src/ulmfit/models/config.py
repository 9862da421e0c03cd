"""Model hyper-parameters: one dataclass, stored as `config.json["model"]` in every model folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import UlmfitError

DROPOUTS = ("embed_p", "input_p", "hidden_p", "weight_p", "output_p")


@dataclass
class ModelConfig:
    """Encoder architecture, sizes and dropouts (the AWD-LSTM recipe's, for the QRNN too). Every dropout is
    multiplied by `drop_mult` (fastai's knob).

    embed_p: whole embedding rows (words) dropped;  input_p: locked dropout on the embeddings;
    hidden_p: locked dropout between LSTM layers;   weight_p: DropConnect on hidden-to-hidden weights;
    output_p: locked dropout on the last layer's output (what the LM decoder sees).
    The last LSTM layer outputs `emb_size` so that the decoder can share the embedding matrix.
    """

    vocab_size: int
    arch: str = "awd_lstm"  # an encoder architecture registered in models.registry
    emb_size: int = 400
    n_hid: int = 1150
    n_layers: int = 3
    pad_id: int = 1
    embed_p: float = 0.02
    input_p: float = 0.25
    hidden_p: float = 0.15
    weight_p: float = 0.2
    output_p: float = 0.1
    tie_weights: bool = True
    out_bias: bool = True
    drop_mult: float = 1.0

    def __post_init__(self):
        from ..archs import ARCHS  # the registered architectures (models.registry keeps it)
        from ..settings import SettingsError, check

        me = "model settings"
        check(self, me)  # every field's type (a hand-edited config.json: "n_hid": "600", "tie_weights": "no")
        if self.arch not in ARCHS:
            raise SettingsError(me, "arch", f"is an unknown model arch {self.arch!r} (choose from: {', '.join(ARCHS)})")
        for name in ("vocab_size", "emb_size", "n_hid", "n_layers"):
            if getattr(self, name) < 1:
                raise SettingsError(me, name, f"must be a positive integer, got {getattr(self, name)!r}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise SettingsError(me, "pad_id", f"is outside the vocab (size {self.vocab_size}), got {self.pad_id}")
        if not self.drop_mult >= 0:
            raise SettingsError(me, "drop_mult", f"must be >= 0, got {self.drop_mult}")
        for name in DROPOUTS:
            if not 0 <= self.p(name) < 1:
                raise SettingsError(
                    me,
                    name,
                    lambda f, name=name: (
                        f"dropout {f(name)} = {getattr(self, name)} x "
                        f"{f('drop_mult')} = {self.drop_mult} must be in [0, 1)"
                    ),
                )

    def p(self, name: str) -> float:
        """The effective dropout `name` (e.g. "hidden_p"): the stored value times drop_mult."""
        return float(getattr(self, name)) * float(self.drop_mult)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str | None = None) -> "ModelConfig":
        """where: the file `d` is config.json["model"] of, named in errors with the field ('model.n_hid')."""
        from ..settings import SettingsError

        at = f"{where}: " if where else ""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UlmfitError(f"{at}unknown model setting(s): {', '.join(unknown)}")
        if "vocab_size" not in d:
            raise UlmfitError(f"{at}model settings lack vocab_size")
        try:
            return cls(**d)
        except SettingsError as e:
            if where is None:
                raise
            raise UlmfitError(at + e.message(lambda f: f"field 'model.{f}'")) from None


# The ULMFiT paper's language model (fastai's awd_lstm_lm_config dropouts).
_PAPER = dict(
    emb_size=400, n_hid=1150, n_layers=3, embed_p=0.02, input_p=0.25, hidden_p=0.15, weight_p=0.2, output_p=0.1
)
PRESETS = {
    "paper": _PAPER,
    # The largest that pretrains on general-en within one CPU session (9.5k tokens/s on 2 cores, QRNN + bf16 +
    # sampled softmax) and ships under 50 MB in fp16 with a 60k vocab: for few-label work, where features matter.
    "medium": {**_PAPER, "emb_size": 256, "n_hid": 1024},
    # Trainable on a CPU: about 3-4x fewer flops per token than `paper`, same dropout recipe.
    "small": {**_PAPER, "emb_size": 200, "n_hid": 600},
    # For `ulmfit run imdb-cpu`: ~2.5x fewer multiply-adds per token than `small` in the LSTMs, so that a
    # 2-core CPU can fine-tune every layer of a classifier on thousands of reviews in minutes.
    "cpu": {**_PAPER, "emb_size": 128, "n_hid": 384},
    # For tests only.
    "tiny": {**_PAPER, "emb_size": 16, "n_hid": 32, "n_layers": 2},
}


def preset(name: str, vocab_size: int, **overrides) -> ModelConfig:
    """The preset `name` of the architecture overrides["arch"] (ModelConfig's default if not given) for a vocab
    of `vocab_size`, with overrides. The built-in architectures share PRESETS."""
    from .registry import get  # here: the registry imports the encoders, which import this module

    arch = overrides.get("arch", ModelConfig.arch)
    table = get(arch).presets
    if name not in table:
        raise UlmfitError(f"unknown model preset {name!r} of arch {arch!r} (choose from: {', '.join(table)})")
    return ModelConfig.from_dict({**table[name], "vocab_size": vocab_size, **overrides})


# fastai's awd_lstm_clas_config dropouts (the built-in architectures'): the classifier regularizes more than the LM.
CLASSIFIER_DROPOUTS = dict(embed_p=0.05, input_p=0.4, hidden_p=0.3, weight_p=0.5, output_p=0.4)


def classifier_dropouts(arch: str) -> dict:
    """The classifier dropouts of `arch` (its ArchSpec's), to use as
    `dataclasses.replace(lm_config, **classifier_dropouts(lm_config.arch))`. For the classifier, output_p is
    the dropout of the head's first layer (on the pooled features)."""
    from .registry import get

    return dict(get(arch).classifier_dropouts)
