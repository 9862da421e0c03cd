"""The language model: an encoder of any registered architecture + a decoder tied to its embedding.

Also the pieces of its training objective that are pure functions of the model's outputs:
AR/TAR regularization (Merity et al. 2017) and cutting the hidden state between BPTT windows.
"""

from __future__ import annotations

import torch
from torch import nn

from ..settings import LMOptimSettings
from .config import ModelConfig
from .registry import build_encoder


class LanguageModel(nn.Module):
    """Encoder (cfg.arch) + a linear decoder to vocab logits, its weight tied to the embedding (cfg.tie_weights).

    forward(ids, state=None) -> (logits [bs, seq, vocab], raw, out, state); `out` is what the decoder
    read (after output dropout): AR regularization applies to it, TAR to `raw`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg)
        self.decoder = nn.Linear(cfg.emb_size, cfg.vocab_size, bias=cfg.out_bias)
        if cfg.tie_weights:
            # nn.Module's attributes are typed Tensor | Module; every registered encoder has an nn.Embedding
            self.decoder.weight = self.encoder.embedding.weight  # type: ignore[union-attr, assignment]
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        if cfg.out_bias:
            nn.init.zeros_(self.decoder.bias)

    def forward(self, ids, state=None):
        raw, out, state = self.encoder(ids, state)
        return self.decoder(out), raw, out, state

    def param_groups(self):
        """[layer 0, layer 1, ..., embedding + decoder]: the encoder's groups (embedding first) with the
        embedding's moved last and joined by the decoder: the last group stays trainable when frozen."""
        embedding, *layers = self.encoder.param_groups()
        last = list(embedding)
        last += [p for p in self.decoder.parameters() if not any(p is q for q in last)]
        return [list(g) for g in layers] + [last]


def detach_state(state):
    """Cut the graph between BPTT windows, keeping the values (truncated backprop through time)."""
    if state is None:
        return None
    return [tuple(t.detach() for t in hc) for hc in state]


def ar_tar_loss(raw, out, alpha: float = LMOptimSettings.alpha, beta: float = LMOptimSettings.beta):
    """Activation regularization (alpha * mean(out^2), on the dropped output) plus temporal activation
    regularization (beta * mean((raw[t+1] - raw[t])^2), on the raw output). Batch-first [bs, seq, emb]."""
    loss = raw.new_zeros((), dtype=torch.float32)
    if alpha:
        loss = loss + alpha * out.float().pow(2).mean()
    if beta and raw.shape[1] > 1:
        loss = loss + beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    return loss
