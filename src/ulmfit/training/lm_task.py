"""The language-model task for the training loop: contiguous stream batches, hidden state carried
across batches, cross entropy + AR/TAR (Merity et al. 2017) as the training loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..batching.lm import LMBatches
from ..settings import LMOptimSettings
from ..models.language_model import ar_tar_loss
from .sampled_softmax import proposal_log_probs, sampled_cross_entropy


EVAL_ROWS = 1024  # positions whose full-vocab logits are computed at once in evaluation


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
    Metrics: loss (cross entropy), accuracy (next token), perplexity (exp of the loss), always over
    the full vocab. `sampled` > 0 trains with a sampled softmax of that many words per step instead
    (see `sampled_softmax`; the reported train loss is then the sampled one).
    """

    def __init__(
        self,
        model,
        train_stream,
        valid_stream,
        bs,
        bptt,
        backwards=False,
        alpha=LMOptimSettings.alpha,
        beta=LMOptimSettings.beta,
        variable_bptt=True,
        sampled=0,
    ):
        self.model = model
        self.alpha, self.beta = alpha, beta
        self.sampled = int(sampled)
        self.log_q = proposal_log_probs(train_stream, model.decoder.weight.shape[0]) if self.sampled else None
        self.train = LMBatches(train_stream, bs, bptt, backwards=backwards, variable=variable_bptt)
        # A small validation split gets fewer rows rather than an error.
        valid_bs = max(1, min(bs, (len(valid_stream) - 1) // 2))
        self.valid = LMBatches(valid_stream, valid_bs, bptt, backwards=backwards, variable=False, shuffle=False)

    def train_batches(self, epoch, seed):
        self.train.seed = int(seed)
        return self.train.epoch(epoch)

    def valid_batches(self):
        return self.valid.epoch(0)

    @staticmethod
    def n_tokens(batch) -> int:
        return int(batch[1].numel())

    def train_step(self, model, batch, state):
        x, y = batch
        if self.sampled:
            raw, out, state = model.encoder(x, state)
            if self.log_q.device != out.device:
                self.log_q = self.log_q.to(out.device)
            ce = sampled_cross_entropy(
                out.reshape(-1, out.shape[-1]),
                y.reshape(-1),
                model.decoder.weight,
                model.decoder.bias,
                self.log_q,
                self.sampled,
            )
        else:
            logits, raw, out, state = model(x, state)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss = ce + ar_tar_loss(raw, out, self.alpha, self.beta) if (self.alpha or self.beta) else ce
        return (loss, ce.detach()), y.numel(), _detach(state)

    def eval_step(self, model, batch, state):
        x, y = batch
        _, out, state = model.encoder(x, state)
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        loss = correct = 0.0
        # fp32 logits (bf16 would blur the perplexity), a slice of positions at a time (a batch's logits
        # over a 60k vocab would take a gigabyte)
        with torch.autocast(out.device.type, enabled=False):
            for o, t in zip(out.split(EVAL_ROWS), y.split(EVAL_ROWS)):
                logits = model.decoder(o.float())
                loss += float(F.cross_entropy(logits, t, reduction="sum"))
                correct += float((logits.argmax(-1) == t).sum())
        return {"loss": loss, "correct": correct, "n": float(y.numel())}, state

    @staticmethod
    def summarize(sums):
        n = max(sums.get("n", 0.0), 1.0)
        loss = sums.get("loss", float("nan")) / n
        return {"loss": loss, "accuracy": sums.get("correct", 0.0) / n, "perplexity": math.exp(min(loss, 50.0))}
