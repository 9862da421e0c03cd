import csv
import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from ulmfit.errors import UlmfitError
from ulmfit.training import Phase, TrainConfig, fit, freeze_to, unfreeze
from ulmfit.training.lm_task import LMTask
from ulmfit.training.loop import CKPT, validate
from ulmfit.training.lr_find import lr_find
from ulmfit.training.optim import group_lrs, make_optimizer, set_hyper, trainable_groups
from ulmfit.training.schedules import make_schedule, one_cycle, stlr


class ToyLM(nn.Module):
    """Embedding + LSTM + tied decoder, with the LanguageModel interface and three groups."""

    def __init__(self, vocab=24, emb=16, hid=32, drop=0.1):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hid, batch_first=True)
        self.proj = nn.Linear(hid, emb)
        self.drop = nn.Dropout(drop)
        self.decoder = nn.Linear(emb, vocab)
        self.decoder.weight = self.emb.weight

    def encoder(self, x, state=None):
        h, state = self.rnn(self.emb(x), state)
        raw = self.proj(h)
        return raw, self.drop(raw), list(state)

    def forward(self, x, state=None):
        raw, out, state = self.encoder(x, state)
        return self.decoder(out), raw, out, state

    def param_groups(self):
        return [list(self.rnn.parameters()), list(self.proj.parameters()), [self.emb.weight, self.decoder.bias]]


