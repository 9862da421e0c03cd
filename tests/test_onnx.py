"""ONNX export (`export-classifier --onnx [--int8]`) and the onnxruntime backend (`TextClassifier.load(backend="onnx")`,
`predict --onnx`): the same probabilities as the torch model, for both architectures, both reading directions and
both kinds of label, on texts shorter than a chunk, of several chunks (beyond max_len) and empty."""

import json
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from classifier_helpers import edit_json, one_thread  # noqa: F401 (autouse)

from ulmfit.errors import UlmfitError
from ulmfit.inference import TextClassifier

BPTT, MAX_LEN = 5, 12  # tiny chunks: a 30-word text is 7 chunks, and pools only its last 12 positions
TEXTS = ["", "w3", "w0 w4 w5", " ".join(f"w{k % 20}" for k in range(30)), "w1 w7 w9 w2 w2 w8 w6 w5 w11",
         " ".join(f"w{(3 * k) % 20}" for k in range(13))]
TOL = 1e-4  # float32 ONNX vs torch, probabilities
INT8_TOL = 0.05  # int8 ONNX (onnxruntime's dynamic quantization) vs float torch, probabilities (measured: ~1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny classifier per architecture, trained here (the QRNN one reading backwards), on one thread."""
    import torch

    import ulmfit
    from classifier_helpers import synthetic_store
    from ulmfit.settings import TrainClassifierSettings

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("onnx")
    synthetic_store(root / "data", n_docs=60, n_test=20)
    out = {}
    for arch, backwards in (("awd_lstm", False), ("qrnn", True)):
        out[arch] = root / arch
        ulmfit.train_classifier(root / "data", out[arch], settings=TrainClassifierSettings(
            preset="tiny", arch=arch, backwards=backwards, stages="all:1:1e-2", bs=16, bptt=BPTT, max_len=MAX_LEN,
            threads=1, quiet=True))
    return out


def variant(trained, tmp_path, arch, backwards, multi_label):
    """The trained folder of `arch`, as a forward/backward, single/multi-label classifier (the same weights: what
    changes is how the input is fed and how the logits are read)."""
    folder = tmp_path / f"{arch}-{int(backwards)}-{int(multi_label)}"
    shutil.copytree(trained[arch], folder)
    edit_json(folder / "config.json", **{"classifier.backwards": backwards, "classifier.multi_label": multi_label})
    return folder


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("multi_label", [False, True])
def test_onnx_gives_the_torch_probabilities(trained, tmp_path, arch, backwards, multi_label):
    folder = variant(trained, tmp_path, arch, backwards, multi_label)
    torch_clf = TextClassifier.load(folder)
    out = torch_clf.export(tmp_path / "exp", onnx=True)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["onnx"]["fixed_len"] == (arch == "qrnn") and cfg["onnx"]["chunk_len"] == BPTT
    onnx_clf = TextClassifier.load(out, backend="onnx", threads=1)
    assert onnx_clf.backend == "onnx" and not onnx_clf.int8
    want = torch_clf.predict_proba(TEXTS)
    for bs in (len(TEXTS), 4, 1):  # one batch (documents leave it as they end), several, one text each
        got = onnx_clf.predict_proba(TEXTS, bs=bs)
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    assert onnx_clf.predict(TEXTS) == torch_clf.labels_of(onnx_clf.predict_proba(TEXTS))
    # the export is also a complete torch folder (explain, evaluate and `load()` read its float weights)
    np.testing.assert_allclose(TextClassifier.load(out).predict_proba(TEXTS), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
def test_int8_onnx_loads_and_predicts_close_to_float(trained, tmp_path, run_cli, arch):
    code, stdout, err = run_cli("export-classifier", trained[arch], tmp_path / "i8", "--onnx", "--int8")
    assert code == 0, err
    assert "ONNX" in stdout
    clf = TextClassifier.load(tmp_path / "i8", backend="onnx", threads=1)
    assert clf.int8
    want = TextClassifier.load(trained[arch], int8=False).predict_proba(TEXTS)
    got = clf.predict_proba(TEXTS)
    assert np.abs(got - want).max() < INT8_TOL
    with pytest.raises(UlmfitError, match="int8, not float32"):
        TextClassifier.load(tmp_path / "i8", backend="onnx", int8=False)
    if arch == "qrnn":  # the light graph: per layer one int8 input for three gate products, no Where in each step
        import onnx

        ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "i8" / "chunk.onnx")).graph.node)
        n_layers = json.loads((tmp_path / "i8" / "config.json").read_text())["model"]["n_layers"]
        assert ops["MatMulInteger"] == 3 * n_layers and ops["DynamicQuantizeLinear"] == n_layers, ops
        assert ops["Where"] < BPTT, ops
    # predict --onnx on the CLI: the same rows as the backend in Python
    code, stdout, err = run_cli("predict", tmp_path / "i8", *TEXTS[1:3], "--onnx", "--threads", "1")
    assert code == 0, err
    assert [json.loads(line) for line in stdout.splitlines()] == clf.predict(TEXTS[1:3])


def test_export_errors_and_backend_errors(trained, tmp_path):
    folder = trained["awd_lstm"]
    clf = TextClassifier.load(folder)
    with pytest.raises(UlmfitError, match="is the classifier folder itself"):
        clf.export(folder, onnx=True)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UlmfitError, match="holds files an export does not write.*notes.txt"):
        clf.export(foreign, onnx=True)
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # an earlier ONNX export may be replaced; a plain export over it drops the graphs it no longer describes
    out = clf.export(tmp_path / "exp", onnx=True)
    assert {"chunk.onnx", "head.onnx"} <= {p.name for p in out.iterdir()}
    clf.export(out, onnx=True, int8=True)
    assert TextClassifier.load(out, backend="onnx").int8
    clf.export(out)
    assert not (out / "chunk.onnx").exists() and "onnx" not in json.loads((out / "config.json").read_text())
    with pytest.raises(UlmfitError, match="not an ONNX export.*--onnx"):
        TextClassifier.load(out, backend="onnx")
    with pytest.raises(UlmfitError, match="unknown backend 'tf'"):
        TextClassifier.load(folder, backend="tf")
    # a damaged export names its file
    out = clf.export(tmp_path / "exp2", onnx=True)
    (out / "head.onnx").unlink()
    with pytest.raises(UlmfitError, match="head.onnx is missing"):
        TextClassifier.load(out, backend="onnx")
    edit_json(out / "config.json", **{"onnx.head": "../head.onnx"})
    with pytest.raises(UlmfitError, match="onnx.head"):
        TextClassifier.load(out, backend="onnx")


def test_the_registry_checks_the_onnx_kind():
    from test_registry import TOY

    from ulmfit.models import registry

    with pytest.raises(UlmfitError, match="onnx must be one of"):
        registry.register(registry.ArchSpec("toy3", TOY.encoder, onnx="yes"))
    assert registry.get("awd_lstm").onnx == "any_len" and registry.get("qrnn").onnx == "fixed_len"


def test_import_ulmfit_does_not_need_onnxruntime():
    code = ("import sys, ulmfit, ulmfit.inference, ulmfit.onnx_export; "
            "assert 'onnxruntime' not in sys.modules and 'onnx' not in sys.modules, 'imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
