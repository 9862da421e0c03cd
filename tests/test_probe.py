"""The speed probe (ulmfit.training.probe): it must measure the speed a real run settles at, not first calls."""

import time

import torch

from ulmfit.training.loop import TrainConfig
from ulmfit.training.probe import measure

FIRST_CALL_S = 0.05  # what a new batch shape costs once (oneDNN's bf16 primitives, allocation) in the fake task


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def param_groups(self):
        return [list(self.lin.parameters())]

    def forward(self, x):
        return self.lin(x)


class FirstCallsCostTask:
    """Batches of a new length each (like variable-bptt LM batches); the first step of a length sleeps, as the
    first call of a new shape pays for kernel choice; later steps of that length do not."""

    def __init__(self):
        self.model = Linear()
        self.seen: set = set()
        self.calls = 0

    def _batches(self, lengths):
        return [torch.randn(2, n, 8) for n in lengths]

    def train_batches(self, epoch, seed):
        return self._batches(range(20, 40))  # every batch a new shape

    def valid_batches(self):
        return self._batches([50, 51, 52])

    def n_tokens(self, batch):
        return int(batch.shape[0] * batch.shape[1])

    def _cost(self, batch, kind):
        key = (kind, tuple(batch.shape))
        if key not in self.seen:
            self.seen.add(key)
            time.sleep(FIRST_CALL_S)

    def train_step(self, model, batch, state):
        self.calls += 1
        self._cost(batch, "train")
        loss = model(batch).pow(2).mean()
        return loss, batch.shape[1], state

    def eval_step(self, model, batch, state):
        self._cost(batch, "eval")
        return {"loss": float(model(batch).pow(2).sum())}, state


def test_the_probe_times_the_steady_speed_not_the_first_call_of_each_shape():
    task = FirstCallsCostTask()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    got = measure(task, TrainConfig(threads=1, bf16=False), train_steps=6, eval_batches=2)
    # a first call spread over one batch's tokens would be >= FIRST_CALL_S / 78 s per token; the real steps
    # of this tiny model cost a few microseconds per token
    first_call_per_token = FIRST_CALL_S / (2 * 39)
    assert 0 < got["train_s_per_token"] < first_call_per_token / 5, got
    assert 0 < got["eval_s_per_token"] < FIRST_CALL_S / (2 * 52) / 5, got
    assert task.calls == 12  # each of the 6 batches once untimed, once timed
    # and the probe leaves no trace in the model
    assert all(torch.equal(before[k], v) for k, v in task.model.state_dict().items())
