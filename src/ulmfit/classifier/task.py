"""The classifier as a task of the one training loop (`ulmfit.training.fit`), and the paper's schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UlmfitError
from ..settings import PAPER_STAGES as PAPER_STAGES_TEXT
from ..settings import SettingsError
from ..text.store import labelled
from ..training import Phase
from ..batching.documents import SUBSET_SEED, ClassifierBatches
from .metrics import cm_from_sums, cm_to_sums, confusion, multilabel_scores, scores


def parse_stages(text: str, field: str = "stages", owner: str = "TrainClassifierSettings"):
    """'1:1:2e-2,2:1:1e-2,all:2:1e-3' -> ((freeze_to, epochs, lr), ...).

    Each stage is TRAINABLE:EPOCHS:LR, TRAINABLE being how many layer groups from the top train
    (1 = the head alone) or `all`; it becomes the loop's freeze_to (-TRAINABLE, or 0 for all).
    Errors name the settings field `field` of `owner` (SettingsError: the CLI words it as its flag)."""
    stages = []
    for k, part in enumerate(text.split(",")):
        bits = part.strip().split(":")
        try:
            if len(bits) != 3:
                raise ValueError
            top = None if bits[0].strip().lower() == "all" else int(bits[0])
            stages.append((0 if top is None else -top, int(bits[1]), float(bits[2])))
        except ValueError:
            raise SettingsError(
                owner, field, f"stage {k + 1} {part.strip()!r} is not TRAINABLE:EPOCHS:LR (e.g. 1:1:2e-2 or all:2:1e-3)"
            ) from None
        _, e, lr = stages[-1]
        if (top is not None and top < 1) or e < 1 or lr <= 0:
            raise SettingsError(
                owner, field, f"stage {k + 1} {part.strip()!r} needs TRAINABLE >= 1 (or all), EPOCHS >= 1 and LR > 0"
            )
    return tuple(stages)


# fast.ai's IMDb recipe (2018 lecture): the head alone, then the top groups one by one, then all of it
# for two epochs; each phase at a lower peak lr. (freeze_to, epochs, lr); lr is the head's, group k from
# the top gets lr / 2.6**k. Written once, as the settings' text.
PAPER_STAGES = parse_stages(PAPER_STAGES_TEXT)


def make_phases(stages=PAPER_STAGES, lr_mult: float = 1.0, epochs_mult: int = 1):
    return [Phase(epochs=e * epochs_mult, lr=lr * lr_mult, freeze_to=f) for f, e, lr in stages]


@dataclass
class BatchSettings:
    bs: int
    add_eos: bool = False
    backwards: bool = False
    limit_train: int | None = None
    limit_valid: int | None = None
    train_docs: np.ndarray | None = None  # document indices of the train split to use (None: all)
    valid_docs: np.ndarray | None = None  # likewise of the valid split


def holdout(labels, frac: float, seed: int = SUBSET_SEED):
    """(train_docs, valid_docs): a fixed random `frac` of the labelled documents held out for validation,
    stratified by class so a small hold-out keeps the class balance. Independent of the training seed, so changing
    the seed does not change what the model is validated on."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    ok = labelled(labels)
    strata = np.zeros(len(labels), np.int64) if labels.ndim == 2 else labels  # multi-label: one stratum
    train, valid = [], []
    for c in np.unique(strata[ok]):
        docs = rng.permutation(np.flatnonzero(ok & (strata == c)))
        n = max(1, round(frac * len(docs)))
        valid.append(docs[:n])
        train.append(docs[n:])
    if not valid:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


def training_docs(labels, valid_frac: float | None, limit_train: int | None):
    """(positions the classifier trains on, positions held out for validation or None) in a split with these
    labels: --valid-frac's hold-out and the unlabelled documents left out, then --limit-train's fixed random N.
    The baseline and self-training take the same documents."""
    from ..batching.documents import limit_docs

    labels = np.asarray(labels)
    keep, valid = np.arange(len(labels)), None
    if valid_frac:
        keep, valid = holdout(labels, valid_frac)
    return limit_docs(keep[labelled(labels[keep])], limit_train), valid


