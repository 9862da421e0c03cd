"""AWD-LSTM encoder and language model (Merity et al. 2017, as used by ULMFiT). Batch-first throughout.

These modules know nothing about training: dropouts follow `model.train()` / `model.eval()`,
regularization losses are the pure function `ar_tar_loss`, and the hidden state is passed in and
returned explicitly (no hidden state stored on the module).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .dropout import LockedDropout, WeightDropLSTM, embedding_dropout


class AWDLSTM(nn.Module):
    """Embedding -> n_layers single-layer LSTMs (emb -> n_hid -> ... -> n_hid -> emb).

    forward(ids [bs, seq], state=None) -> (raw, out, state):
      raw   [bs, seq, emb]: the last layer's output before its dropout
      out   [bs, seq, emb]: raw after the last layer's locked dropout (output_p); == raw in eval mode
      state list over layers of (h, c), each [1, bs, that layer's hidden size]; None means zeros.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        sizes = [cfg.emb_size] + [cfg.n_hid] * (cfg.n_layers - 1) + [cfg.emb_size]
        self.rnns = nn.ModuleList(
            WeightDropLSTM(sizes[i], sizes[i + 1], cfg.p("weight_p")) for i in range(cfg.n_layers)
        )
        self.input_dp = LockedDropout(cfg.p("input_p"))
        # Between layers hidden_p; after the last layer output_p (what the LM decoder sees).
        self.layer_dps = nn.ModuleList(
            LockedDropout(cfg.p("hidden_p") if i < cfg.n_layers - 1 else cfg.p("output_p"))
            for i in range(cfg.n_layers)
        )
        self.reset_parameters()

    def reset_parameters(self):
        # fastai's init: small uniform embeddings; the LSTMs keep PyTorch's default init.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embedding.weight[self.cfg.pad_id].zero_()

    def forward(self, ids, state=None):
        x = embedding_dropout(self.embedding.weight, ids, self.cfg.p("embed_p"), self.training, self.cfg.pad_id)
        x = self.input_dp(x)
        new_state = []
        for i, rnn in enumerate(self.rnns):
            raw, s = rnn(x, None if state is None else state[i])
            new_state.append(s)
            x = self.layer_dps[i](raw)
        return raw, x, new_state

    def param_groups(self):
        """[embedding, rnn 0, rnn 1, ...]: input side first (the classifier's layer groups)."""
        return [list(self.embedding.parameters())] + [list(r.parameters()) for r in self.rnns]


class LanguageModel(nn.Module):
    """AWDLSTM + a linear decoder to vocab logits, its weight tied to the embedding (cfg.tie_weights).

    forward(ids, state=None) -> (logits [bs, seq, vocab], raw, out, state); `out` is what the decoder
    read (after output dropout): AR regularization applies to it, TAR to `raw`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = AWDLSTM(cfg)
        self.decoder = nn.Linear(cfg.emb_size, cfg.vocab_size, bias=cfg.out_bias)
        if cfg.tie_weights:
            self.decoder.weight = self.encoder.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        if cfg.out_bias:
            nn.init.zeros_(self.decoder.bias)

    def forward(self, ids, state=None):
        raw, out, state = self.encoder(ids, state)
        return self.decoder(out), raw, out, state

    def param_groups(self):
        """[rnn 0, rnn 1, ..., embedding + decoder]: the last group stays trainable when frozen."""
        last = list(self.encoder.embedding.parameters())
        last += [p for p in self.decoder.parameters() if not any(p is q for q in last)]
        return [list(r.parameters()) for r in self.encoder.rnns] + [last]


def detach_state(state):
    """Cut the graph between BPTT windows, keeping the values (truncated backprop through time)."""
    if state is None:
        return None
    return [tuple(t.detach() for t in hc) for hc in state]


def ar_tar_loss(raw, out, alpha: float = 2.0, beta: float = 1.0):
    """Activation regularization (alpha * mean(out^2), on the dropped output) plus temporal activation
    regularization (beta * mean((raw[t+1] - raw[t])^2), on the raw output). Batch-first [bs, seq, emb]."""
    loss = raw.new_zeros((), dtype=torch.float32)
    if alpha:
        loss = loss + alpha * out.float().pow(2).mean()
    if beta and raw.shape[1] > 1:
        loss = loss + beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    return loss
