"""The architecture registry as an extension point: a third encoder, defined and registered here alone,
trains as a language model and as a classifier through the public API with no change to ulmfit's source."""

import json

import pytest
import torch
from torch import nn

import ulmfit
from ulmfit import settings as S
from ulmfit.errors import UlmfitError
from ulmfit.models import registry
from ulmfit.models.config import CLASSIFIER_DROPOUTS, PRESETS, ModelConfig, classifier_dropouts, preset
from ulmfit.models.rnn_encoder import RNNEncoder

from test_api import TINY_CLAS, TINY_LM
from test_prepare import make_imdb_tar


class GRULayer(nn.Module):
    """One GRU layer under the layer contract: (x, state) -> (out, state), state a tuple of [1, bs, dim]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.gru = nn.GRU(n_in, n_out, batch_first=True)

    def forward(self, x, state=None):
        out, h = self.gru(x, None if state is None else state[0])
        return out, (h,)


class ToyGRU(RNNEncoder):
    """A GRU stack: the embedding, dropouts and layer groups come from RNNEncoder (no DropConnect)."""

    def make_layer(self, i, n_in, n_out, weight_p):
        return GRULayer(n_in, n_out)


TOY_CLAS_DROPOUTS = dict(embed_p=0.01, input_p=0.1, hidden_p=0.1, weight_p=0.0, output_p=0.2)
TOY = registry.ArchSpec(
    name="toy_gru", encoder=ToyGRU,
    presets={"tiny": {**PRESETS["tiny"], "n_hid": 24}, "toy_mini": {**PRESETS["tiny"], "emb_size": 8, "n_hid": 8}},
    classifier_dropouts=TOY_CLAS_DROPOUTS,
    int8_targets=None)  # no int8: stays float


@pytest.fixture
def toy():
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY.name)


def test_the_builtin_architectures_keep_their_specs():
    assert registry.names() == ["awd_lstm", "qrnn"] and list(S.ARCHS) == registry.names()
    assert set(S.MODEL_PRESETS) == set(PRESETS)
    for name in ("awd_lstm", "qrnn"):
        spec = registry.get(name)
        assert spec.presets is PRESETS and classifier_dropouts(name) == CLASSIFIER_DROPOUTS
        assert spec.int8_targets is not None
    with pytest.raises(UlmfitError, match="unknown model arch 'toy_gru'.*awd_lstm, qrnn"):
        registry.get("toy_gru")


def test_register_checks_the_spec(toy):
    with pytest.raises(UlmfitError, match="already registered"):
        registry.register(TOY)
    with pytest.raises(UlmfitError, match="classifier_dropouts.*hidden_p"):
        registry.register(registry.ArchSpec("toy2", ToyGRU, classifier_dropouts={"embed_p": 0.1}))
    with pytest.raises(UlmfitError, match="preset 'bad'.*zzz"):
        registry.register(registry.ArchSpec("toy2", ToyGRU, presets={"bad": {"zzz": 1}}))
    assert "toy2" not in registry.names() and "toy2" not in S.ARCHS


def test_settings_and_configs_know_a_registered_arch_and_forget_it_after(toy):
    S.PretrainSettings(arch="toy_gru", preset="toy_mini")
    cfg = preset("toy_mini", vocab_size=30, arch="toy_gru")
    assert (cfg.emb_size, cfg.n_hid) == (8, 8)
    with pytest.raises(UlmfitError, match="preset 'toy_mini'.*awd_lstm"):
        preset("toy_mini", vocab_size=30)
    registry.unregister("toy_gru")
    try:
        with pytest.raises(UlmfitError, match="arch"):
            S.PretrainSettings(arch="toy_gru")
        with pytest.raises(UlmfitError, match="preset"):
            S.PretrainSettings(preset="toy_mini")
        with pytest.raises(UlmfitError, match="unknown model arch"):
            ModelConfig(vocab_size=30, arch="toy_gru")
    finally:
        registry.register(TOY)  # for the fixture's teardown


def test_a_third_architecture_trains_as_lm_and_classifier_through_the_public_api(toy, tmp_path):
    torch.set_num_threads(1)
    tar = make_imdb_tar(tmp_path / "aclImdb_v1.tar.gz", n=20)
    ulmfit.prepare("imdb", str(tar), tmp_path / "data", S.ImdbSettings(quiet=True))
    ulmfit.tokenize(tmp_path / "data", S.TokenizeSettings(min_freq=1, workers=1, quiet=True))
    hist = ulmfit.pretrain(tmp_path / "data", tmp_path / "lm", S.PretrainSettings(**{**TINY_LM, "arch": "toy_gru"}))
    assert hist[-1]["step"] == 8
    lm_model = json.loads((tmp_path / "lm" / "config.json").read_text())["model"]
    assert lm_model["arch"] == "toy_gru" and lm_model["n_hid"] == 24  # the toy's own "tiny" preset

    # frozen, then all layers: gradual unfreezing over the toy's layer groups
    ulmfit.train_classifier(tmp_path / "data", tmp_path / "clas", lm=tmp_path / "lm",
                            settings=S.TrainClassifierSettings(**TINY_CLAS))
    clas_model = json.loads((tmp_path / "clas" / "config.json").read_text())["model"]
    assert clas_model["arch"] == "toy_gru"
    assert {k: clas_model[k] for k in TOY_CLAS_DROPOUTS} == TOY_CLAS_DROPOUTS  # the toy's classifier dropouts
    report = ulmfit.evaluate(tmp_path / "clas", tmp_path / "data", S.EvaluateSettings(quiet=True))
    assert report["n"] == 40 and 0 <= report["accuracy"] <= 1

    clf = ulmfit.TextClassifier.load(tmp_path / "clas")
    assert isinstance(clf.model.encoder.encoder, ToyGRU)
    preds = clf.predict(["a great film", "awful"])
    assert [p["label"] in ("neg", "pos") for p in preds] == [True, True]
    # int8: the toy names nothing to quantize, so it stays float and predicts the same
    q = ulmfit.TextClassifier.load(tmp_path / "clas", int8=True)
    assert not any(type(m).__module__.startswith("torch.ao") for m in q.model.modules())
    assert q.predict(["a great film", "awful"]) == preds
