"""The train-classifier stage: build the classifier from a fine-tuned LM, train it with the one loop,
save the classifier folder (last epoch in DIR, the last stage's best valid accuracy in DIR/best) and its
reports."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path
from typing import Any

from ..errors import UlmfitError
from ..io import check_output_dir
from ..settings import TrainClassifierSettings, identity
from .common import train_config


@dataclasses.dataclass
class Built:
    """What `_build` makes for train_classifier and the speed probe: the store, the model in its task, the
    phases, the loop's config, the folder's ClassifierConfig, and what the reports need."""

    store: Any
    task: Any
    phases: list
    cfg: Any  # training.TrainConfig
    config: Any  # artifacts.ClassifierConfig
    classes: list
    labels: Any  # np.ndarray: the training labels
    multi_label: bool
    encoder_text: Any  # text.encoder.TextEncoder
    settings: Any  # models.classifier.ClassifierSettings


def open_classifier_store(path, train_split, valid_split):
    from ..text.store import TokenStore

    path = Path(path)
    if not (path / "tokens" / "manifest.json").exists():
        raise UlmfitError(
            f"{path} is not a tokenized dataset folder: run `ulmfit prepare ... --out {path}` and "
            f"`ulmfit tokenize {path}` first"
        )
    store = TokenStore(path)
    if not store.classes:
        raise UlmfitError(f"{path / 'dataset.json'}: field 'classes' is empty: the dataset has no labels")
    if valid_split is None:
        valid_split = "valid" if store.has_split("valid") else "test"
    for name in (train_split, valid_split):
        if not store.has_split(name):
            raise UlmfitError(f"{path} has no split {name!r} (it has: {', '.join(store.split_names)})")
    return store, store.split(train_split), store.split(valid_split)


def text_encoder_of(store):
    """The tokenizer + vocab to save with the classifier: the store's (what its ids mean)."""
    from ..text.encoder import TextEncoder

    try:
        return TextEncoder.from_store(store)
    except UlmfitError as e:
        raise UlmfitError(f"{store.root}: cannot rebuild the text encoder the store was made with ({e})") from None


def _encoder_from_lm(lm_dir, store, backwards):
    """The fine-tuned LM's ModelConfig, encoder weights and reading direction (vocab mapped onto the store's)."""
    from .lm import load_pretrained_lm

    lm, lm_config = load_pretrained_lm(lm_dir, store)
    if backwards is not None and bool(backwards) != lm_config.backwards:
        raise UlmfitError(
            f"{Path(str(lm_dir)) / 'config.json'}: the language model reads "
            f"{'backwards' if lm_config.backwards else 'forwards'}, but backwards was set to {backwards}"
        )
    return lm.cfg, lm.encoder.state_dict(), lm_config.backwards


def _model(lm, store, s, classes, multi_label):
    """The classifier's model config, settings and model: the encoder from the fine-tuned LM `lm` (a fresh
    `s.preset` encoder without one), with the classifier's dropouts and a head over `classes`."""
    import torch

    from ..models.classifier import ClassifierSettings, build_classifier, head_dropouts
    from ..models.config import classifier_dropouts, preset

    torch.manual_seed(s.seed)
    if lm:
        mcfg, enc_state, backwards = _encoder_from_lm(lm, store, s.backwards)
    else:
        mcfg, enc_state = preset(s.preset, vocab_size=len(store.vocab), arch=s.arch), None
        backwards = bool(s.backwards)
        print(
            f"note: no language model: training a fresh {s.preset} encoder (ULMFiT starts from a fine-tuned LM)",
            file=sys.stderr,
        )
    # The classifier regularizes more than the LM (its arch's classifier dropouts), scaled by drop_mult.
    mcfg = dataclasses.replace(mcfg, **classifier_dropouts(mcfg.arch), drop_mult=s.drop_mult)
    settings = ClassifierSettings(
        classes=classes,
        head_hidden=list(s.head),
        head_dropouts=head_dropouts(mcfg.p("output_p"), len(s.head)),
        max_len=s.max_len,
        bptt=s.bptt,
        backwards=backwards,
        add_eos=s.eos,
        multi_label=multi_label,
        threshold=s.threshold,
    )
    model = build_classifier(mcfg, settings)
    if enc_state is not None:
        model.encoder.encoder.load_state_dict(enc_state)
    return mcfg, settings, model


def _training_record(data, lm, s, store, valid_split, pseudo, phases, cfg) -> dict:
    """What the classifier folder's config records of how it was trained: data, LM, splits, phases, loop config."""
    return {
        "data": str(data),
        "lm": None if lm is None else str(lm),
        "vocab_hash": store.vocab.hash,
        "train_split": s.train_split,
        "valid_split": valid_split.name,
        "valid_frac": s.valid_frac,
        "bs": s.bs,
        "limit_train": s.limit_train,
        "pseudo_labelled": 0 if pseudo is None else len(pseudo[0]),
        "phases": [dataclasses.asdict(p) for p in phases],
        "train": dataclasses.asdict(cfg),
    }


