"""The language-model task for the training loop: contiguous stream batches, hidden state carried
across batches, cross entropy + AR/TAR (Merity et al. 2017) as the training loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..batching import LMBatches


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def ar_tar(raw, out, alpha=2.0, beta=1.0):
    """Activation regularization (alpha * mean(out^2) on the dropped-out last layer output) and
    temporal activation regularization (beta * mean((h_t - h_{t-1})^2) on the raw last layer output)."""
    loss = out.new_zeros((), dtype=torch.float32)
    if alpha:
        loss = loss + alpha * out.float().pow(2).mean()
    if beta and raw.shape[1] > 1:
        loss = loss + beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    return loss


def _ar_tar_fn():
    # Prefer the model module's own version when it has one (same formula).
    try:
        from ..models.awd_lstm import ar_tar_loss

        return ar_tar_loss
    except ImportError:
        return ar_tar


class LMTask:
    """Train a language model `model(ids, state) -> (logits, raw, out, state)` on a flat id stream.

    Validation uses fixed-length sequences, no start offset, and the same batch size.
    Metrics: loss (cross entropy), accuracy (next token), perplexity (exp of the loss).
    """

    def __init__(self, model, train_stream, valid_stream, bs=64, bptt=70, backwards=False, alpha=2.0, beta=1.0,
                 variable_bptt=True):
        self.model = model
        self.alpha, self.beta = alpha, beta
        self.train = LMBatches(train_stream, bs, bptt, backwards=backwards, variable=variable_bptt)
        self.valid = LMBatches(valid_stream, bs, bptt, backwards=backwards, variable=False, shuffle=False)
        self._ar_tar = _ar_tar_fn()

    def train_batches(self, epoch, seed):
        self.train.seed = int(seed)
        return self.train.epoch(epoch)

    def valid_batches(self):
        return self.valid.epoch(0)

    def train_step(self, model, batch, state):
        x, y = batch
        logits, raw, out, state = model(x, state)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss = ce + self._ar_tar(raw, out, self.alpha, self.beta) if (self.alpha or self.beta) else ce
        return (loss, ce.detach()), y.numel(), _detach(state)

    def eval_step(self, model, batch, state):
        x, y = batch
        logits, _, _, state = model(x, state)
        logits = logits.reshape(-1, logits.shape[-1]).float()
        y = y.reshape(-1)
        sums = {"loss": float(F.cross_entropy(logits, y, reduction="sum")),
                "correct": float((logits.argmax(-1) == y).sum()), "n": float(y.numel())}
        return sums, state

    @staticmethod
    def summarize(sums):
        n = max(sums.get("n", 0.0), 1.0)
        loss = sums.get("loss", float("nan")) / n
        return {"loss": loss, "accuracy": sums.get("correct", 0.0) / n,
                "perplexity": math.exp(min(loss, 50.0))}
