import sys
import types

import pytest
import torch

from ulmfit.artifacts import build_language_model, load_language_model, load_model, save_model
from ulmfit.errors import UlmfitError
from ulmfit.io import read_json, write_json
from ulmfit.models.language_model import LanguageModel
from ulmfit.models.config import ModelConfig, preset
from ulmfit.text.special import SPECIAL_TOKENS

torch.set_num_threads(1)
ITOS = SPECIAL_TOKENS + ["the", "movie", "was", "great", "bad", "."]


class StandInEncoder:
    """Stands in for ulmfit.text.encoder.TextEncoder (written on another branch): whitespace tokens."""

    def __init__(self, itos):
        self.itos = itos
        self.vocab = itos  # like TextEncoder.vocab, its len() is the vocab size
        self.stoi = {t: i for i, t in enumerate(itos)}

    def save(self, folder):
        write_json(f"{folder}/tokenizer.json", {"backend": "whitespace"})
        write_json(f"{folder}/vocab.json", {"itos": self.itos})

    @classmethod
    def load(cls, folder):
        return cls(read_json(f"{folder}/vocab.json")["itos"])

    def encode(self, texts):
        import numpy as np

        return [np.array([2] + [self.stoi.get(w, 0) for w in t.lower().split()], dtype=np.int64) for t in texts]


@pytest.fixture
def stand_in(monkeypatch):
    mod = types.ModuleType("ulmfit.text.encoder")
    mod.TextEncoder = StandInEncoder
    monkeypatch.setitem(sys.modules, "ulmfit.text.encoder", mod)
    return StandInEncoder(ITOS)


def make_lm(**kw):
    torch.manual_seed(0)
    cfg = preset("tiny", len(ITOS), **kw)
    lm = LanguageModel(cfg)
    with torch.no_grad():  # a trained-looking model: nothing left at its init value
        for p in lm.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return cfg, lm


def test_model_folder_roundtrip_bit_exact(tmp_path, stand_in):
    cfg, lm = make_lm()
    folder = tmp_path / "lm"
    config = {"kind": "language_model", "model": cfg, "extra": {"epochs": 3}}
    save_model(folder, lm, config, stand_in)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json", "vocab.json"]
    assert read_json(folder / "vocab.json")["itos"] == ITOS
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers

    conf2, sd, enc = load_model(folder)
    assert conf2 == {"kind": "language_model", "model": cfg.to_dict(), "extra": {"epochs": 3}}
    assert ModelConfig(**conf2["model"]) == cfg
    ref = lm.state_dict()
    assert set(sd) == set(ref)
    for k in ref:
        assert sd[k].dtype == ref[k].dtype and torch.equal(sd[k], ref[k]), k
    assert sd["decoder.weight"] is sd["encoder.embedding.weight"]  # re-tied
    assert isinstance(enc, StandInEncoder) and enc.itos == ITOS

    lm2, _, _ = load_language_model(folder)
    assert lm2.decoder.weight is lm2.encoder.embedding.weight
    ids = torch.randint(0, len(ITOS), (2, 5))
    lm.eval()
    assert torch.equal(lm(ids)[0], lm2(ids)[0])


def test_tied_weight_stored_once(tmp_path):
    from safetensors import safe_open

    _, lm = make_lm()
    save_model(tmp_path / "m", lm, {"kind": "language_model", "model": lm.cfg})
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert "decoder.weight" not in f.keys() and "encoder.embedding.weight" in f.keys()
    cfg, lm_untied = make_lm(tie_weights=False)
    save_model(tmp_path / "u", lm_untied, {"kind": "language_model", "model": cfg})
    _, sd, _ = load_model(tmp_path / "u", with_encoder=False)
    assert sd["decoder.weight"] is not sd["encoder.embedding.weight"]
    assert torch.equal(sd["decoder.weight"], lm_untied.decoder.weight)


