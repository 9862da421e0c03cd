"""Shipped language models: made by scripts/ship_lm.py, resolved by name wherever an LM folder is taken."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from ulmfit import pretrained
from ulmfit.artifacts import load_language_model
from ulmfit.cli import main
from ulmfit.errors import UlmfitError

from test_lm_cli import COMMON, make_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny QRNN LM pretrained here and shipped by the real script into a folder of its own."""
    root = tmp_path_factory.mktemp("ship")
    make_store(root / "corpus", [f"w{i}" for i in range(20)])
    assert main(["pretrain", str(root / "corpus"), "--out", str(root / "pre"), "--arch", "qrnn", "--sampled", "8",
                 "--epochs", "1", "--max-steps", "10"] + COMMON) == 0
    spec = importlib.util.spec_from_file_location("ship_lm", ROOT / "scripts" / "ship_lm.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    ship.main([str(root / "pre"), "tiny-en", "--corpus-desc", "counting words", "--command", "ulmfit pretrain ...",
               "--wall-time", "1 s", "--eval", f"corpus={root / 'corpus'}", "--dest", str(root / "shipped")])
    return root


def test_ship_script_writes_a_half_precision_folder_with_a_card(shipped, monkeypatch):
    folder = shipped / "shipped" / "tiny-en"
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "vocab.json",
                                                  "tokenizer.json", "card.json", "README.md"}
    card = json.loads((folder / "card.json").read_text())
    assert card["steps"] == 10 and card["tokens_seen"] == 10 * 4 * 10 and card["perplexity"]["corpus"] > 1
    assert "ulmfit pretrain ..." in (folder / "README.md").read_text()
    lm, _, _ = load_language_model(folder)
    ref, _, _ = load_language_model(shipped / "pre")
    assert lm.decoder.weight is lm.encoder.embedding.weight  # re-tied on load
    for (k, a), b in zip(lm.state_dict().items(), ref.state_dict().values()):
        assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-2, rtol=1e-2), k  # fp16 on disk


def test_a_shipped_name_works_wherever_a_folder_does(shipped, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "HERE", shipped / "shipped")
    assert pretrained.shipped_names() == ["tiny-en"]
    assert pretrained.resolve_lm("tiny-en") == shipped / "shipped" / "tiny-en"
    assert pretrained.resolve_lm(shipped / "pre") == shipped / "pre"  # a folder is taken as it is
    with pytest.raises(UlmfitError, match="no shipped model has that name.*shipped: tiny-en"):
        pretrained.resolve_lm("tiny-fr")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-en" in out and "qrnn" in out and "forward" in out
    assert main(["finetune-lm", str(shipped / "corpus"), "--from", "tiny-en", "--out", str(shipped / "ft"),
                 "--frozen-epochs", "1", "--frozen-steps", "3", "--epochs", "0"] + COMMON[2:]) == 0
    assert json.loads((shipped / "ft" / "config.json").read_text())["training"]["pretrained"] == "tiny-en"
    assert main(["evaluate-lm", "tiny-en", str(shipped / "corpus"), "--threads", "1"]) == 0
    assert main(["generate", "tiny-en", "w1 w2", "--n-words", "3", "--seed", "0"]) == 0


def test_a_model_trained_further_is_shipped_with_what_it_started_from(shipped, monkeypatch):
    monkeypatch.setattr(pretrained, "HERE", shipped / "shipped")
    assert main(["finetune-lm", str(shipped / "corpus"), "--from", "tiny-en", "--out", str(shipped / "further"),
                 "--frozen-epochs", "1", "--frozen-steps", "3", "--epochs", "1", "--max-steps", "6"] + COMMON[2:]) == 0
    spec = importlib.util.spec_from_file_location("ship_lm", ROOT / "scripts" / "ship_lm.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    ship.main([str(shipped / "further"), "tiny-en-2", "--corpus-desc", "more words", "--command", "finetune-lm ...",
               "--wall-time", "1 s", "--started-from", "tiny-en", "--eval", f"corpus={shipped / 'corpus'}",
               "--eval-split", "lm_train", "--dest", str(shipped / "shipped2")])
    folder = shipped / "shipped2" / "tiny-en-2"
    card = json.loads((folder / "card.json").read_text())
    before = json.loads((shipped / "shipped" / "tiny-en" / "card.json").read_text())
    assert card["started_from"] == {"name": "tiny-en", "tokens_seen": before["tokens_seen"],
                                    "trained_on": "counting words"}
    assert card["tokens_seen_in_all"] == before["tokens_seen"] + card["tokens_seen"] > card["tokens_seen"]
    readme = (folder / "README.md").read_text()
    assert "| started from | tiny-en" in readme and "corpus (lm_train, first" in readme
    assert card["perplexity"]["corpus"] > 1


