"""ulmfit: text classifiers by transfer learning from a language model (ULMFiT).

Stage functions (each takes paths and a settings object from `ulmfit.settings`; see `ulmfit.api`):
    prepare, tokenize, pretrain, finetune_lm, evaluate_lm, lr_find_lm, generate, train_classifier, self_train,
    evaluate, predict, export_classifier, baseline (TF-IDF + logistic regression: what you get without the LM)
Serving: TextClassifier.load(folder).predict(texts).
Shipped language models: `ulmfit.pretrained` (names usable wherever an LM folder is taken).
"""

__version__ = "0.1.0"

# The stage modules import torch only inside their functions, so `import ulmfit` stays light.
# api.__all__ is the one list of the stage functions.
from .api import *  # noqa: F403
from .api import __all__ as _stages

__all__ = [*_stages, "TextClassifier"]  # noqa: F405 (TextClassifier: lazy, below)


def __getattr__(name):
    # Lazy so that `import ulmfit` (and `ulmfit --help`) does not import torch.
    if name == "TextClassifier":
        from .inference import TextClassifier

        return TextClassifier
    raise AttributeError(name)