def test_tie_survives_saving_from_another_device(tmp_path, monkeypatch):
    """A model trained on a GPU: every copy to the host is a new tensor, so ties must be found on the device
    (a CUDA-trained LM was once saved with its embedding twice, at double the size)."""
    from safetensors import safe_open

    from ulmfit.artifacts import LanguageModelConfig, save_language_model

    cfg, lm = make_lm()
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: self.clone())  # what .cpu() does to CUDA tensors
    save_language_model(tmp_path / "m", lm, LanguageModelConfig(cfg), StandInEncoder(ITOS))
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert "decoder.weight" not in f.keys()
    monkeypatch.undo()
    lm2, _, _ = load_language_model(tmp_path / "m")
    assert lm2.decoder.weight is lm2.encoder.embedding.weight
    assert torch.equal(lm2.encoder.embedding.weight, lm.encoder.embedding.weight)


def test_overwrite_keeps_other_files(tmp_path):
    cfg, lm = make_lm()
    folder = tmp_path / "run"
    save_model(folder, lm, {"kind": "language_model", "model": cfg})
    (folder / "log.csv").write_text("epoch,loss\n0,1.0\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.safetensors").write_bytes(b"x")
    with torch.no_grad():
        lm.decoder.bias.add_(1)
    save_model(folder, lm, {"kind": "language_model", "model": cfg})
    assert (folder / "log.csv").read_text() == "epoch,loss\n0,1.0\n"
    assert (folder / "checkpoints" / "last.safetensors").read_bytes() == b"x"
    _, sd, _ = load_model(folder, with_encoder=False)
    assert torch.equal(sd["decoder.bias"], lm.decoder.bias)


def test_failed_save_leaves_old_folder(tmp_path):
    cfg, lm = make_lm()
    folder = tmp_path / "m"
    save_model(folder, lm, {"kind": "language_model", "model": cfg})
    before = (folder / "model.safetensors").read_bytes()

    class Broken:
        def save(self, folder):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_model(folder, LanguageModel(cfg), {"kind": "language_model", "model": cfg}, Broken())
    assert (folder / "model.safetensors").read_bytes() == before
    assert not list(tmp_path.glob(".*"))


def test_load_errors_name_the_file(tmp_path, stand_in):
    cfg, lm = make_lm()
    folder = tmp_path / "m"
    with pytest.raises(UlmfitError, match="does not exist"):
        load_model(folder)
    save_model(folder, lm, {"kind": "language_model", "model": cfg}, stand_in)

    (folder / "vocab.json").unlink()
    with pytest.raises(UlmfitError, match="vocab.json is missing"):
        load_model(folder)

    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UlmfitError, match="model.safetensors is not a readable safetensors"):
        load_model(folder, with_encoder=False)
    (folder / "model.safetensors").unlink()
    with pytest.raises(UlmfitError, match="model.safetensors is missing"):
        load_model(folder, with_encoder=False)

    (folder / "config.json").write_text("{not json")
    with pytest.raises(UlmfitError, match="config.json is not valid JSON"):
        load_model(folder, with_encoder=False)
    (folder / "config.json").unlink()
    with pytest.raises(UlmfitError, match="config.json is missing"):
        load_model(folder, with_encoder=False)


def test_build_language_model_checks_config(tmp_path):
    cfg, lm = make_lm()
    assert isinstance(build_language_model({"kind": "language_model", "model": cfg.to_dict()}), LanguageModel)
    assert isinstance(build_language_model(cfg), LanguageModel)
    with pytest.raises(UlmfitError, match="kind='classifier'"):
        build_language_model({"kind": "classifier", "model": cfg.to_dict()})
    with pytest.raises(UlmfitError, match="unknown model setting"):
        build_language_model({"model": {**cfg.to_dict(), "bogus": 1}})
    save_model(tmp_path / "m", lm, {"kind": "language_model", "model": cfg})
    conf = read_json(tmp_path / "m" / "config.json")
    conf["model"]["n_hid"] = 64
    write_json(tmp_path / "m" / "config.json", conf)
    with pytest.raises(UlmfitError, match="does not fit its config.json"):
        load_language_model(tmp_path / "m", with_encoder=False)


def test_generate_command(tmp_path, stand_in, capsys):
    from ulmfit.cli import main

    cfg, lm = make_lm()
    save_model(tmp_path / "m", lm, {"kind": "language_model", "model": cfg}, stand_in)
    argv = ["generate", str(tmp_path / "m"), "The movie", "--n-words", "5", "--seed", "1"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("the movie") and len(first.split()) >= 3
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # seeded: reproducible
    assert main(["generate", str(tmp_path / "nope"), "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