def test_a_model_trained_further_twice_counts_every_token_back_to_the_first(shipped, monkeypatch):
    """en-qrnn was continued twice: the second card must add the first continuation's tokens *and* the original
    pretraining's (not only the model it started from's own run), and say both steps."""
    ship = _ship_module()
    dest = shipped / "chain"
    first = json.loads((shipped / "shipped" / "tiny-en" / "card.json").read_text())
    for n, start in ((2, "tiny-en"), (3, "tiny-en-2")):
        monkeypatch.setattr(pretrained, "HERE", shipped / "shipped" if start == "tiny-en" else dest)
        run = shipped / f"chain-run{n}"
        assert main(["finetune-lm", str(shipped / "corpus"), "--from", start, "--out", str(run), "--frozen-epochs",
                     "0", "--epochs", "1", "--max-steps", str(2 + n)] + COMMON[2:]) == 0
        ship.main([str(run), f"tiny-en-{n}", "--corpus-desc", "words, again", "--command", "finetune-lm ...",
                   "--wall-time", "1 s", "--started-from", start, "--dest", str(dest)])
    second = json.loads((dest / "tiny-en-2" / "card.json").read_text())
    third = json.loads((dest / "tiny-en-3" / "card.json").read_text())
    assert third["tokens_seen_in_all"] == first["tokens_seen"] + second["tokens_seen"] + third["tokens_seen"]
    assert third["started_from"]["tokens_seen"] == second["tokens_seen_in_all"]
    assert third["started_from"]["last_tokens"] == second["tokens_seen"]
    assert third["started_from"]["started_from"]["name"] == "tiny-en"
    line = next(x for x in (dest / "tiny-en-3" / "README.md").read_text().splitlines() if "started from" in x)
    # every run, oldest first, a corpus that repeats the run before's named once
    assert (f"| started from | tiny-en-2; the runs, oldest first: 1. {first['tokens_seen']:,} tokens of counting words; "
            f"2. {second['tokens_seen']:,} tokens of words, again; 3. (this one) {third['tokens_seen']:,} tokens of the "
            f"same corpus; {third['tokens_seen_in_all']:,} tokens in all |") == line


def _ship_module():
    spec = importlib.util.spec_from_file_location("ship_lm", ROOT / "scripts" / "ship_lm.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    return ship


def test_the_card_counts_epochs_after_a_fine_tunes_frozen_steps():
    epochs_of = _ship_module().epochs_of
    two_epochs = [{"phase": 1, "epoch": 1, "step": 500}, {"phase": 1, "epoch": 2, "step": 1000}]
    assert epochs_of(two_epochs, {"phases": [{"steps": None}]}) == 2.0
    # 300 frozen steps, then one epoch of 10,361 steps: 1.03 passes (not 10,661 / 300)
    fine = [{"phase": 1, "epoch": 1, "step": 300}, {"phase": 2, "epoch": 2, "step": 10661}]
    assert epochs_of(fine, {"phases": [{"steps": 300}, {"steps": None}]}) == 1.03
    # its only epoch cut by a step cap: the epoch's length is unknown
    assert epochs_of(fine, {"phases": [{"steps": 300}, {"steps": 5000}]}) is None
    assert epochs_of(two_epochs[:1], {"max_steps": 400, "phases": [{"steps": None}]}) is None
    assert epochs_of(two_epochs[:1], {"phases": [{"steps": None}]}) == 1.0
