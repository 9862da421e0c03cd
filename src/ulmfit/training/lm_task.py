"""The language-model task for the training loop: contiguous stream batches, hidden state carried
across batches, cross entropy + AR/TAR (Merity et al. 2017) as the training loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..batching import LMBatches
from ..models.awd_lstm import ar_tar_loss


def _detach(state):
    # Generic (any nesting of tensors), so the task also runs models other than LanguageModel.
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


class LMTask:
    """Train a language model `model(ids, state) -> (logits, raw, out, state)` on a flat id stream.

    Validation uses fixed-length sequences, no start offset, and the same batch size (fewer rows when
    the validation stream is tiny).
    Metrics: loss (cross entropy), accuracy (next token), perplexity (exp of the loss).
    """

    def __init__(self, model, train_stream, valid_stream, bs=64, bptt=70, backwards=False, alpha=2.0, beta=1.0,
                 variable_bptt=True):
        self.model = model
        self.alpha, self.beta = alpha, beta
        self.train = LMBatches(train_stream, bs, bptt, backwards=backwards, variable=variable_bptt)
        # A small validation split gets fewer rows rather than an error.
        valid_bs = max(1, min(bs, (len(valid_stream) - 1) // 2))
        self.valid = LMBatches(valid_stream, valid_bs, bptt, backwards=backwards, variable=False, shuffle=False)

    def train_batches(self, epoch, seed):
        self.train.seed = int(seed)
        return self.train.epoch(epoch)

    def valid_batches(self):
        return self.valid.epoch(0)

    def train_step(self, model, batch, state):
        x, y = batch
        logits, raw, out, state = model(x, state)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss = ce + ar_tar_loss(raw, out, self.alpha, self.beta) if (self.alpha or self.beta) else ce
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
