"""QRNN encoder (Bradbury et al. 2017) in the MultiFiT variant (Eisenschlos et al. 2019). Batch-first.

A QRNN layer computes its three gates for every time step at once with one matrix product over a
window of inputs (2 steps in the first layer, 1 after), and only the cheap element-wise recurrence
("fo-pooling") runs step by step:

    z = tanh(W_z x),  f = sigmoid(W_f x),  o = sigmoid(W_o x)       (x: this and the previous input)
    c_t = f_t * c_{t-1} + (1 - f_t) * z_t,   h_t = o_t * c_t

So most of the work is one large matmul per layer (fast in bf16 on CPUs with AVX512-BF16), instead of
an LSTM's seq-many small ones. The encoder keeps the AWD-LSTM's contract and dropouts (embedding,
input, between-layer and output locked dropout; DropConnect on the gate weights), so everything that
takes an AWD-LSTM encoder (language model, BPT3C classifier, vocab transfer, int8 export) takes this.

State per layer: a tuple of tensors shaped [1, bs, dim] (batch on dim 1, as the LSTM's (h, c)):
(c,) for window 1, (c, last input) for window 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rnn_encoder import RNNEncoder


class ForgetMult(torch.autograd.Function):
    """fo-pooling c_t = f_t * c_{t-1} + (1 - f_t) * z_t over time-major [seq, bs, dim] float32 tensors.

    One fused op (lerp) per step forward and one (addcmul) per step backward; the gradients of z and f
    are then computed for all steps at once."""

    @staticmethod
    def forward(ctx, f, z, c0):
        c = torch.empty_like(z)
        prev = c0
        for t in range(z.shape[0]):
            prev = torch.lerp(z[t], prev, f[t], out=c[t])  # z + f * (prev - z)
        ctx.save_for_backward(f, z, c0, c)
        return c

    @staticmethod
    def backward(ctx, grad_c):
        f, z, c0, c = ctx.saved_tensors
        g = torch.empty_like(grad_c)  # total gradient reaching c_t (direct + through c_{t+1})
        acc = grad_c[-1]
        g[-1] = acc
        for t in range(grad_c.shape[0] - 2, -1, -1):
            acc = torch.addcmul(grad_c[t], f[t + 1], acc, out=g[t])
        grad_f = torch.empty_like(g)  # g_t * (c_{t-1} - z_t), without concatenating c0 to c
        torch.mul(g[0], c0 - z[0], out=grad_f[0])
        torch.mul(g[1:], c[:-1] - z[1:], out=grad_f[1:])
        return grad_f, torch.addcmul(g, g, f, value=-1), f[0] * g[0]  # dz = g * (1 - f)


def forget_mult_steps(f, z, c0):
    """ForgetMult's forward as plain ops, no writes into a preallocated output: what the ONNX exporter can
    trace (it unrolls the loop over the chunk's steps). c_t = f_t * c_{t-1} + (1 - f_t) * z_t with the second
    term computed for all steps at once: two ops per step (torch.lerp exports as ten, with a Where; onnxruntime
    spent a fifth of the chunk's time on them)."""
    a = (1 - f) * z
    prev, cs = c0, []
    for t in range(z.shape[0]):
        prev = f[t] * prev + a[t]
        cs.append(prev)
    return torch.stack(cs)


class QRNNLayer(nn.Module):
    """One QRNN layer: window-sized input -> (z, f, o) gates by one Linear -> fo-pooling.

    The gate weights get DropConnect (weight_p) in training, drawn once per forward. The Linear is a
    plain nn.Linear, so int8 dynamic quantization applies to it unchanged."""

    def __init__(self, n_in: int, n_out: int, window: int = 1, weight_p: float = 0.0):
        super().__init__()
        if window not in (1, 2):
            raise ValueError("QRNN window must be 1 or 2")
        self.n_in, self.n_out, self.window, self.weight_p = n_in, n_out, window, float(weight_p)
        self.linear = nn.Linear(n_in * window, 3 * n_out)
        # torch inference computes tanh(a) as 2 sigmoid(2a) - 1: the gates scaled by [2 (z), 1 (f), 1 (o)] go through
        # one sigmoid (see forward). Not saved with the weights.
        scale = torch.ones(3 * n_out)
        scale[:n_out] = 2.0
        self.register_buffer("gate_scale", scale, persistent=False)

    def forward(self, x, state=None):
        bs = x.shape[0]
        # Time-major inside ([seq, bs, dim]): the gates come out of the matmul in the recurrence's layout, and
        # the output goes back as a transposed view, which the next QRNN layer reads without a copy.
        xt = x.transpose(0, 1)
        if self.window == 2:  # [x_{t-1}, x_t]; x_{-1} is the previous chunk's last input (or zeros)
            prev = x.new_zeros(1, bs, self.n_in) if state is None else state[1].to(x.dtype)
            x_in = torch.cat([torch.cat([prev, xt[:-1]], 0), xt], -1)
        else:
            x_in = xt
        export = torch.onnx.is_in_onnx_export()
        if export:  # one product per gate: onnxruntime copies each third out of a joint one (an eighth of its time)
            w, b = self.linear.weight.chunk(3), self.linear.bias.chunk(3)
            z, f, o = (F.linear(x_in, w[k], b[k]) for k in range(3))
            z, f, o = torch.tanh(z), torch.sigmoid(f), torch.sigmoid(o)  # its tanh is as cheap as its sigmoid
        else:
            if self.training and self.weight_p > 0:
                weight = F.dropout(self.linear.weight, self.weight_p, training=True)
                gates = F.linear(x_in, weight, self.linear.bias)
            else:
                gates = self.linear(x_in)
            # The recurrence runs in float32 (under bf16 autocast too): it sums over many steps.
            gates = gates.float()
            if torch.is_grad_enabled():  # training: these backward passes are the cheapest
                z, f, o = gates.chunk(3, dim=-1)
                z, f, o = torch.tanh(z), torch.sigmoid(f), torch.sigmoid(o)
            else:  # torch inference: tanh(a) = 2 sigmoid(2a) - 1, so one sigmoid over all the gates, scaled in
                # place; torch's CPU tanh costs ~3.5x its sigmoid (docs/benchmarks.md, "tanh as a sigmoid").
                sz, f, o = torch.sigmoid(gates.mul_(self.gate_scale)).chunk(3, dim=-1)
                z = sz * 2 - 1
        c0 = x.new_zeros(bs, self.n_out, dtype=torch.float32) if state is None else state[0][0].float()
        fo = forget_mult_steps if export else ForgetMult.apply
        c = fo(f, z, c0)
        h = (o * c).transpose(0, 1)
        new_state = (c[-1].unsqueeze(0),)
        if self.window == 2:
            new_state += (xt[-1:].float(),)
        return h, new_state

    def extra_repr(self):
        return f"{self.n_in}, {self.n_out}, window={self.window}, weight_p={self.weight_p}"


class QRNN(RNNEncoder):
    """Embedding -> n_layers QRNN layers (emb -> n_hid -> ... -> emb), windows 2, 1, 1, ...

    forward(ids [bs, seq], state=None) -> (raw, out, state): see `RNNEncoder`."""

    def make_layer(self, i, n_in, n_out, weight_p):
        return QRNNLayer(n_in, n_out, window=2 if i == 0 else 1, weight_p=weight_p)
