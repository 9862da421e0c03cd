import dataclasses

import pytest
import torch
from torch import nn

from ulmfit.errors import UlmfitError
from ulmfit.models.awd_lstm import AWDLSTM
from ulmfit.models.language_model import LanguageModel, ar_tar_loss, detach_state
from ulmfit.models.config import ModelConfig, classifier_dropouts, preset
from ulmfit.models.dropout import LockedDropout, WeightDropLSTM, embedding_dropout
from ulmfit.models.sampling import sample
from ulmfit.text.detokenize import detokenize

torch.set_num_threads(1)
V = 40


def tiny(**kw):
    return preset("tiny", V, **kw)


def test_config_presets_and_roundtrip():
    cfg = preset("paper", 60000)
    assert (cfg.emb_size, cfg.n_hid, cfg.n_layers) == (400, 1150, 3)
    assert (cfg.input_p, cfg.output_p, cfg.weight_p, cfg.embed_p, cfg.hidden_p) == (0.25, 0.1, 0.2, 0.02, 0.15)
    assert ModelConfig(**dataclasses.asdict(cfg)) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert preset("small", 100, drop_mult=0.5).p("input_p") == pytest.approx(0.125)
    clas = dataclasses.replace(cfg, **classifier_dropouts(cfg.arch))
    assert (clas.input_p, clas.hidden_p, clas.weight_p, clas.embed_p) == (0.4, 0.3, 0.5, 0.05)
    with pytest.raises(UlmfitError, match="unknown model preset"):
        preset("huge", 10)
    with pytest.raises(UlmfitError, match="unknown model setting"):
        preset("tiny", 10, n_heads=3)
    with pytest.raises(UlmfitError, match="must be in"):
        preset("tiny", 10, drop_mult=5.0)


