"""What the AWD-LSTM and the QRNN encoders share: embedding, the AWD-LSTM dropouts, layer stacking."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .dropout import LockedDropout, embedding_dropout


class RNNEncoder(nn.Module):
    """Embedding -> n_layers recurrent layers (emb -> n_hid -> ... -> n_hid -> emb), AWD-LSTM dropouts.

    Subclasses give `make_layer(i, n_in, n_out, weight_p)`: a module `layer(x, state) -> (out, state)`.

    forward(ids [bs, seq], state=None) -> (raw, out, state):
      raw   [bs, seq, emb]: the last layer's output before its dropout
      out   [bs, seq, emb]: raw after the last layer's locked dropout (output_p); == raw in eval mode
      state list over layers of tuples of tensors [1, bs, dim] (batch on dim 1); None means zeros.
    The last layer outputs `emb_size` so that a language model's decoder can share the embedding.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.emb_size, padding_idx=cfg.pad_id)
        sizes = [cfg.emb_size] + [cfg.n_hid] * (cfg.n_layers - 1) + [cfg.emb_size]
        self.rnns = nn.ModuleList(
            self.make_layer(i, sizes[i], sizes[i + 1], cfg.p("weight_p")) for i in range(cfg.n_layers)
        )
        self.input_dp = LockedDropout(cfg.p("input_p"))
        # Between layers hidden_p; after the last layer output_p (what the LM decoder sees).
        self.layer_dps = nn.ModuleList(
            LockedDropout(cfg.p("hidden_p") if i < cfg.n_layers - 1 else cfg.p("output_p")) for i in range(cfg.n_layers)
        )
        # fastai's init: small uniform embeddings; the layers keep their own default init.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embedding.weight[cfg.pad_id].zero_()

    def make_layer(self, i: int, n_in: int, n_out: int, weight_p: float) -> nn.Module:
        raise NotImplementedError

    def embed(self, ids):
        """What the first layer reads: the embeddings of ids [bs, seq] after embedding and input dropout."""
        x = embedding_dropout(self.embedding.weight, ids, self.cfg.p("embed_p"), self.training, self.cfg.pad_id)
        return self.input_dp(x)

    def forward(self, ids, state=None, embedded=None):
        """`embedded`: `embed(...)` of these ids already (BPT3C embeds a whole batch once, then runs it in chunks)."""
        x = self.embed(ids) if embedded is None else embedded
        new_state = []
        for i, rnn in enumerate(self.rnns):
            raw, s = rnn(x, None if state is None else state[i])
            new_state.append(s)
            x = self.layer_dps[i](raw)
        return raw, x, new_state

    def param_groups(self):
        """[embedding, layer 0, layer 1, ...]: input side first (the classifier's layer groups)."""
        return [list(self.embedding.parameters())] + [list(r.parameters()) for r in self.rnns]
