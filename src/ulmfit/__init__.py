"""ulmfit: text classifiers by transfer learning from an AWD-LSTM language model (ULMFiT)."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy so that `import ulmfit` (and `ulmfit --help`) does not import torch.
    if name == "TextClassifier":
        from .inference import TextClassifier

        return TextClassifier
    raise AttributeError(name)