def pattern_stream(n, vocab=24, seed=0):
    """A learnable language: documents `bos a a+1 a+2 ...` counting up through the words."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < n:
        a = int(rng.integers(9, vocab))
        out.append([2] + [9 + (a - 9 + i) % (vocab - 9) for i in range(int(rng.integers(10, 30)))])
    return np.concatenate(out)[:n].astype(np.uint16)


def make_task(seed=0, n_train=3000, bs=8, bptt=12, drop=0.1):
    torch.manual_seed(seed)
    return LMTask(ToyLM(drop=drop), pattern_stream(n_train), pattern_stream(800, seed=1), bs=bs, bptt=bptt)


CFG = dict(progress=False, plot=False, clip=0.5, threads=1)


def test_stlr_shape():
    total = 1000
    f = [stlr(t, total)[0] for t in range(total)]
    assert int(np.argmax(f)) == 100 and f[100] == pytest.approx(1.0)
    assert f[0] == pytest.approx(1 / 32)
    assert min(f) >= 1 / 32 - 1e-12 and f[-1] < 1 / 32 + 0.01
    assert np.all(np.diff(f[:101]) > 0) and np.all(np.diff(f[100:]) < 0)
    assert stlr(0, 1000)[1] is None


def test_one_cycle_shape():
    total = 400
    vals = [one_cycle(t, total) for t in range(total + 1)]
    f, m = np.array([v[0] for v in vals]), np.array([v[1] for v in vals])
    assert int(np.argmax(f)) == 100 and f[0] == pytest.approx(1 / 25) and f[-1] == pytest.approx(1e-5)
    assert m[0] == pytest.approx(0.95) and m[100] == pytest.approx(0.85) and m[-1] == pytest.approx(0.95)
    assert make_schedule("constant")(5, 10) == (1.0, None)
    with pytest.raises(UlmfitError):
        make_schedule("nope")


def test_discriminative_lrs_per_group():
    assert group_lrs(1.0, 3, 2.6) == pytest.approx([1 / 2.6**2, 1 / 2.6, 1.0])
    model = ToyLM()
    opt = make_optimizer(model, TrainConfig())
    assert len(opt.param_groups) == 3
    # the tied decoder weight is in one group only
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    set_hyper(opt, group_lrs(1e-2, 3, 2.6), beta1=0.8)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-2 / 2.6**2, 1e-2 / 2.6, 1e-2])
    assert all(g["betas"][0] == 0.8 for g in opt.param_groups)


def test_freeze_to():
    m = ToyLM()
    freeze_to(m, -1)
    assert trainable_groups(m) == [False, False, True]
    freeze_to(m, -2)
    assert trainable_groups(m) == [False, True, True]
    freeze_to(m, 1)
    assert trainable_groups(m) == [False, True, True]
    freeze_to(m, 0)
    assert trainable_groups(m) == [True, True, True]
    freeze_to(m, -1)
    unfreeze(m)
    assert all(p.requires_grad for p in m.parameters())


def test_frozen_phase_only_trains_the_last_group(tmp_path):
    task = make_task()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    fit(task, [Phase(epochs=1, lr=1e-2, freeze_to=-1, steps=5)], TrainConfig(**CFG), tmp_path)
    after = task.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("rnn.", "proj.")))
    assert not torch.equal(before["emb.weight"], after["emb.weight"])


def test_loss_goes_down_and_logs_are_written(tmp_path):
    task = make_task(drop=0.0)
    cfg = TrainConfig(**{**CFG, "plot": True})
    start = validate(task, task.model, torch.device("cpu"), cfg)
    hist = fit(task, [Phase(epochs=3, lr=3e-2)], cfg, tmp_path)
    assert len(hist) == 3 and [r["epoch"] for r in hist] == [1, 2, 3]
    assert hist[-1]["valid_loss"] < 0.5 * start["loss"]
    assert hist[-1]["accuracy"] > 0.5
    assert hist[-1]["perplexity"] == pytest.approx(math.exp(hist[-1]["valid_loss"]))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 3 and {"train_loss", "valid_loss", "accuracy", "perplexity"} <= set(rows[0])
    assert json.loads((tmp_path / "history.json").read_text()) == hist
    assert (tmp_path / "training_curve.png").stat().st_size > 1000
    assert (tmp_path / CKPT).exists() and json.loads((tmp_path / "checkpoint.json").read_text())["position"]["done"]
    # resuming a finished run does nothing and returns its history
    assert fit(make_task(), [Phase(epochs=3, lr=3e-2)], cfg, tmp_path, resume=True) == hist


PHASES = [Phase(epochs=1, lr=1e-2, freeze_to=-1), Phase(epochs=2, lr=5e-3)]


def _compare(h1, h2, m1, m2):
    assert len(h1) == len(h2)
    for a, b in zip(h1, h2):
        for k in ("train_loss", "valid_loss", "accuracy"):
            assert a[k] == pytest.approx(b[k], abs=1e-6), k
        assert a["step"] == b["step"]
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.allclose(s1[k], s2[k], atol=1e-6, rtol=0) for k in s1)


def test_resume_after_budget_stop_is_exact(tmp_path):
    cfg = TrainConfig(schedule="stlr", **CFG)
    ref_task = make_task()
    ref = fit(ref_task, PHASES, cfg, tmp_path / "ref")
    n1 = ref[0]["step"]
    stop_at = n1 + 9  # in the middle of epoch 2 (phase 2)
    cut = fit(make_task(), PHASES, TrainConfig(schedule="stlr", max_steps=stop_at, **CFG), tmp_path / "run")
    assert cut[-1]["partial"] and cut[-1]["step"] == stop_at and len(cut) == 2
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["position"]["batch"] == 9
    task = make_task(seed=123)  # other initial weights: the checkpoint must overwrite them
    torch.manual_seed(999)  # and another RNG state
    resumed = fit(task, PHASES, cfg, tmp_path / "run", resume=True)
    _compare(ref, resumed, ref_task.model, task.model)
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == resumed  # partial row replaced


class InterruptingTask(LMTask):
    """Sends itself SIGINT (as Ctrl-C would) during training step `at`."""

    at = None
    calls = 0

    def train_step(self, model, batch, state):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().train_step(model, batch, state)


def test_ctrl_c_checkpoints_and_resume_is_exact(tmp_path):
    cfg = TrainConfig(schedule="one_cycle", ckpt_every=7, **CFG)
    ref_task = make_task()
    ref = fit(ref_task, PHASES, cfg, tmp_path / "ref")
    task = make_task()
    task.__class__ = InterruptingTask
    task.at = ref[0]["step"] + ref[1]["step"] // 2 - ref[0]["step"] // 2 + 3
    with pytest.raises(KeyboardInterrupt):
        fit(task, PHASES, cfg, tmp_path / "run")
    pos = json.loads((tmp_path / "run" / "checkpoint.json").read_text())["position"]
    assert pos["step"] == task.at and not pos["done"]
    task2 = make_task(seed=5)
    resumed = fit(task2, PHASES, cfg, tmp_path / "run", resume=True)
    _compare(ref, resumed, ref_task.model, task2.model)


def test_resume_with_other_phases_is_refused(tmp_path):
    fit(make_task(), [Phase(epochs=1, lr=1e-2, steps=3)], TrainConfig(max_steps=2, **CFG), tmp_path)
    with pytest.raises(UlmfitError, match="other training phases"):
        fit(make_task(), [Phase(epochs=1, lr=2e-2, steps=3)], TrainConfig(**CFG), tmp_path, resume=True)


def test_phase_steps_cut_the_last_epoch(tmp_path):
    hist = fit(make_task(), [Phase(epochs=5, lr=1e-2, steps=30)], TrainConfig(**CFG), tmp_path)
    assert hist[-1]["step"] == 30 and not any(r.get("partial") for r in hist)


def test_lr_find(tmp_path):
    task = make_task()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    rng = torch.get_rng_state()
    lr = lr_find(task, TrainConfig(**CFG), tmp_path, start=1e-5, end=10, steps=60)
    assert math.isfinite(lr) and 1e-5 <= lr <= 10
    rows = list(csv.DictReader(open(tmp_path / "lr_find.csv")))
    assert 6 < len(rows) <= 60 and float(rows[1]["lr"]) > float(rows[0]["lr"])
    assert (tmp_path / "lr_find.png").stat().st_size > 1000
    assert json.loads((tmp_path / "lr_find.json").read_text())["suggested"] == lr
    after = task.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(rng, torch.get_rng_state())


def real_task(seed=0, drop_mult=1.0):
    from ulmfit.models.language_model import LanguageModel
    from ulmfit.models.config import preset

    torch.manual_seed(seed)
    model = LanguageModel(preset("tiny", vocab_size=24, drop_mult=drop_mult))
    return LMTask(model, pattern_stream(3000), pattern_stream(800, seed=1), bs=8, bptt=12)


def test_real_language_model_learns(tmp_path):
    task = real_task(drop_mult=0.1)
    cfg = TrainConfig(**CFG)
    start = validate(task, task.model, torch.device("cpu"), cfg)
    hist = fit(task, [Phase(epochs=2, lr=2e-2, lr_div=1.0)], cfg, tmp_path)
    assert hist[-1]["valid_loss"] < 0.7 * start["loss"] and hist[-1]["accuracy"] > 0.5


def test_real_language_model_resume_is_exact(tmp_path):
    # dropouts everywhere (embedding, locked, DropConnect): the RNG must be restored exactly
    cfg = TrainConfig(schedule="stlr", **CFG)
    ref_task = real_task()
    ref = fit(ref_task, PHASES, cfg, tmp_path / "ref")
    fit(real_task(), PHASES, TrainConfig(schedule="stlr", max_steps=ref[1]["step"] - 5, **CFG), tmp_path / "run")
    task = real_task(seed=7)
    resumed = fit(task, PHASES, cfg, tmp_path / "run", resume=True)
    _compare(ref, resumed, ref_task.model, task.model)


def test_suggest_lr_steepest_descent_and_inconclusive_sweeps():
    from ulmfit.training.lr_find import suggest_lr

    lrs = np.logspace(-5, 0, 11)
    falling_then_rising = [5.0, 4.9, 4.5, 3.0, 2.0, 1.8, 1.7, 1.75, 2.5, 4.0, 9.0]
    s = suggest_lr(lrs, falling_then_rising)
    assert s["steepest"] == lrs[3] and s["min_div10"] == lrs[6] / 10 and not s["inconclusive"]
    s = suggest_lr(lrs, np.linspace(1, 3, 11))  # the loss only ever rose
    assert s["inconclusive"] and s["steepest"] == lrs[0] / 10


def test_the_loop_does_not_sync_with_the_device_every_step(tmp_path, monkeypatch):
    """A loss pulled to the host each step (`.item()`, `float(t)`) makes a GPU wait for every step: the loop
    brings losses back every SYNC_EVERY steps; validation may sync per batch (it is short)."""
    from ulmfit.training import loop

    task = make_task(n_train=4000)
    steps = 60
    calls = {"n": 0}
    for name in ("item", "__float__", "tolist", "__bool__", "__int__"):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, **k):
            calls["n"] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    valid = {"n": 0}
    orig_validate = loop.validate

    def uncounted_validate(*a, **k):  # validation's own syncs are not the training steps'
        before = calls["n"]
        out = orig_validate(*a, **k)
        valid["n"] += calls["n"] - before
        return out

    monkeypatch.setattr(loop, "validate", uncounted_validate)
    fit(task, [Phase(epochs=1, lr=1e-2, steps=steps)], TrainConfig(progress=False, plot=False, bf16=False,
                                                                    clip=0.4), tmp_path)
    training_syncs = calls["n"] - valid["n"]
    assert valid["n"] > 0  # the counter counts
    assert training_syncs <= steps // loop.SYNC_EVERY + 2, training_syncs
