"""The three AWD-LSTM dropouts (Merity et al. 2017). All are active in train mode only."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by every time step ("variational" dropout).

    Input is batch-first [bs, seq, dim]: the mask is [bs, 1, dim], so a unit dropped at step t is
    dropped at every step, which regularizes recurrent features better than fresh per-step masks."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * mask

    def extra_repr(self):
        return f"p={self.p}"


def embedding_dropout(weight, ids, p: float, training: bool = True, padding_idx=None):
    """Look `ids` up in `weight`, dropping whole words (embedding rows) with probability `p`.

    A dropped word is zero wherever it occurs in the batch; kept rows are scaled by 1/(1-p).
    The mask is drawn over the vocab and gathered per token, which equals masking the weight matrix
    but never materializes a dropped copy of it (vocab x emb) at every step."""
    emb = F.embedding(ids, weight, padding_idx)
    if not training or p == 0:
        return emb
    keep = weight.new_empty(weight.shape[0]).bernoulli_(1 - p).div_(1 - p)
    return emb * keep[ids].unsqueeze(-1)


class WeightDropLSTM(nn.LSTM):
    """A single-layer, batch-first nn.LSTM with DropConnect on its hidden-to-hidden weights.

    The parameters keep nn.LSTM's names (`weight_hh_l0` is the raw weight), so a state dict loads
    into a plain nn.LSTM. In train mode a dropped copy of weight_hh_l0 is made once per forward and
    handed to the fused LSTM kernel, so the same DropConnect mask holds for every time step."""

    def __init__(self, input_size: int, hidden_size: int, weight_p: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers=1, batch_first=True)
        self.weight_p = float(weight_p)

    def forward(self, x, hx=None):
        if hx is None:
            z = x.new_zeros(1, x.shape[0], self.hidden_size)
            hx = (z, z)
        w_hh = self.weight_hh_l0
        if self.training and self.weight_p > 0:
            w_hh = F.dropout(w_hh, self.weight_p, training=True)
        weights = [self.weight_ih_l0, w_hh, self.bias_ih_l0, self.bias_hh_l0]
        if not x.is_cuda:
            return self._lstm(x, hx, weights)
        with warnings.catch_warnings():
            # cuDNN warns that the dropped weight is not in its flattened buffer; copying it is the point.
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            return self._lstm(x, hx, weights)

    def _lstm(self, x, hx, weights):
        # The kernel nn.LSTM itself calls: (input, hx, weights, has_biases, num_layers, dropout,
        # train, bidirectional, batch_first).
        out, h, c = torch._VF.lstm(x, hx, weights, True, 1, 0.0, self.training, False, True)
        return out, (h, c)

    def extra_repr(self):
        return f"{super().extra_repr()}, weight_p={self.weight_p}"
