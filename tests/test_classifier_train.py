import torch

from ulmfit.classifier.task import BatchSettings, ClassifierTask, make_phases, parse_stages
from ulmfit.models.classifier import SequenceClassifier
from ulmfit.text.store import write_store
from ulmfit.training import TrainConfig, fit
from ulmfit.training.optim import trainable_groups

from classifier_helpers import StandInEncoder, synthetic_docs


def _task(tmp_path, n_docs=240):
    docs, labels, itos = synthetic_docs(n_docs)
    n_train = n_docs * 3 // 4
    store = write_store(tmp_path / "data", docs, itos, labels=labels, classes=["neg", "pos"],
                        splits={"train": range(n_train), "test": range(n_train, n_docs)})
    torch.manual_seed(0)
    model = SequenceClassifier(StandInEncoder(len(itos), emb=16, hidden=24), 2, emb_size=16, bptt=10, max_len=30)
    return ClassifierTask(model, store.split("train"), store.split("test"), 2, BatchSettings(bs=16))


def _cfg(**kw):
    return TrainConfig(schedule="stlr", betas=(0.7, 0.99), moms=None, progress=False, plot=False, **kw)


def test_gradual_unfreezing_trains_exactly_the_intended_groups(tmp_path):
    task = _task(tmp_path, 64)
    seen = []

    def record(model, row):
        seen.append(trainable_groups(model))

    before = [p.detach().clone() for p in task.model.parameters()]
    snapshots = []
    fit(task, make_phases(), _cfg(max_steps=None), tmp_path / "run",
        on_epoch_end=lambda m, r: (record(m, r), snapshots.append([p.detach().clone() for p in m.parameters()])))
    F, T = False, True
    assert seen == [[F, F, F, F, T], [F, F, F, T, T], [F, F, T, T, T], [T] * 5, [T] * 5]
    # frozen groups did not move: after epoch 1 only the head changed
    groups = task.model.param_groups()
    head = {id(p) for p in groups[-1]}
    for p, b, a in zip(task.model.parameters(), before, snapshots[0]):
        assert torch.equal(a, b) != (id(p) in head)


def test_synthetic_task_is_learned(tmp_path):
    task = _task(tmp_path)
    hist = fit(task, make_phases(parse_stages("0:8:3e-2")), _cfg(lr_div=1.0), tmp_path / "run")
    assert hist[-1]["accuracy"] >= 0.9, hist
    assert set(hist[-1]) >= {"valid_loss", "accuracy", "macro_f1", "train_loss"}
