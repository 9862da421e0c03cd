import json
import os
import pickle

import pytest
import torch

from ulmfit.artifacts import load_language_model, read_config
from ulmfit.errors import UlmfitError
from ulmfit.io import read_json
from ulmfit.models.language_model import LanguageModel
from ulmfit.models.config import preset
from ulmfit.text.special import SPECIAL_TOKENS
from ulmfit.transfer import import_fastai, map_vocab, read_itos

torch.set_num_threads(1)


def lm_state(itos, tie=True):
    torch.manual_seed(0)
    lm = LanguageModel(preset("tiny", len(itos), tie_weights=tie))
    with torch.no_grad():
        lm.decoder.bias.copy_(torch.randn(len(itos)))
    return lm.state_dict()


def test_map_vocab_rows_and_mean():
    old = SPECIAL_TOKENS + ["a", "b", "c", "d"]
    new = SPECIAL_TOKENS + ["c", "x", "a", "y"]
    sd = lm_state(old)
    emb, bias = sd["encoder.embedding.weight"], sd["decoder.bias"]
    out, n = map_vocab(sd, old, new)
    assert n == len(SPECIAL_TOKENS) + 2
    e2, b2 = out["encoder.embedding.weight"], out["decoder.bias"]
    assert e2.shape == (len(new), emb.shape[1])
    k = len(SPECIAL_TOKENS)
    assert torch.equal(e2[:k], emb[:k]) and torch.equal(b2[:k], bias[:k])
    assert torch.equal(e2[k], emb[old.index("c")]) and torch.equal(b2[k], bias[old.index("c")])
    assert torch.equal(e2[k + 2], emb[old.index("a")]) and torch.equal(b2[k + 2], bias[old.index("a")])
    for j in (k + 1, k + 3):  # new words: mean row, mean bias
        torch.testing.assert_close(e2[j], emb.mean(0))
        torch.testing.assert_close(b2[j], bias.mean())
    assert out["decoder.weight"] is e2  # still tied
    assert out["encoder.rnns.0.weight_ih_l0"] is sd["encoder.rnns.0.weight_ih_l0"]
    lm = LanguageModel(preset("tiny", len(new)))
    lm.load_state_dict(out)
    assert lm.decoder.weight is lm.encoder.embedding.weight


def test_map_vocab_untied_decoder_and_errors():
    old = SPECIAL_TOKENS + ["a", "b"]
    new = SPECIAL_TOKENS + ["b", "z"]
    sd = lm_state(old, tie=False)
    out, n = map_vocab(sd, old, new)
    assert n == len(SPECIAL_TOKENS) + 1
    dec = sd["decoder.weight"]
    assert out["decoder.weight"] is not out["encoder.embedding.weight"]
    assert torch.equal(out["decoder.weight"][len(SPECIAL_TOKENS)], dec[old.index("b")])
    torch.testing.assert_close(out["decoder.weight"][-1], dec.mean(0))
    with pytest.raises(UlmfitError, match="old vocab has"):
        map_vocab(sd, old[:-1], new)
    with pytest.raises(UlmfitError, match="no encoder.embedding.weight"):
        map_vocab({"x": torch.zeros(1)}, old, new)


# --- fastai import ------------------------------------------------------------------------------

EMB, HID = 8, 12


