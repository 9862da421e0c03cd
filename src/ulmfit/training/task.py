"""The task protocol: what `fit` (ulmfit.training.loop) needs from a task. The loop knows nothing of text;
a task supplies the model, the batches and the losses. `LMTask` (training.lm_task) and `ClassifierTask`
(classifier.task) are the two in ulmfit.

Optional, read with getattr when present:
    task.monitor                   (history key, "max" | "min") that early stopping watches
                                   (default ("valid_loss", "min"))
    batches.iterate(start)         on train_batches' result: the batches from `start` on, to resume
                                   mid-epoch (else the loop skips the first `start`)

Batches are tensors or tuples/lists/dicts of tensors; the loop moves them to the device. `state` is the
task's carry between batches (the LM's hidden state, None for the classifier): None at the start of every
epoch and of validation; a nested list/tuple of tensors, saved in checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from torch import nn


class Batches(Protocol):
    """An epoch's training batches: sized, and the same for the same (epoch, seed)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


@runtime_checkable
class Task(Protocol):
    model: nn.Module  # with param_groups(): lists of parameters, input side first

    def train_batches(self, epoch: int, seed: int) -> Batches:
        """The training batches of a (global, 0-based) epoch: the same for the same arguments."""
        ...

    def valid_batches(self) -> Iterable[Any]: ...

    def train_step(self, model: nn.Module, batch: Any, state: Any) -> tuple[Any, float, Any]:
        """(loss, n, state). loss: a scalar tensor to backpropagate, or a pair (loss to backpropagate, loss to
        report) when they differ (the LM reports cross entropy without AR/TAR); n: items in the batch (they
        weight the epoch's mean loss)."""
        ...

    def eval_step(self, model: nn.Module, batch: Any, state: Any) -> tuple[dict[str, float], Any]:
        """(metric sums over the batch, state); called under no_grad, in eval mode."""
        ...

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Metrics from the validation's summed eval_step sums; must hold "loss" (logged as valid_loss)."""
        ...


@runtime_checkable
class MeasuredTask(Task, Protocol):
    """A task whose speed `training.probe.measure` can take (`ulmfit run` sizes its stages by it)."""

    def n_tokens(self, batch: Any) -> int:
        """Tokens in a batch."""
        ...