def _build(data, lm, s, pseudo=None):
    """Everything train_classifier trains: the store, the model inside its task, the phases, the loop's
    config and the folder config (shared with the speed probe)."""
    import numpy as np

    from ..artifacts import ClassifierConfig
    from ..classifier.task import BatchSettings, ClassifierTask, holdout, make_phases, parse_stages

    stages = parse_stages(s.stages)
    valid_name = s.train_split if s.valid_frac else s.valid_split
    store, train_split, valid_split = open_classifier_store(data, s.train_split, valid_name)
    if s.patience is not None and valid_split.name == "test":
        raise UlmfitError(
            "patience stops training on the validation score, and it would be the test split's here: "
            "hold out training documents to validate on (valid_frac) or give a valid split"
        )
    classes = list(store.classes)
    labels = np.asarray(train_split.labels)
    train_docs = valid_docs = None
    if s.valid_frac:
        train_docs, valid_docs = holdout(labels, s.valid_frac)
    limit_train = s.limit_train
    if pseudo is not None:
        train_split = _with_pseudo(store, train_split, s, *pseudo)
        labels, train_docs, limit_train = np.asarray(train_split.labels), None, None
    if s.multi_label and labels.ndim != 2:
        raise UlmfitError(
            f"{Path(data) / 'labels.npy'}: multi_label needs multi-hot rows [n_docs, n_classes] "
            "(prepared with label_sep, or several label_col)"
        )
    multi_label = labels.ndim == 2  # a multi-label dataset trains a multi-label classifier
    encoder_text = text_encoder_of(store)

    mcfg, settings, model = _model(lm, store, s, classes, multi_label)
    task = ClassifierTask(
        model,
        train_split,
        valid_split,
        len(classes),
        BatchSettings(
            bs=s.bs,
            add_eos=s.eos,
            backwards=settings.backwards,
            limit_train=limit_train,
            limit_valid=s.limit_valid,
            train_docs=train_docs,
            valid_docs=valid_docs,
        ),
        multi_label=multi_label,
        pad_id=mcfg.pad_id,
    )
    phases = make_phases(stages, s.lr_mult)
    cfg = train_config(
        s, lr_div=s.lr_div, max_steps=s.max_steps, moms=tuple(s.moms) if s.schedule == "one_cycle" else None
    )
    config = ClassifierConfig(mcfg, settings, _training_record(data, lm, s, store, valid_split, pseudo, phases, cfg))
    return Built(store, task, phases, cfg, config, classes, labels, multi_label, encoder_text, settings)