def fastai_state(n_vocab, v1=False, n_layers=3):
    """A state dict with fastai's AWD-LSTM LM key names and shapes (tiny sizes)."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(n_vocab, EMB, generator=g)
    sd = {"0.encoder.weight": emb}
    sd["0.encoder_with_dropout.embed.weight" if v1 else "0.encoder_dp.emb.weight"] = emb
    sizes = [EMB] + [HID] * (n_layers - 1) + [EMB]
    for i in range(n_layers):
        n_in, n_out = sizes[i], sizes[i + 1]
        pre = f"0.rnns.{i}."
        sd[pre + ("module.weight_hh_l0_raw" if v1 else "weight_hh_l0_raw")] = torch.randn(4 * n_out, n_out, generator=g)
        sd[pre + "module.weight_ih_l0"] = torch.randn(4 * n_out, n_in, generator=g)
        sd[pre + "module.bias_ih_l0"] = torch.randn(4 * n_out, generator=g)
        sd[pre + "module.bias_hh_l0"] = torch.randn(4 * n_out, generator=g)
        if v1:  # v1 also saved the last dropped copy; it must be ignored in favour of the raw weight
            sd[pre + "module.weight_hh_l0"] = torch.zeros(4 * n_out, n_out)
    sd["1.decoder.weight"] = emb
    sd["1.decoder.bias"] = torch.randn(n_vocab, generator=g)
    return sd


V2_ITOS = ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj",
           "the", ",", ".", "movie", "xxfake", "xxfake", "xxfake"]


def test_import_fastai_v2(tmp_path):
    sd = fastai_state(len(V2_ITOS))
    pth = tmp_path / "lstm_fwd.pth"
    torch.save(sd, pth)
    pkl = tmp_path / "lstm_fwd.pkl"
    pkl.write_bytes(pickle.dumps(V2_ITOS))
    cfg, out, itos = import_fastai(pth, pkl)
    assert itos == V2_ITOS[:14]  # already our order; duplicate padding tokens collapse to one
    assert (cfg.vocab_size, cfg.emb_size, cfg.n_hid, cfg.n_layers) == (14, EMB, HID, 3)
    assert cfg.tie_weights and cfg.out_bias
    lm = LanguageModel(cfg)
    lm.load_state_dict(out)  # strict: every key and shape fits
    assert torch.equal(lm.encoder.embedding.weight, sd["0.encoder.weight"][:14])
    assert torch.equal(lm.decoder.bias, sd["1.decoder.bias"][:14])
    for i in range(3):
        rnn = lm.encoder.rnns[i]
        assert torch.equal(rnn.weight_hh_l0, sd[f"0.rnns.{i}.weight_hh_l0_raw"])
        assert torch.equal(rnn.weight_ih_l0, sd[f"0.rnns.{i}.module.weight_ih_l0"])
        assert torch.equal(rnn.bias_hh_l0, sd[f"0.rnns.{i}.module.bias_hh_l0"])
    assert out["decoder.weight"] is out["encoder.embedding.weight"]
    # the other itos formats give the same vocab
    (tmp_path / "itos.json").write_text(json.dumps({"itos": V2_ITOS}))
    (tmp_path / "itos.txt").write_text("\n".join(V2_ITOS) + "\n")
    for src in (tmp_path / "itos.json", tmp_path / "itos.txt", V2_ITOS):
        assert import_fastai(pth, src)[2] == itos


def test_import_fastai_v1_renames_and_moves_specials(tmp_path):
    old_itos = ["_unk_", "_pad_", "the", "xbos", ",", "t_up", "movie", "xfld"]
    sd = fastai_state(len(old_itos), v1=True, n_layers=2)
    torch.save({"model": sd, "opt": {}}, tmp_path / "fwd_wt103.h5")
    cfg, out, itos = import_fastai(tmp_path / "fwd_wt103.h5", old_itos)
    assert itos == SPECIAL_TOKENS + ["the", ",", "movie"]
    assert cfg.n_layers == 2 and cfg.vocab_size == len(itos)
    emb, new_emb = sd["0.encoder.weight"], out["encoder.embedding.weight"]
    for tok, old_tok in [("xxunk", "_unk_"), ("xxpad", "_pad_"), ("xxbos", "xbos"), ("xxfld", "xfld"),
                         ("xxup", "t_up"), ("the", "the"), ("movie", "movie")]:
        assert torch.equal(new_emb[itos.index(tok)], emb[old_itos.index(old_tok)]), tok
    for tok in ("xxeos", "xxrep", "xxwrep", "xxmaj"):  # unknown to that model: the mean row
        torch.testing.assert_close(new_emb[itos.index(tok)], emb.mean(0))
    assert torch.equal(out["encoder.rnns.1.weight_hh_l0"], sd["0.rnns.1.module.weight_hh_l0_raw"])
    LanguageModel(cfg).load_state_dict(out)


def test_import_fastai_errors(tmp_path):
    torch.save(fastai_state(len(V2_ITOS)), tmp_path / "w.pth")
    with pytest.raises(UlmfitError, match="vocab has 3 tokens"):
        import_fastai(tmp_path / "w.pth", ["a", "b", "c"])
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(UlmfitError, match="no fastai AWD-LSTM weights"):
        import_fastai(tmp_path / "other.pth", V2_ITOS)
    with pytest.raises(UlmfitError, match="does not exist"):
        import_fastai(tmp_path / "missing.pth", V2_ITOS)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_pickles_that_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil_itos = tmp_path / "itos_wt103.pkl"
    evil_itos.write_bytes(pickle.dumps(["xxunk", Evil(marker)]))
    torch.save(fastai_state(2), tmp_path / "w.pth")
    with pytest.raises(UlmfitError, match="refusing to load"):
        read_itos(evil_itos)
    with pytest.raises(UlmfitError):
        import_fastai(tmp_path / "w.pth", evil_itos)
    # the same payload hidden in the weights file
    torch.save({"0.encoder.weight": torch.zeros(2, 2), "x": Evil(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UlmfitError, match="cannot read it as plain PyTorch weights"):
        import_fastai(tmp_path / "evil.pth", ["a", "b"])
    assert not marker.exists()
    # old protocols spell list/str as globals: still fine
    assert read_itos_bytes(tmp_path, pickle.dumps(["a", "b"], protocol=0)) == ["a", "b"]


def read_itos_bytes(tmp_path, data):
    p = tmp_path / "x.pkl"
    p.write_bytes(data)
    return read_itos(p)


def test_import_fastai_command(tmp_path):
    from ulmfit.cli import main

    torch.save(fastai_state(len(V2_ITOS)), tmp_path / "lstm_fwd.pth")
    (tmp_path / "lstm_fwd.pkl").write_bytes(pickle.dumps(V2_ITOS))
    out = tmp_path / "wt103"
    assert main(["import-fastai", str(tmp_path / "lstm_fwd.pth"), str(tmp_path / "lstm_fwd.pkl"), "--out", str(out)]) == 0
    assert read_json(out / "tokenizer.json") == {"backend": "spacy", "lang": "en"}
    assert read_json(out / "vocab.json") == {"itos": V2_ITOS[:14]}
    assert read_config(out)["kind"] == "language_model"
    lm, config, enc = load_language_model(out, with_encoder=False)
    assert config.model.n_hid == HID and enc is None
    assert lm.decoder.weight is lm.encoder.embedding.weight
    assert main(["import-fastai", str(tmp_path / "nope.pth"), str(tmp_path / "lstm_fwd.pkl"), "--out", str(out)]) == 1
