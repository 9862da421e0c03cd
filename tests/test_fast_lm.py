"""The fast language-model training path: sampled softmax, bf16 where it pays, QRNN through the CLI."""

import contextlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ulmfit.training import precision
from ulmfit.training.loop import Phase, TrainConfig, fit, validate
from ulmfit.training.lm_task import LMTask
from ulmfit.training.sampled_softmax import proposal_log_probs, sampled_cross_entropy

from test_training import ToyLM, pattern_stream

torch.set_num_threads(1)


def _decoder_problem(seed=0, n=64, d=8, vocab=50):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    weight = torch.randn(vocab, d, generator=g)
    bias = torch.randn(vocab, generator=g)
    targets = torch.randint(0, vocab, (n,), generator=g)
    stream = np.random.default_rng(seed).zipf(1.5, 5000) % vocab
    return hidden, weight, bias, targets, proposal_log_probs(stream, vocab)


def test_proposal_covers_every_word_and_follows_the_counts():
    log_q = proposal_log_probs(np.array([0, 0, 0, 0, 0, 0, 0, 2]), 4)
    q = log_q.exp()
    assert q.sum().item() == pytest.approx(1.0) and (q > 0).all()  # unseen words 1 and 3 can be drawn
    assert q[0] > q[2] > q[1] == q[3]


def test_sampled_loss_and_gradient_converge_to_the_full_softmax():
    hidden, weight, bias, targets, log_q = _decoder_problem()
    full = F.cross_entropy(hidden @ weight.t() + bias, targets)
    (g_full,) = torch.autograd.grad(full, hidden)
    torch.manual_seed(0)
    losses, grads = [], []
    for _ in range(20):
        loss = sampled_cross_entropy(hidden, targets, weight, bias, log_q, 4000)
        losses.append(loss.item())
        grads.append(torch.autograd.grad(loss, hidden)[0])
    assert np.mean(losses) == pytest.approx(full.item(), rel=0.02)
    g = torch.stack(grads).mean(0)
    assert F.cosine_similarity(g.flatten(), g_full.flatten(), dim=0) > 0.99
    # few samples: a cheaper, biased estimate, but still finite and pointing the same way
    torch.manual_seed(0)
    few = sampled_cross_entropy(hidden, targets, weight, bias, log_q, 8)
    (g_few,) = torch.autograd.grad(few, hidden)
    assert torch.isfinite(few) and F.cosine_similarity(g_few.flatten(), g_full.flatten(), dim=0) > 0.5


def test_sampled_loss_is_the_cross_entropy_over_the_true_word_and_the_corrected_samples():
    # The definition, written out with a concatenated logit matrix, on the same draws.
    hidden, weight, bias, targets, log_q = _decoder_problem()
    hidden = hidden.detach().requires_grad_()
    targets[:5] = torch.multinomial(log_q.exp(), 5, generator=torch.Generator().manual_seed(3))  # common words: hits
    torch.manual_seed(7)
    loss = sampled_cross_entropy(hidden, targets, weight, bias, log_q, 50)
    (g,) = torch.autograd.grad(loss, hidden)
    torch.manual_seed(7)
    cand, counts = torch.unique(torch.multinomial(log_q.exp(), 50, replacement=True), return_counts=True)
    h = hidden.detach().requires_grad_()
    samp = h @ weight[cand].t() + bias[cand] + counts.float().log() - np.log(50) - log_q[cand]
    hits = cand[None, :] == targets[:, None]
    assert hits.any()  # the check covers accidental hits
    logits = torch.cat([(h @ weight.t() + bias).gather(1, targets[:, None]), samp.masked_fill(hits, float("-inf"))], 1)
    ref = F.cross_entropy(logits, torch.zeros_like(targets))
    (g_ref,) = torch.autograd.grad(ref, h)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(g, g_ref, atol=1e-6)


