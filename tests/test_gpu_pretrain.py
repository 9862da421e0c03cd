"""scripts/gpu_pretrain.py (both directions at once, steps fitted to a time budget) and scripts/ship_lm.py,
run on the CPU with a tiny model: the path that built the shipped models, checked before a GPU is lent."""

import json
import random
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from ulmfit.artifacts import load_language_model

ROOT = Path(__file__).resolve().parent.parent


def run(*cmd, timeout=300):
    r = subprocess.run([sys.executable, *map(str, cmd)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


def test_gpu_pretrain_trains_both_directions_in_budget_and_ships_them(tmp_path):
    rng = random.Random(0)
    words = "the a film story good bad actor plot was is it and of review".split()
    with open(tmp_path / "c.jsonl", "w") as f:
        for _ in range(200):
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(40))}) + "\n")
    run("-m", "ulmfit", "prepare", "corpus", tmp_path / "c.jsonl", "--out", tmp_path / "corpus", "--lm-valid-frac", "0.1")
    run("-m", "ulmfit", "tokenize", tmp_path / "corpus", "--quiet")
    out = tmp_path / "runs"
    run("scripts/gpu_pretrain.py", tmp_path / "corpus", out, "--budget-s", "60", "--calib-steps", "5",
        "--preset", "tiny", "--bs", "4", "--bptt", "8", "--epochs", "50", "--threads", "1", "--valid-tokens", "300",
        "--pieces-mib", "0.01")
    info = json.loads((out / "gpu_pretrain.json").read_text())
    assert info["steps"] >= 10 and info["step_s"] > 0
    for d, backwards in (("fwd", False), ("bwd", True)):
        run_dir = out / f"run-{d}"
        assert not (run_dir / "checkpoint.safetensors").exists()
        assert info[d]["step"] == info["steps"]  # the schedule ended where it was fitted to end
        with safe_open(str(run_dir / "model.safetensors"), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        lm, config, _ = load_language_model(run_dir)
        assert config.backwards is backwards and lm.decoder.weight is lm.encoder.embedding.weight
        # the pieces (what a device call brings back) join into the same folder
        assert info[d]["pieces"] == len(list((out / "pieces").glob(f"run-{d}.tar.*"))) > 1
    run("scripts/pieces.py", "join", out / "pieces", tmp_path / "joined")
    for d in ("fwd", "bwd"):
        for f in (out / f"run-{d}").iterdir():
            assert (tmp_path / "joined" / f"run-{d}" / f.name).read_bytes() == f.read_bytes()
    shipped = json.loads(run("scripts/ship_lm.py", out / "run-bwd", "en-tiny", "--dest", tmp_path / "ship",
                             "--corpus-desc", "words", "--command", "gpu_pretrain.py", "--wall-time", "1 min",
                             "--machine", "a test").strip().splitlines()[-1])
    assert shipped["steps"] == info["steps"] and shipped["machine"] == "a test"
    assert shipped["epochs"] is None or shipped["epochs"] > 0
    lm, config, _ = load_language_model(tmp_path / "ship" / "en-tiny")
    assert config.backwards and "backward" in (tmp_path / "ship" / "en-tiny" / "README.md").read_text()