class ClassifierTask:
    """Documents of a token store's split -> logits of `model(ids, lengths)`; cross entropy (or binary
    cross entropy per label for multi-label). Valid metrics: loss, accuracy, macro_f1."""

    monitor = ("accuracy", "max")  # what early stopping watches (training.loop), as best/ does

    def __init__(
        self,
        model,
        train_split,
        valid_split,
        n_classes: int,
        settings: BatchSettings,
        multi_label: bool = False,
        pad_id: int = 1,
    ):
        self.model, self.n_classes, self.multi_label = model, n_classes, multi_label
        self.s, self.pad_id = settings, pad_id
        self.train_split, self.valid_split = train_split, valid_split
        self._train_cache: dict = {}
        kw: dict[str, Any] = dict(pad_id=pad_id, add_eos=settings.add_eos, backwards=settings.backwards)
        self.valid = ClassifierBatches(
            valid_split, settings.bs, limit=settings.limit_valid, docs=settings.valid_docs, **kw
        )
        self._kw = kw
        if self.valid.n_docs == 0:
            raise UlmfitError(f"the valid split {valid_split.name!r} has no labelled documents")
        if len(self.train_batches(0, 0)) == 0:
            raise UlmfitError(f"the train split {train_split.name!r} has no labelled documents")

    def train_batches(self, epoch, seed):
        key = (epoch, seed)
        if key not in self._train_cache:
            self._train_cache = {
                key: ClassifierBatches(
                    self.train_split,
                    self.s.bs,
                    shuffle=True,
                    seed=int(seed) * 100_003 + int(epoch),
                    limit=self.s.limit_train,
                    docs=self.s.train_docs,
                    **self._kw,
                )
            }
        return self._train_cache[key]

    def valid_batches(self):
        return self.valid

    def loss(self, logits, y):
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits.float(), y.float())
        return F.cross_entropy(logits.float(), y)

    @staticmethod
    def n_tokens(batch) -> int:
        return int(batch[1].sum())

    def train_step(self, model, batch, state):
        x, lengths, y = batch
        return self.loss(model(x, lengths), y), len(y), None

    def eval_step(self, model, batch, state):
        x, lengths, y = batch
        logits = model(x, lengths).float()
        n = len(y)
        sums = {"loss": float(self.loss(logits, y)) * n, "n": float(n)}
        if self.multi_label:
            pred, true = logits > 0, y > 0.5
            for k in range(self.n_classes):
                sums[f"tp.{k}"] = float((pred[:, k] & true[:, k]).sum())
                sums[f"fp.{k}"] = float((pred[:, k] & ~true[:, k]).sum())
                sums[f"fn.{k}"] = float((~pred[:, k] & true[:, k]).sum())
            sums["exact"] = float((pred == true).all(1).sum())
        else:
            cm = confusion(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), self.n_classes)
            sums.update(cm_to_sums(cm))
        return sums, None

    def summarize(self, sums):
        n = max(sums.get("n", 0.0), 1.0)
        if self.multi_label:
            get = lambda p: np.array([sums.get(f"{p}.{k}", 0.0) for k in range(self.n_classes)])  # noqa: E731
            sc = multilabel_scores(get("tp"), get("fp"), get("fn"), sums.get("exact", 0.0), n)
        else:
            sc = scores(cm_from_sums(sums, self.n_classes))
        return {"loss": sums.get("loss", float("nan")) / n, "accuracy": sc["accuracy"], "macro_f1": sc["macro_f1"]}


@torch.no_grad()
def predict_batches(model, batches, multi_label=False):
    """Probabilities and labels of a ClassifierBatches, in the batches' document order (`batches.keep`)."""
    model.eval()
    probs, labels, order = [], [], []
    for idx in batches.batches:
        x, lengths, y = batches.batch(idx)
        logits = model(x, lengths).float()
        probs.append(torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1))
        labels.append(y)
        order.append(idx)
    order = np.concatenate(order) if order else np.zeros(0, np.int64)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return torch.cat(probs).numpy()[inv], torch.cat(labels).numpy()[inv]