def test_a_sample_equal_to_the_target_is_not_counted_as_a_negative():
    # a vocab of one word besides the target: every draw is either the target (masked) or that word
    hidden = torch.zeros(3, 2)
    weight, bias = torch.zeros(2, 2), torch.zeros(2)
    targets = torch.tensor([0, 0, 1])
    loss = sampled_cross_entropy(hidden, targets, weight, bias, torch.log(torch.tensor([0.5, 0.5])), 1000)
    # all logits equal: each row's estimate of Z is ~ exp(0) + 1 (the other word), so the loss is ~ log 2
    assert loss.item() == pytest.approx(np.log(2), abs=0.1)


def test_lm_task_trains_with_the_sampled_softmax_and_validates_exactly(tmp_path):
    torch.manual_seed(0)
    task = LMTask(ToyLM(drop=0.0), pattern_stream(3000), pattern_stream(800, seed=1), bs=8, bptt=12, sampled=6)
    cfg = TrainConfig(progress=False, plot=False, clip=0.5, threads=1)
    start = validate(task, task.model, torch.device("cpu"), cfg)
    hist = fit(task, [Phase(epochs=3, lr=3e-2)], cfg, tmp_path)
    assert hist[-1]["valid_loss"] < 0.5 * start["loss"] and hist[-1]["accuracy"] > 0.5
    # validation is the full softmax: recompute it by hand over the same batches
    model, total, n, state = task.model.eval(), 0.0, 0, None
    with torch.no_grad():
        for x, y in task.valid_batches():
            logits, _, _, state = model(x, state)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            n += y.numel()
    # (loosely: validation runs the encoder under bf16 autocast where this CPU has it)
    assert hist[-1]["valid_loss"] == pytest.approx(total / n, rel=1e-3)


def test_bf16_is_used_only_where_the_probe_says_it_pays(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 0.0)  # no bf16 instructions (e.g. AVX2 only)
    assert not precision.uses_bf16(cpu) and isinstance(precision.autocast(cpu), contextlib.nullcontext)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 1.1)  # supported but not faster
    assert not precision.uses_bf16(cpu)
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 4.0)
    assert precision.uses_bf16(cpu) and not precision.uses_bf16(cpu, want=False)
    with precision.autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert precision.uses_bf16(torch.device("cuda"))


def test_the_bf16_probe_measures_this_machine():
    precision.cpu_bf16_speedup.cache_clear()
    torch.manual_seed(3)
    s = precision.cpu_bf16_speedup()
    assert torch.equal(torch.rand(3), torch.manual_seed(3) and torch.rand(3))  # the seeded RNG is untouched
    assert s == 0.0 or s > 0.05  # 0: no bf16 kernels at all; otherwise a measured ratio
    assert precision.cpu_bf16_speedup() == s  # once per process
    torch.manual_seed(3)
    precision._bf16_lstm_runs()  # reached only where bf16 kernels exist, so called here on every machine
    assert torch.equal(torch.rand(3), torch.manual_seed(3) and torch.rand(3))


def test_pretrain_qrnn_with_sampled_softmax_and_finetune_it(tmp_path):
    from ulmfit.cli import main
    from ulmfit.artifacts import load_language_model

    from test_lm_cli import COMMON, make_store

    make_store(tmp_path / "corpus", [f"w{i}" for i in range(20)])
    out = tmp_path / "pre"
    assert main(["pretrain", str(tmp_path / "corpus"), "--out", str(out), "--arch", "qrnn", "--sampled", "8",
                 "--epochs", "1", "--max-steps", "20", "--lr", "1e-2"] + COMMON) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["arch"] == "qrnn" and config["training"]["sampled"] == 8
    lm, _, _ = load_language_model(out, with_encoder=False)
    assert type(lm.encoder).__name__ == "QRNN"
    make_store(tmp_path / "target", [f"w{i}" for i in range(5, 25)], seed=1)
    assert main(["finetune-lm", str(tmp_path / "target"), "--from", str(out), "--out", str(tmp_path / "ft"),
                 "--frozen-epochs", "1", "--frozen-steps", "5", "--epochs", "1", "--max-steps", "5"] + COMMON[2:]) == 0
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["model"]["arch"] == "qrnn"
