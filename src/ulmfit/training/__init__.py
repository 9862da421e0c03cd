"""The one training loop (see `ulmfit.training.loop` for the task protocol), lr schedules, the lr
finder and the language-model task.

The names below load lazily so that importing `ulmfit.training.commands` (to build the CLI parser)
does not import torch.
"""

_EXPORTS = {
    "Phase": "loop",
    "TrainConfig": "loop",
    "fit": "loop",
    "freeze": "optim",
    "freeze_to": "optim",
    "unfreeze": "optim",
    "LMTask": "lm_task",  # lr_find: import it from ulmfit.training.lr_find (the module has its name)
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
