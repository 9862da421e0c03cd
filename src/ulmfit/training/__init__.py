"""The one training loop (see `ulmfit.training.loop` for the task protocol), lr schedules, the lr
finder and the language-model task."""

from .loop import Phase, TrainConfig, fit
from .optim import freeze, freeze_to, unfreeze

__all__ = ["Phase", "TrainConfig", "fit", "freeze", "freeze_to", "unfreeze"]
