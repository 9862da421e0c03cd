"""The training loop's structure: the task protocol, the single-process group, functions a reader can hold."""

import ast
from pathlib import Path

import torch
from torch import nn

from classifier_helpers import synthetic_docs
from test_training import make_task
from ulmfit.classifier.task import BatchSettings, ClassifierTask
from ulmfit.text.store import write_store
from ulmfit.training import distributed as D
from ulmfit.training import loop
from ulmfit.training.task import MeasuredTask, Task


def test_the_lm_and_the_classifier_tasks_follow_the_task_protocol(tmp_path):
    docs, labels, itos = synthetic_docs(40)
    store = write_store(tmp_path / "data", docs, itos, labels=labels, classes=["neg", "pos"],
                        splits={"train": range(30), "test": range(30, 40)})
    clas = ClassifierTask(nn.Linear(1, 1), store.split("train"), store.split("test"), 2, BatchSettings(bs=8))
    for task in (make_task(), clas):
        assert isinstance(task, Task) and isinstance(task, MeasuredTask)

    class NoEval:  # what fit cannot train: no eval_step
        model = nn.Linear(1, 1)

        def train_batches(self, epoch, seed):
            return []

        def valid_batches(self):
            return []

        def train_step(self, model, batch, state):
            return None

        def summarize(self, sums):
            return sums

    assert not isinstance(NoEval(), Task)


def test_one_process_trains_through_a_group_that_does_nothing():
    g = D.group()
    assert isinstance(g, D.Single) and (g.world, g.rank, g.main) == (1, 0, True)
    batch, losses, items, state, sums = (torch.ones(3, 2),), torch.ones(4), torch.full((4,), 2.0), [torch.ones(1)], {}
    assert g.shard(batch) is batch and g.train_share(batch) == (batch, 1.0)
    assert g.mean_losses(losses, items) == (losses, items)
    assert g.portable_state(state) is state and g.merge_sums(sums) is sums
    assert g.agree((True, False), at_sync=False) == (True, False)  # its own flags, at once
    model = nn.Linear(2, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for call in (g.average_gradients, g.broadcast_model, g.broadcast_buffers):
        call(model)
    g.barrier()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_no_function_of_the_training_loop_is_longer_than_a_reader_can_hold():
    tree = ast.parse(Path(loop.__file__).read_text())
    long = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > 60}
    assert not long, long
