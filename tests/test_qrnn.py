"""The QRNN encoder: the recurrence, its layer, and that it works wherever the AWD-LSTM does."""

import pytest
import torch

from ulmfit.models.config import preset
from ulmfit.models.language_model import LanguageModel, detach_state
from ulmfit.models.qrnn import QRNN, ForgetMult, QRNNLayer

from classifier_helpers import tiny_classifier, one_thread  # noqa: F401 (autouse)

V = 40


def test_forget_mult_matches_the_recurrence_and_its_gradient():
    torch.manual_seed(0)
    f = torch.rand(6, 3, 4, dtype=torch.double, requires_grad=True)
    z = torch.randn(6, 3, 4, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    c, ref = ForgetMult.apply(f, z, c0), []
    prev = c0
    for t in range(6):
        prev = f[t] * prev + (1 - f[t]) * z[t]
        ref.append(prev)
    torch.testing.assert_close(c, torch.stack(ref))
    assert torch.autograd.gradcheck(ForgetMult.apply, (f, z, c0))


@pytest.mark.parametrize("mode", ["grad", "inference"])  # inference takes tanh as 2 sigmoid(2a) - 1
def test_layer_computes_the_windowed_gates(mode):
    torch.manual_seed(0)
    layer = QRNNLayer(3, 5, window=2).eval()
    with torch.no_grad():
        layer.linear.weight.mul_(3)  # gates well away from 0: tanh and a sigmoid mistaken for each other differ
    x = torch.randn(2, 4, 3)
    prev_x, c0 = torch.randn(2, 3), torch.randn(2, 5)
    with torch.inference_mode() if mode == "inference" else torch.enable_grad():
        h, (c_last, x_last) = layer(x, (c0[None], prev_x[None]))
        assert torch.is_inference(h) == (mode == "inference")
    W, b = layer.linear.weight, layer.linear.bias
    c, xs = c0, torch.cat([prev_x[:, None], x], 1)
    for t in range(4):
        g = torch.cat([xs[:, t], xs[:, t + 1]], -1) @ W.t() + b
        z, f, o = g.chunk(3, -1)
        c = torch.sigmoid(f) * c + (1 - torch.sigmoid(f)) * torch.tanh(z)
        torch.testing.assert_close(h[:, t], torch.sigmoid(o) * c)
    torch.testing.assert_close(c_last[0], c)
    assert torch.equal(x_last[0], x[:, -1])
    assert [t.shape for t in QRNNLayer(3, 5, window=1)(x)[1]] == [(1, 2, 5)]


def test_weight_drop_only_in_training():
    torch.manual_seed(0)
    layer = QRNNLayer(4, 6, weight_p=0.5)
    x = torch.randn(2, 5, 4)
    w = layer.linear.weight.detach().clone()
    layer.train()
    a, b = layer(x)[0], layer(x)[0]
    assert not torch.allclose(a, b) and torch.equal(layer.linear.weight, w)
    a.sum().backward()
    assert layer.linear.weight.grad.abs().sum() > 0
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])


def test_lm_shapes_and_state_carry_two_halves_equal_one_pass():
    torch.manual_seed(0)
    cfg = preset("tiny", V, arch="qrnn", n_layers=3)
    lm = LanguageModel(cfg).eval()
    assert isinstance(lm.encoder, QRNN) and lm.decoder.weight is lm.encoder.embedding.weight
    ids = torch.randint(0, V, (3, 12))
    with torch.no_grad():
        full, raw, _, s_full = lm(ids)
        a, _, _, s = lm(ids[:, :5])
        b, _, _, s2 = lm(ids[:, 5:], detach_state(s))
    assert full.shape == (3, 12, V) and raw.shape == (3, 12, cfg.emb_size)
    # layer 0 (window 2) carries its cell and its last input; the others their cell
    assert [[tuple(t.shape) for t in layer] for layer in s_full] == [
        [(1, 3, cfg.n_hid), (1, 3, cfg.emb_size)], [(1, 3, cfg.n_hid)], [(1, 3, cfg.emb_size)]]
    torch.testing.assert_close(torch.cat([a, b], 1), full, rtol=0, atol=1e-5)
    for x, y in zip(s2, s_full):
        for t1, t2 in zip(x, y):
            torch.testing.assert_close(t1, t2, rtol=0, atol=1e-6)
    groups = lm.param_groups()
    assert len(groups) == cfg.n_layers + 1 and lm.encoder.embedding.weight in groups[-1]


def test_qrnn_classifier_int8_quantizes_the_gate_layers():
    # (padding invariance: test_classifier_model, for every arch)
    from ulmfit.batching.documents import pad_collate
    from ulmfit.inference import quantize_int8

    m = tiny_classifier(n_classes=3, arch="qrnn").eval()
    g = torch.Generator().manual_seed(1)
    x, n = pad_collate([torch.randint(9, 40, (k,), generator=g).numpy() for k in (53, 3, 7, 21)])
    with torch.no_grad():
        batch = m(x, n)
        q = quantize_int8(m)
        quantized = [name for name, mod in q.named_modules() if type(mod).__module__.startswith("torch.ao.nn.quantized") and name.endswith("linear")]
        assert len(quantized) == 3 and all(".rnns." in name for name in quantized)
        assert torch.allclose(q(x, n).softmax(-1), batch.softmax(-1), atol=0.05)


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
def test_vocab_transfer_keeps_shared_words(arch):
    from ulmfit.transfer import map_vocab

    torch.manual_seed(0)
    lm = LanguageModel(preset("tiny", 12, arch=arch))
    old = [f"w{i}" for i in range(12)]
    new = ["w3", "zz", "w1"] + [f"n{i}" for i in range(5)]
    sd, n = map_vocab(lm.state_dict(), old, new)
    lm2 = LanguageModel(preset("tiny", len(new), arch=arch))
    lm2.load_state_dict(sd)
    emb = lm.encoder.embedding.weight
    assert n == 2 and torch.equal(lm2.encoder.embedding.weight[0], emb[3])
    assert torch.equal(lm2.encoder.rnns[0].linear.weight if arch == "qrnn" else lm2.encoder.rnns[0].weight_ih_l0,
                       lm.encoder.rnns[0].linear.weight if arch == "qrnn" else lm.encoder.rnns[0].weight_ih_l0)


def test_unknown_arch_is_a_clear_error():
    from ulmfit.errors import UlmfitError

    with pytest.raises(UlmfitError, match="unknown model arch 'gru'.*awd_lstm, qrnn"):
        preset("tiny", V, arch="gru")
