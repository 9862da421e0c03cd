"""The encoder architectures, by the name stored in `config.json["model"]["arch"]` (fastai's `_model_meta`).

Everything above the encoder (language model, BPT3C classifier, vocab transfer, int8 export) works with
any class here: each follows the `RNNEncoder` contract (`raw, out, state = enc(ids, state)`, state a list
over layers of tuples of [1, bs, dim] tensors, `param_groups()` input side first). A new architecture is
a module with such a class and one line below.
"""

from __future__ import annotations

from .awd_lstm import AWDLSTM
from .qrnn import QRNN

ARCHS = {"awd_lstm": AWDLSTM, "qrnn": QRNN}


def build_encoder(cfg):
    """A fresh encoder of `cfg.arch` (checked when the config was made)."""
    return ARCHS[cfg.arch](cfg)