def test_weight_drop_active_in_train_off_in_eval():
    torch.manual_seed(0)
    rnn = WeightDropLSTM(6, 5, weight_p=0.5)
    x = torch.randn(3, 7, 6)
    raw = rnn.weight_hh_l0.detach().clone()
    rnn.train()
    a, _ = rnn(x)
    b, _ = rnn(x)
    assert not torch.allclose(a, b)  # a fresh DropConnect mask per forward
    assert torch.equal(rnn.weight_hh_l0, raw)  # the raw weight itself is never modified
    a[0].sum().backward()
    assert rnn.weight_hh_l0.grad is not None and rnn.weight_hh_l0.grad.abs().sum() > 0

    rnn.eval()
    plain = nn.LSTM(6, 5, batch_first=True)
    plain.load_state_dict(rnn.state_dict())
    h0 = (torch.randn(1, 3, 5), torch.randn(1, 3, 5))
    (e1, (h1, c1)), (e2, _) = rnn(x, h0), rnn(x, h0)
    ref, (rh, rc) = plain(x, h0)
    assert torch.equal(e1, e2)
    torch.testing.assert_close(e1, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(h1, rh, rtol=0, atol=1e-6)
    torch.testing.assert_close(c1, rc, rtol=0, atol=1e-6)


def test_weight_drop_masks_whole_weight_entries():
    # With p close to 1 nearly all recurrent weights are dropped: the output equals an LSTM with w_hh = 0.
    torch.manual_seed(0)
    rnn = WeightDropLSTM(4, 3, weight_p=0.999999).train()
    plain = nn.LSTM(4, 3, batch_first=True)
    plain.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        plain.weight_hh_l0.zero_()
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(rnn(x)[0], plain(x)[0], rtol=0, atol=1e-6)


def test_locked_dropout_mask_constant_over_time():
    torch.manual_seed(0)
    dp = LockedDropout(0.5).train()
    y = dp(torch.ones(4, 9, 8))
    zero = y == 0
    assert zero.any() and (~zero).any()
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # same units dropped at every step
    assert torch.allclose(y[~zero], torch.tensor(2.0))
    dp.eval()
    x = torch.randn(2, 3, 4)
    assert dp(x) is x


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    w = torch.randn(10, 5)
    ids = torch.tensor([[1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9]] * 3)
    e = embedding_dropout(w, ids, 0.5, training=True)
    dropped = (e == 0).all(-1)
    assert dropped.any() and (~dropped).any()
    for tok in range(10):  # a word is dropped everywhere or nowhere
        d = dropped[ids == tok]
        assert d.all() or (~d).all()
    torch.testing.assert_close(e[~dropped], (w[ids] * 2)[~dropped])
    assert torch.equal(embedding_dropout(w, ids, 0.5, training=False), w[ids])


def test_lm_shapes_tied_weights_and_init():
    torch.manual_seed(0)
    cfg = tiny()
    lm = LanguageModel(cfg)
    ids = torch.randint(0, V, (3, 7))
    logits, raw, out, state = lm(ids)
    assert logits.shape == (3, 7, V) and raw.shape == out.shape == (3, 7, cfg.emb_size)
    assert [tuple(h.shape) for h, _ in state] == [(1, 3, cfg.n_hid), (1, 3, cfg.emb_size)]
    assert [tuple(c.shape) for _, c in state] == [(1, 3, cfg.n_hid), (1, 3, cfg.emb_size)]
    emb = lm.encoder.embedding.weight
    assert lm.decoder.weight is emb
    assert lm.decoder.weight.data_ptr() == emb.data_ptr()
    assert torch.all(emb[cfg.pad_id] == 0) and emb.abs().max() <= 0.1
    assert torch.all(lm.decoder.bias == 0)
    raw2, out2, state2 = AWDLSTM(cfg)(ids, None)
    assert raw2.shape == out2.shape == (3, 7, cfg.emb_size) and len(state2) == cfg.n_layers
    untied = LanguageModel(tiny(tie_weights=False, out_bias=False))
    assert untied.decoder.weight is not untied.encoder.embedding.weight and untied.decoder.bias is None


def test_eval_is_deterministic_and_out_equals_raw():
    torch.manual_seed(0)
    lm = LanguageModel(tiny()).eval()
    ids = torch.randint(0, V, (2, 6))
    l1, raw, out, _ = lm(ids)
    l2, _, _, _ = lm(ids)
    assert torch.equal(l1, l2) and torch.equal(raw, out)
    lm.train()
    _, raw, out, _ = lm(ids)
    assert not torch.equal(raw, out)


def test_state_carry_two_halves_equal_one_pass():
    torch.manual_seed(0)
    lm = LanguageModel(tiny()).eval()
    ids = torch.randint(0, V, (3, 12))
    with torch.no_grad():
        full, _, _, s_full = lm(ids)
        a, _, _, s = lm(ids[:, :5])
        b, _, _, s2 = lm(ids[:, 5:], detach_state(s))
    torch.testing.assert_close(torch.cat([a, b], 1), full, rtol=0, atol=1e-5)
    for (h1, c1), (h2, c2) in zip(s2, s_full):
        torch.testing.assert_close(h1, h2, rtol=0, atol=1e-6)
        torch.testing.assert_close(c1, c2, rtol=0, atol=1e-6)


def test_detach_state():
    lm = LanguageModel(tiny())
    _, _, _, s = lm(torch.randint(0, V, (2, 4)))
    assert s[0][0].requires_grad
    d = detach_state(s)
    assert not any(t.requires_grad for hc in d for t in hc) and torch.equal(d[0][0], s[0][0])
    assert detach_state(None) is None


def test_param_groups():
    cfg = tiny()
    lm = LanguageModel(cfg)
    groups = lm.param_groups()
    assert len(groups) == cfg.n_layers + 1
    emb = lm.encoder.embedding.weight
    assert any(p is emb for p in groups[-1]) and any(p is lm.decoder.bias for p in groups[-1])
    flat = [p for g in groups for p in g]
    assert len(flat) == len({id(p) for p in flat}) == len(list(lm.parameters()))
    enc_groups = lm.encoder.param_groups()
    assert enc_groups[0] == [emb] and len(enc_groups) == cfg.n_layers + 1
    assert [id(p) for p in enc_groups[1]] == [id(p) for p in lm.encoder.rnns[0].parameters()]


def test_ar_tar_loss():
    raw = torch.tensor([[[1.0], [3.0], [3.0]]])
    out = torch.tensor([[[2.0], [0.0], [0.0]]])
    # AR: alpha * mean(out^2) = 2 * 4/3; TAR: beta * mean(diff^2) = (4 + 0) / 2
    assert ar_tar_loss(raw, out).item() == pytest.approx(2 * 4 / 3 + 2.0)
    assert ar_tar_loss(raw, out, alpha=0, beta=0).item() == 0
    lm = LanguageModel(tiny())
    _, raw, out, _ = lm(torch.randint(0, V, (2, 5)))
    ar_tar_loss(raw, out).backward()
    assert lm.encoder.rnns[-1].weight_ih_l0.grad is not None


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
def test_lm_trains_on_a_pattern(arch):
    # A sanity check that the pieces learn together: a repeating sequence becomes predictable.
    torch.manual_seed(0)
    lm = LanguageModel(tiny(drop_mult=0.1, arch=arch))
    opt = torch.optim.Adam(lm.parameters(), lr=3e-2)
    seq = torch.arange(4, 12).repeat(4).unsqueeze(0).repeat(4, 1)
    for _ in range(100):
        logits, raw, out, _ = lm(seq[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten())
        opt.zero_grad()
        (loss + ar_tar_loss(raw, out)).backward()
        opt.step()
    assert loss.item() < 0.5
    gen = sample(lm, [2, 4, 5, 6], 6, temperature=0)
    assert gen == [7, 8, 9, 10, 11, 4]


def test_sample_respects_banned_and_seed():
    torch.manual_seed(0)
    lm = LanguageModel(tiny())
    a = sample(lm, [2, 5], 20, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = sample(lm, [2, 5], 20, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert a == b and len(a) == 20 and not {0, 1} & set(a)


def test_detokenize():
    toks = ["xxbos", "xxmaj", "this", "movie", "is", "xxup", "great", "xxrep", "3", "!", "it", "was", "n't", "bad", "."]
    assert detokenize(toks) == "This movie is GREAT !!! it wasn't bad."


def test_settings_preset_and_arch_lists_match_the_models():
    # ulmfit.settings reads the torch-free ulmfit.archs names (importing the models would load torch for --help).
    from ulmfit import settings
    from ulmfit.models import registry
    from ulmfit.models.config import PRESETS

    assert set(settings.MODEL_PRESETS) == set(PRESETS) and list(settings.ARCHS) == registry.names()
