"""AWD-LSTM encoder (Merity et al. 2017, as used by ULMFiT). Batch-first throughout.

It knows nothing about training: dropouts follow `model.train()` / `model.eval()`, and the hidden
state is passed in and returned explicitly (no hidden state stored on the module).
"""

from __future__ import annotations

from .dropout import WeightDropLSTM
from .rnn_encoder import RNNEncoder


class AWDLSTM(RNNEncoder):
    """Embedding -> n_layers single-layer LSTMs (emb -> n_hid -> ... -> n_hid -> emb).

    forward(ids [bs, seq], state=None) -> (raw, out, state): see `RNNEncoder`; state is a list over
    layers of (h, c), each [1, bs, that layer's hidden size]. The LSTMs keep PyTorch's default init.
    """

    def make_layer(self, i, n_in, n_out, weight_p):
        return WeightDropLSTM(n_in, n_out, weight_p)
