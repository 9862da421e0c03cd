"""Early stopping (TrainConfig.patience): the last phase stops when the monitored metric has not improved for
`patience` epochs; the stages keep their best epoch (the classifier's best/, the LM folder itself)."""

import dataclasses
import json

import pytest
import torch

from test_training import ToyLM, pattern_stream

from ulmfit.training import Phase, TrainConfig, fit
from ulmfit.training.lm_task import LMTask
from ulmfit.training.loop import epochs_since_best


class ScriptedLM(LMTask):
    """An LM task whose validation loss follows a script (one value per validation)."""

    def __init__(self, script, **kw):
        torch.manual_seed(0)
        super().__init__(ToyLM(), pattern_stream(600), pattern_stream(200, seed=1), bs=4, bptt=10, **kw)
        self.script, self.calls = list(script), 0

    def summarize(self, sums):
        out = super().summarize(sums)
        out["loss"] = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return out


def cfg(**kw):
    return TrainConfig(progress=False, plot=False, threads=1, **kw)


def test_epochs_since_best():
    rows = [{"valid_loss": v} for v in (3.0, 2.0, 2.5, 2.0, 2.7)]
    assert epochs_since_best(rows, "valid_loss", "min") == 3  # ties do not reset: the first best counts
    assert epochs_since_best([{"accuracy": a} for a in (0.5, 0.7, 0.6)], "accuracy", "max") == 1
    assert epochs_since_best([], "accuracy", "max") == 0


def test_the_last_phase_stops_after_patience_epochs_without_improvement_and_stays_stopped(tmp_path):
    script = [3.0, 2.0, 2.5, 2.6, 2.7, 1.0]
    hist = fit(ScriptedLM(script), [Phase(epochs=6, lr=1e-3)], cfg(patience=2), tmp_path / "a")
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4] and hist[-1]["early_stop"]
    assert json.loads((tmp_path / "a" / "history.json").read_text())[-1]["early_stop"] is True
    # resuming a stopped run trains nothing more
    again = fit(ScriptedLM(script), [Phase(epochs=6, lr=1e-3)], cfg(patience=2), tmp_path / "a", resume=True)
    assert [r["epoch"] for r in again] == [1, 2, 3, 4]
    # without patience every epoch runs
    full = fit(ScriptedLM(script), [Phase(epochs=6, lr=1e-3)], cfg(), tmp_path / "b")
    assert len(full) == 6 and not any(r.get("early_stop") for r in full)


def test_earlier_phases_never_stop_early(tmp_path):
    # stale through the whole first phase (gradual unfreezing must run), then stale again in the last
    script = [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    hist = fit(ScriptedLM(script), [Phase(epochs=3, lr=1e-3), Phase(epochs=4, lr=1e-3)], cfg(patience=1),
               tmp_path / "c")
    assert [(r["phase"], r["epoch"]) for r in hist] == [(1, 1), (1, 2), (1, 3), (2, 4)]
    assert hist[-1]["early_stop"]


@pytest.mark.parametrize("patience", [None, 1])
def test_a_finished_last_epoch_is_not_marked_early(tmp_path, patience):
    hist = fit(ScriptedLM([3.0, 2.0, 2.5]), [Phase(epochs=3, lr=1e-3)], cfg(patience=patience), tmp_path / "d")
    assert len(hist) == 3 and not any(r.get("early_stop") for r in hist)


def test_a_language_model_folder_keeps_its_best_epoch(tmp_path, monkeypatch):
    import ulmfit.artifacts as artifacts
    from ulmfit.stages import lm as lm_stages

    saved = []
    monkeypatch.setattr(artifacts, "save_language_model", lambda out, model, cfg, text: saved.append(model))
    monkeypatch.setattr("ulmfit.text.encoder.TextEncoder.from_store", staticmethod(lambda store: None))
    save = lm_stages._saver(tmp_path, None, None)
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 2.0, 2.2], 1):
        save(epoch, {"epoch": epoch, "valid_loss": loss})
    assert saved == [1, 2, 4]  # a better epoch, or one as good (at resume: the same epoch, saved again)
    assert json.loads((tmp_path / "metrics.json").read_text())["epoch"] == 4
    resumed = lm_stages._saver(tmp_path, None, None, resume=True)  # the best so far is read back
    resumed(6, {"epoch": 6, "valid_loss": 2.1})
    resumed(7, {"epoch": 7, "valid_loss": 1.5})
    assert saved == [1, 2, 4, 7]
    fresh = lm_stages._saver(tmp_path, None, None)  # a new run does not compare with an old one's files
    fresh(1, {"epoch": 1, "valid_loss": 9.0})
    assert saved == [1, 2, 4, 7, 1]


def test_a_classifier_stops_when_its_hold_out_accuracy_stalls_and_keeps_the_best(tmp_path):
    import ulmfit
    from classifier_helpers import synthetic_store
    from ulmfit.settings import TrainClassifierSettings

    torch.set_num_threads(1)
    synthetic_store(tmp_path / "data", n_docs=200, n_test=40)
    s = TrainClassifierSettings(preset="tiny", stages="all:12:3e-2", bs=16, bptt=10, max_len=30, valid_frac=0.2,
                                patience=2, threads=1, quiet=True)
    hist = ulmfit.train_classifier(tmp_path / "data", tmp_path / "c", settings=s)
    acc = [r["accuracy"] for r in hist]
    assert len(hist) < 12 and hist[-1]["early_stop"], acc  # learnable fast, then nothing left to gain
    assert epochs_since_best(hist, "accuracy", "max") == 2
    best = json.loads((tmp_path / "c" / "best" / "metrics.json").read_text())
    assert best["accuracy"] == max(acc) and best["epoch"] == acc.index(max(acc)) + 1


def test_a_classifiers_best_is_an_epoch_of_its_last_stage(tmp_path, monkeypatch):
    """An earlier stage of gradual unfreezing that ties or beats the last one on the hold-out is not kept: on
    IMDb a stage-2 epoch won best/ on 1,000 held-out reviews and cost two points on the test split."""
    import ulmfit
    import ulmfit.training
    from classifier_helpers import synthetic_store
    from ulmfit.settings import TrainClassifierSettings

    script = {False: [(1, 0.90), (2, 0.95), (3, 0.80), (3, 0.85), (3, 0.84)], True: [(3, 0.83), (3, 0.86)]}

    def scripted_fit(task, phases, cfg, out, resume=False, on_epoch_end=None, identity=None):
        assert len(phases) == 3
        rows = [{"phase": p, "epoch": e, "step": e, "accuracy": a} for e, (p, a) in enumerate(script[resume], 1)]
        for row in rows:
            on_epoch_end(task.model, row)
        return rows

    monkeypatch.setattr(ulmfit.training, "fit", scripted_fit)
    synthetic_store(tmp_path / "data", n_docs=60, n_test=20)
    s = TrainClassifierSettings(preset="tiny", stages="1:1:1e-2,2:1:1e-2,all:3:1e-2", bs=16, bptt=10, max_len=30,
                                valid_frac=0.2, threads=1, quiet=True)

    def kept():
        return json.loads((tmp_path / "c" / "best" / "metrics.json").read_text())

    ulmfit.train_classifier(tmp_path / "data", tmp_path / "c", settings=s)
    assert (kept()["phase"], kept()["accuracy"]) == (3, 0.85)  # not stage 2's 0.95
    ulmfit.train_classifier(tmp_path / "data", tmp_path / "c", settings=dataclasses.replace(s, resume=True))
    assert kept()["accuracy"] == 0.86  # the resumed run compares with the kept 0.85: 0.83 is not kept
