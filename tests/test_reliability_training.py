"""Reliability of training and `ulmfit run` (issue 23, causes 7-9): BPT3C's memory with one very long
document, the end-of-epoch work after a kill right after an epoch's checkpoint, the run folder's bookkeeping."""

import dataclasses
import fcntl
import json

import pytest
import torch

from ulmfit.batching.documents import pad_collate
from ulmfit.errors import UlmfitError
from ulmfit.training import Phase, TrainConfig, fit
from ulmfit.training import loop

from classifier_helpers import synthetic_store, tiny_classifier, one_thread  # noqa: F401 (autouse)
from test_training import make_task


# ---------------------------------------------------------------- 7. BPT3C memory and one very long document


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
def test_one_long_document_does_not_make_the_batch_embed_its_length(arch):
    bptt, max_len, long = 7, 20, 2000
    m = tiny_classifier(n_classes=3, arch=arch, bptt=bptt, max_len=max_len).eval()  # eval: no dropout, see below
    g = torch.Generator().manual_seed(3)
    lens = (long, 5, 9, 40, 120, 3, 26, 8)  # 40 and 120 end past the first embedded span: several spans
    x, n = pad_collate([torch.randint(9, 40, (k,), generator=g).numpy() for k in lens])
    enc = m.encoder.encoder
    emb = enc.embedding.weight
    calls = []  # (rows, tokens) of every tensor the embedding is asked to produce
    plain_embed, plain_forward = enc.embed, enc.forward

    def recording(ids):
        calls.append(tuple(ids.shape))
        return plain_embed(ids)

    enc.embed = recording

    def train_step():
        calls.clear()
        m.zero_grad(set_to_none=True)
        out = m(x, n)
        (out * torch.arange(1, 4)).sum().backward()
        return out.detach(), emb.grad.clone()

    once = train_step()
    bound = len(lens) * 4 * (max_len + bptt)  # a few pooled spans of the whole batch: independent of `long`
    assert max(r * t for r, t in calls) <= bound, calls
    # documents that ended drop out: past the short ones, only the long one's row is embedded
    assert sum(r * t for r, t in calls) <= long + bound, sum(r * t for r, t in calls)
    with torch.no_grad():  # predict: no graph to save, so every chunk embeds itself
        calls.clear()
        m(x, n)
        assert max(r * t for r, t in calls) <= len(lens) * bptt, calls
    # the spans give the per-chunk result and gradients (eval mode: both ways compute the same function)
    enc.forward = lambda ids, state=None, embedded=None: plain_forward(ids, state)
    per_chunk = train_step()
    assert torch.allclose(once[0], per_chunk[0], atol=1e-6)
    assert torch.allclose(once[1], per_chunk[1], atol=1e-6) and once[1].abs().sum() > 0


# ------------------------------------------------- 8. the work after an epoch's checkpoint, redone on resume


class Killed(Exception):
    """Stands for the process dying (a kill) right after an epoch's checkpoint was written."""


def _kill_after_checkpoint(monkeypatch, epoch):
    """write_logs (the first thing after the checkpoint) dies once, when `epoch` epochs are done."""
    plain = loop.write_logs

    def dying(out_dir, history, *a, **k):
        if len(history) == epoch and not history[-1].get("partial"):
            monkeypatch.setattr(loop, "write_logs", plain)
            raise Killed
        return plain(out_dir, history, *a, **k)

    monkeypatch.setattr(loop, "write_logs", dying)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("killed_epoch", [2, 3])  # 3: the last one, whose checkpoint says "done"
def test_a_kill_between_checkpoint_and_epoch_end_work_is_made_good_on_resume(tmp_path, monkeypatch, killed_epoch):
    phases, cfg = [Phase(epochs=3, lr=1e-2)], TrainConfig(progress=False, plot=False, threads=1)
    clean = {}
    fit(make_task(), phases, cfg, tmp_path / "clean",
        on_epoch_end=lambda m, row: clean.update({row["epoch"]: _snapshot(m)}))
    seen = {}  # the last model each epoch's end-of-epoch work saw, over the killed run and its resume

    def record(m, row):
        seen[row["epoch"]] = _snapshot(m)

    _kill_after_checkpoint(monkeypatch, killed_epoch)
    with pytest.raises(Killed):
        fit(make_task(), phases, cfg, tmp_path / "run", on_epoch_end=record)
    assert sorted(seen) == list(range(1, killed_epoch))
    resumed = fit(make_task(seed=7), phases, cfg, tmp_path / "run", resume=True, on_epoch_end=record)
    assert sorted(seen) == [1, 2, 3]
    for e in seen:
        assert all(torch.equal(seen[e][k], clean[e][k]) for k in clean[e]), e
    history = json.loads((tmp_path / "clean" / "history.json").read_text())
    assert json.loads((tmp_path / "run" / "history.json").read_text()) == resumed
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in history] == [1, 2, 3]
    assert [r["valid_loss"] for r in resumed] == [r["valid_loss"] for r in history]