def _with_pseudo(store, train_split, s, docs, labels):
    """The labelled training documents (after --valid-frac and --limit-train, as without pseudo-labels) plus
    documents `docs` of the store labelled `labels` by a teacher (self-training): one split, "train+pseudo"."""
    import numpy as np

    from ..text.store import Split
    from ..classifier.task import training_docs

    keep, _ = training_docs(train_split.labels, s.valid_frac, s.limit_train)
    gold = train_split.index[keep]
    docs, labels = np.asarray(docs, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if len(docs) != len(labels) or np.isin(docs, gold).any() or len(np.unique(docs)) != len(docs):
        raise UlmfitError(
            "pseudo-labels: one label per document, each document once, none of them a labelled training document"
        )
    return Split(
        store, "train+pseudo", np.concatenate([gold, docs]), labels=np.concatenate([train_split.labels[keep], labels])
    )


def probe_classifier(data, lm, settings: TrainClassifierSettings) -> dict:
    """This machine's classifier speed on `data` (ulmfit.training.probe) and what an epoch holds: training
    and validation tokens, steps per epoch."""
    from ..training.probe import measure

    b = _build(data, lm, settings)
    train = b.task.train_batches(0, settings.seed)
    return {
        **measure(b.task, b.cfg),
        "train_tokens": int(train.lengths.sum()),
        "steps_per_epoch": len(train),
        "valid_tokens": int(b.task.valid.lengths.sum()),
        "n_train_docs": int(train.n_docs),
    }


def train_classifier(data, out, lm=None, settings: TrainClassifierSettings | None = None, pseudo=None):
    """Train a classifier on a tokenized labelled dataset, starting from the encoder of the language model
    `lm` (a folder or shipped name; None: a fresh encoder, for experiments) -> the history, or the
    suggested lr when settings.lr_find. pseudo: (document indices, class indices) of unlabelled documents
    labelled by a teacher, trained on beside the labelled ones (see `ulmfit.classifier.self_train`)."""
    from ..artifacts import save_classifier
    from ..io import write_json
    from ..training import fit

    from ..io import check_not_an_input
    from ..pretrained import resolve_lm

    s = settings or TrainClassifierSettings()
    check_output_dir(out, replaced=True)
    check_output_dir(Path(out) / "best", replaced=True)  # else refused only at the first best epoch
    check_not_an_input(out, {"DATA": data, "--lm": None if lm is None else resolve_lm(lm)})
    b = _build(data, lm, s, pseudo)
    task, phases, classes = b.task, b.phases, b.classes
    out = Path(out)
    if s.lr_find:
        return _lr_find(task, b.cfg, phases[0], out, s)
    if not s.quiet:
        n_params = sum(p.numel() for p in task.model.parameters())
        n_batches = len(task.train_batches(0, s.seed))
        print(
            f"training a {'backward' if b.settings.backwards else 'forward'} classifier ({n_params / 1e6:.1f}M "
            f"parameters, classes {classes}) on {task.train_batches(0, s.seed).n_docs:,} documents "
            f"({n_batches} batches/epoch), validating on {task.valid.n_docs:,} ({task.valid_split.name}"
            f"{', held out of training' if s.valid_frac else ''}); stages "
            + ", ".join(f"freeze_to {p.freeze_to} x{p.epochs} lr {p.lr:g}" for p in phases),
            file=sys.stderr,
        )

    best_path = out / "best" / "metrics.json"
    best = [_best_rank(best_path, len(phases)) if s.resume else (False, -1.0)]

    def on_epoch_end(m, row):
        save_classifier(out, m, b.config, b.encoder_text)
        write_json(out / "metrics.json", row)
        rank = _rank(row, len(phases))
        if rank > best[0]:
            best[0] = rank
            save_classifier(out / "best", m, b.config, b.encoder_text)
            write_json(best_path, row)

    labels_hash = hashlib.sha256(b.labels.tobytes()).hexdigest()[:16]
    history = fit(
        task,
        phases,
        b.cfg,
        out,
        resume=s.resume,
        on_epoch_end=on_epoch_end,
        identity=identity(
            s,
            ignore=("max_steps",),  # max_steps: a budget here, not the plan
            vocab=b.store.vocab.hash,
            labels=labels_hash,
            n_docs=int(b.store.manifest["n_docs"]),
            lm=None if lm is None else str(lm),
        ),
    )
    from ..training import distributed

    if not history or not distributed.is_main():  # under torchrun, rank 0 writes the reports
        return history
    final = history[-1]
    if not b.multi_label:
        report = write_confusion(task, out, classes, final)
        final = {**final, "macro_f1": report["macro_f1"]}
    print(
        f"wrote {out}: valid accuracy {final['accuracy']:.4f}, macro-F1 {final['macro_f1']:.4f} after "
        f"{final['step']} steps (best {best[0][1]:.4f} in {out / 'best'})"
        + (" (stopped early; resuming continues it)" if final.get("partial") else "")
    )
    return history


def _lr_find(task, cfg, first, out, s):
    """fastai's `learn.lr_find()` before fitting: the sweep runs with the first stage's groups trainable."""
    from ..training.lr_find import lr_find
    from ..training.optim import freeze_to

    if len(s.lr_find_range) != 2:
        raise UlmfitError("lr_find_range takes two numbers: start, end")
    freeze_to(task.model, first.freeze_to)
    start, end = s.lr_find_range
    lr = lr_find(task, cfg, out, start=start, end=end, steps=s.lr_find_steps)
    trainable = "all" if first.freeze_to == 0 else -first.freeze_to
    print(
        f"suggested lr for the first stage ({trainable} trainable group(s)): {lr:.2e} "
        f"(e.g. --stages {trainable}:{first.epochs}:{lr:.1e},...; plot in {out / 'lr_find.png'})"
    )
    return lr


def _rank(row: dict, n_phases: int) -> tuple[bool, float]:
    """How best/ orders epochs: any epoch of the last stage (all layers trained) before any of an earlier
    one, then hold-out accuracy. The earlier stages of gradual unfreezing are the way there, not endpoints:
    on IMDb a stage-2 epoch tied the best all-layer epoch on 1,000 held-out reviews (90.4 vs 90.3 %) and
    scored 89.8 % on the test split, where all-layer epochs score 91.8-91.9 (docs/benchmarks.md)."""
    return row.get("phase") == n_phases, float(row.get("accuracy", -1.0))


def _best_rank(path, n_phases: int) -> tuple[bool, float]:
    from ..io import read_json

    try:
        return _rank(read_json(path), n_phases)
    except (OSError, KeyError, ValueError, TypeError):
        return False, -1.0


def write_confusion(task, out, classes, row):
    """confusion.json + confusion.png for the final model on the valid split."""
    from ..classifier.metrics import confusion, write_report
    from ..classifier.task import predict_batches

    model = task.model
    device = next(model.parameters()).device
    probs, y = predict_batches(model.cpu(), task.valid)
    model.to(device)
    cm = confusion(y, probs.argmax(1), len(classes))
    return write_report(out, "confusion", cm, classes, {"split": task.valid_split.name, "step": row["step"]})
