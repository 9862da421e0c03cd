"""Sampled softmax (Jean et al. 2015): the language model's training loss without the full vocab logits.

The full softmax costs tokens x vocab x emb multiply-adds three times a step (forward, two backward
matmuls) and materializes a tokens x vocab logit matrix: with a 60k vocab that is most of a CPU step.
Here each step draws `n_samples` words from a proposal q (unigram counts ** 0.75), shared by every
position of the batch, and the cross entropy runs over [true word, sampled words] only, each sampled
logit corrected by -log(expected count under q) so that the sum of exp(logits) estimates the full
softmax's normaliser. Samples that happen to be a position's true word are masked for that position.

Only training uses it: evaluation always reports the exact full-softmax loss and perplexity.
"""

from __future__ import annotations

import math

import numpy as np
import torch

PROPOSAL_POWER = 0.75  # flattens the unigram: rare words get sampled, their importance weights stay bounded


def proposal_log_probs(stream, vocab_size: int, power: float = PROPOSAL_POWER) -> torch.Tensor:
    """log q over the vocab from a token stream's counts (+1 so that every word can be drawn)."""
    counts = np.bincount(np.asarray(stream), minlength=vocab_size)[:vocab_size].astype(np.float64) + 1.0
    q = counts**power
    return torch.from_numpy(np.log(q / q.sum())).float()


def sampled_cross_entropy(hidden, targets, weight, bias, log_q, n_samples: int):
    """Mean sampled-softmax cross entropy of `hidden` [N, d] against `targets` [N] for a decoder
    (weight [vocab, d], bias [vocab] or None). log_q: [vocab] log proposal (on hidden's device).

    The [N, candidates] logit matrix is the only large tensor (N = bs x bptt), so it is touched as few
    times as possible: the matmul's bf16 output becomes float32 in the same op that adds bias and
    correction, accidental hits are set by index (they are rare), and the loss is
    logaddexp(true, logsumexp(sampled)) - true, with no concatenated [N, 1 + candidates] copy."""
    samples = torch.multinomial(log_q.exp(), n_samples, replacement=True)
    cand, counts = torch.unique(samples, return_counts=True)  # sorted
    # sum_j exp(s_j) over the vocab ~ sum over draws of exp(s_j) / (n_samples * q_j); a word drawn m times
    # stands for m draws: its logit gets + log(m) - log(n_samples * q_j)
    shift = counts.float().log() - math.log(n_samples) - log_q[cand]
    n = targets.shape[0]
    rows = weight[torch.cat([targets, cand])].to(hidden.dtype)  # one gather (and one scatter backward)
    true_logit = (hidden * rows[:n]).sum(-1).float()
    if bias is not None:
        b = bias[torch.cat([targets, cand])].float()
        true_logit, shift = true_logit + b[:n], shift + b[n:]
    samp_logit = torch.add(hidden @ rows[n:].t(), shift)  # [N, C] float32: shift is float32
    pos = torch.searchsorted(cand, targets).clamp_(max=len(cand) - 1)
    hit = (cand[pos] == targets).nonzero().squeeze(1)  # a sample equal to the position's own word
    if len(hit):
        samp_logit.index_put_((hit, pos[hit]), samp_logit.new_tensor(float("-inf")))  # add's backward keeps no output
    return (torch.logaddexp(true_logit, torch.logsumexp(samp_logit, 1)) - true_logit).mean()