def test_a_killed_classifier_keeps_the_clean_runs_best_epoch(tmp_path, monkeypatch):
    import ulmfit
    from safetensors.torch import load_file

    from ulmfit.settings import TrainClassifierSettings

    synthetic_store(tmp_path / "data", n_docs=120, n_test=40)
    settings = TrainClassifierSettings(preset="tiny", stages="all:4:3e-2", bs=16, threads=1, quiet=True)
    ulmfit.train_classifier(tmp_path / "data", tmp_path / "clean", settings=settings)
    best = json.loads((tmp_path / "clean" / "best" / "metrics.json").read_text())["epoch"]

    _kill_after_checkpoint(monkeypatch, best)  # the epoch that is the best one: its best/ update is what dies
    with pytest.raises(Killed):
        ulmfit.train_classifier(tmp_path / "data", tmp_path / "run", settings=settings)
    ulmfit.train_classifier(tmp_path / "data", tmp_path / "run", settings=dataclasses.replace(settings, resume=True))

    def untimed(name, run):
        rows = json.loads((tmp_path / run / name).read_text())
        rows = rows if name == "history.json" else [rows]
        return [{k: v for k, v in r.items() if k not in ("time", "step_s")} for r in rows]

    for name in ("best/metrics.json", "metrics.json", "history.json"):
        assert untimed(name, "run") == untimed(name, "clean"), name
    a, b = (load_file(str(tmp_path / d / "best" / "model.safetensors")) for d in ("clean", "run"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "run" / "training_curve.png").exists() and (tmp_path / "run" / "log.csv").exists()


# ---------------------------------------------------------------------------------- 9. `ulmfit run` bookkeeping


def _run(run_cli, tmp_path, *extra):
    # a missing source: any stage that starts fails at once with an error naming it
    return run_cli("run", "tiny", "--source", tmp_path / "missing.tar.gz", "--out", tmp_path / "run", "--quiet", *extra)


def test_a_second_run_on_one_folder_is_refused_while_the_first_holds_it(tmp_path, run_cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stages.json").write_text('{"prepare": {"key": "k", "status": "done"}}')
    with open(out / ".run.lock", "a") as held:  # another `ulmfit run` on this folder
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = _run(run_cli, tmp_path)
        assert code == 1 and "another `ulmfit run` is using" in err and ".run.lock" in err, err
        assert (out / "stages.json").read_text() == '{"prepare": {"key": "k", "status": "done"}}'
        fcntl.flock(held, fcntl.LOCK_UN)
    code, _, err = _run(run_cli, tmp_path)  # free again: the run starts (and meets the missing source)
    assert code == 1 and "another" not in err and "missing.tar.gz" in err, err
    with open(out / ".run.lock", "a") as f:  # and the lock went with the run that held it
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize("text", ['{"prepare": {"key": "k", "stat', "[1, 2]", '{"prepare": "done"}', "\xff\xfe"])
def test_a_damaged_stages_json_is_a_clear_error_that_keeps_it(tmp_path, run_cli, text):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stages.json").write_bytes(text.encode("latin-1"))
    code, _, err = _run(run_cli, tmp_path)
    assert code == 1 and str(out / "stages.json") in err and "--from prepare" in err, err
    assert (out / "stages.json").read_bytes() == text.encode("latin-1")  # nothing lost: the user decides
    code, _, err = _run(run_cli, tmp_path, "--from", "prepare")  # the way out it names: redo every stage
    assert code == 1 and "missing.tar.gz" in err and "stages.json" in err, err  # it warned, then started


@pytest.mark.parametrize("stage", ["pretrain", "classifier-bwd", "self_train"])
def test_from_a_stage_the_run_does_not_have_is_an_error_naming_its_stages(tmp_path, run_cli, stage):
    code, _, err = _run(run_cli, tmp_path, "--from", stage)
    assert code == 1 and f"--from {stage}" in err, err
    assert "prepare, tokenize, baseline, lr_find, lm, classifier, evaluate" in err, err
    assert not (tmp_path / "run" / "stages.json").exists()


def test_the_stages_a_run_has_are_the_stages_it_runs():
    from ulmfit.run.config import load_config
    from ulmfit.run.runner import stage_names

    cfg = load_config("tiny")
    assert stage_names(cfg) == ["prepare", "tokenize", "baseline", "lr_find", "lm", "classifier", "evaluate"]
    cfg["classifier"]["backwards"] = True
    cfg["pretrain"]["mode"] = "corpus"
    assert stage_names(cfg) == ["prepare", "tokenize", "baseline", "pretrain", "lr_find", "finetune_lm", "classifier",
                                "pretrain-bwd", "finetune_lm-bwd", "classifier-bwd", "evaluate"]
    with pytest.raises(UlmfitError, match="--from lm: this run has no stage 'lm'"):
        from ulmfit.run.runner import check_force_from

        check_force_from(cfg, "lm")
