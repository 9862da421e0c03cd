"""Self-training: when labels are few and unlabelled texts many (IMDb: 100 reviews labelled, 74,000 not),
the classifier labels the unlabelled documents, and a new classifier trains from the same language model
on the labels plus the documents it is surest of; each round's classifier is the next round's teacher.

The teacher is the classifier blended with a TF-IDF + logistic regression baseline trained on the same
labels (`teacher_weight`, see `teacher_blend`): two models that read text differently err differently, so the
documents both are sure of are labelled more often right than either's own (co-training, Blum & Mitchell 1998).
The test split (and the validation documents) are never labelled nor trained on.

Layout of OUT: the final classifier (a classifier folder, as train-classifier writes), and
  self-train/round-0 ... round-(R-1)   the earlier rounds' classifiers (round 0: the labels alone)
  self-train/baseline                  the TF-IDF teacher (when teacher_weight < 1)
  self-train/round-R.json              the documents labelled for round R and how sure the teacher was
  self_train.json                      per round: documents added, their agreement with held labels, valid accuracy
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UlmfitError
from ..io import check_not_an_input, check_output_dir, read_json, write_json
from ..settings import BaselineSettings, SelfTrainSettings, TrainClassifierSettings


def unlabelled_pool(store, gold, exclude_splits) -> np.ndarray:
    """Documents a teacher may label: every document of the store but the labelled training documents
    `gold` and those of `exclude_splits` (the evaluation and validation splits), in index order."""
    out = np.ones(store.n_docs, dtype=bool)
    out[np.asarray(gold, dtype=np.int64)] = False
    for name in exclude_splits:
        if store.has_split(name):
            out[store.split(name).index] = False
    return np.flatnonzero(out)


def most_confident(probs: np.ndarray, per_class: int):
    """(positions, classes): for each class, the `per_class` rows whose argmax it is, most probable first
    (fewer when fewer rows predict it: a class is never filled up with another's documents)."""
    pred = probs.argmax(1)
    pos, cls = [], []
    for c in range(probs.shape[1]):
        rows = np.flatnonzero(pred == c)
        rows = rows[np.argsort(-probs[rows, c], kind="stable")[:per_class]]
        pos.append(rows)
        cls.append(np.full(len(rows), c, dtype=np.int64))
    return np.concatenate(pos), np.concatenate(cls)


def per_class_counts(rounds, pool_size: int, n_classes: int) -> list:
    """--rounds entries as documents per class: N as given; a share F < 1 of the pool split between the classes."""
    return [int(k) if k >= 1 else max(1, round(k * pool_size / n_classes)) for k in rounds]


def teacher_blend(p_clf: np.ndarray, p_tfidf: np.ndarray, weight: float) -> np.ndarray:
    """The two models' class probabilities combined as log-odds, each model's centred per document and scaled to
    unit spread over all documents first: a fine-tuned classifier's log-odds spread ~10x a TF-IDF model's (IMDb,
    1,000 labels: std 6.8 vs 0.66), so a plain mean of probabilities is the classifier's vote alone."""
    z = []
    for p in (p_clf, p_tfidf):
        lp = np.log(np.clip(p, 1e-7, 1.0))
        lp = lp - lp.mean(1, keepdims=True)
        z.append(lp / max(float(lp.std()), 1e-6))
    logits = weight * z[0] + (1.0 - weight) * z[1]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _train_settings(s: SelfTrainSettings) -> TrainClassifierSettings:
    names = {f.name for f in dataclasses.fields(TrainClassifierSettings)}
    return TrainClassifierSettings(**{k: v for k, v in dataclasses.asdict(s).items() if k in names})


def _done(folder: Path) -> bool:
    """A classifier folder whose training finished (its last history row is not a partial epoch)."""
    try:
        rows = read_json(folder / "history.json")
    except (OSError, ValueError):
        return False
    return bool(rows) and not rows[-1].get("partial") and (folder / "model.safetensors").exists()


def _gold_and_valid(store, s: TrainClassifierSettings):
    """The labelled training documents and the validation documents (store indices), as train-classifier takes them."""
    from ..classifier.task import training_docs

    train = store.split(s.train_split)
    keep, valid = training_docs(train.labels, s.valid_frac, s.limit_train)
    return train.index[keep], None if valid is None else train.index[valid]


def documents_of(data, s: TrainClassifierSettings):
    """(store, the labelled training documents, the pool a teacher labels) of a dataset under these settings."""
    from .classifier import open_classifier_store

    valid_name = s.train_split if s.valid_frac else s.valid_split
    store, _, valid_split = open_classifier_store(data, s.train_split, valid_name)
    if store.labels is not None and store.labels.ndim == 2:
        raise UlmfitError(f"{Path(data) / 'labels.npy'}: self-training is for single-label datasets")
    gold, held = _gold_and_valid(store, s)
    exclude = sorted({"test", valid_split.name} - {s.train_split})
    pool = unlabelled_pool(store, np.concatenate([gold] + ([] if held is None else [held])), exclude)
    if len(pool) == 0:
        raise UlmfitError(
            f"{data}: no unlabelled documents to self-train on (all are labelled training, "
            f"validation or {'/'.join(exclude)} documents)"
        )
    return store, gold, pool


def _label_surest(store, pool, probs, per_class: int, path: Path):
    """The teacher's step: the `per_class` surest documents of the pool per class, with their labels, saved to
    `path` with how the teacher did on the ones whose labels are known -> (document indices, class indices)."""
    pos, cls = most_confident(probs, per_class)
    chosen = pool[pos]
    held_labels = store.labels[chosen] if store.labels is not None else np.full(len(chosen), -1)
    known = held_labels >= 0  # e.g. train documents beyond --limit-train: their labels check the teacher
    teacher = {
        "added_per_class": np.bincount(cls, minlength=probs.shape[1]).tolist(),
        "least_confidence": float(probs[pos, cls].min()),
        "agreement_with_held_labels": float((held_labels[known] == cls[known]).mean()) if known.any() else None,
        "held_labels_seen": int(known.sum()),
    }
    write_json(path, {"teacher": teacher, "docs": chosen.tolist(), "labels": cls.tolist()})
    return chosen, cls


def _check_inputs(data, out, lm, start) -> None:
    """Fail before any training on what would fail later: no LM, a `start` that is not a finished classifier,
    an OUT that is not ours to replace or that is one of the inputs."""
    if lm is None:
        raise UlmfitError("self-training starts every round from a fine-tuned language model: give one (lm)")
    if start is not None and not _done(Path(start)):
        raise UlmfitError(f"{start}: not a finished classifier folder (round 0 of self-training)")
    check_output_dir(out, replaced=True)
    from ..pretrained import resolve_lm

    check_not_an_input(out, {"DATA": data, "--lm": resolve_lm(lm)})


def _train_baseline(data, base: Path, s: SelfTrainSettings) -> None:
    """The TF-IDF teacher on the same labels, into `base`: unless it is not blended in or a resumed run has it."""
    if s.teacher_weight < 1 and not (base / "tfidf.json").exists():
        from .baseline import baseline

        baseline(
            data,
            BaselineSettings(
                train_split=s.train_split, valid_frac=s.valid_frac, limit_train=s.limit_train, out=str(base), quiet=True
            ),
        )


def _round_row(r: int, folder: Path, pseudo, labelled: Path) -> dict:
    """One round's entry of the summary: its folder, the documents it added and its valid accuracy, and (after
    round 0) how the teacher did that labelled them (saved in `labelled`)."""
    row = {
        "round": r,
        "folder": str(folder),
        "pseudo_labelled": 0 if pseudo is None else len(pseudo[0]),
        "valid_accuracy": read_json(folder / "metrics.json").get("accuracy"),
    }
    if pseudo is not None:
        row.update(read_json(labelled)["teacher"])
    return row


def _read_pseudo(path: Path):
    """The documents and labels an earlier teacher step saved -> (document indices, class indices)."""
    saved = read_json(path)
    return np.asarray(saved["docs"], dtype=np.int64), np.asarray(saved["labels"], dtype=np.int64)


def _pool_ids(store, pool) -> list:
    """The pool documents' token id arrays, as the classifier reads them."""
    return [np.asarray(store.ids[store.offsets[i] : store.offsets[i + 1]], dtype=np.int64) for i in pool.tolist()]


def _tfidf_probs(base: Path, texts, classes) -> np.ndarray:
    """The TF-IDF teacher's class probabilities of the pool texts, its columns in the classifier's class order."""
    from ..tfidf import TfidfModel

    tf = TfidfModel.load(base)
    order = [tf.classes.index(c) for c in classes]
    return tf.predict_proba(texts)[:, order]


def self_train(data, out, lm, settings: SelfTrainSettings | None = None, start=None) -> dict:
    """Train a classifier on the labels (round 0), then once per entry of settings.rounds: label the unlabelled
    documents with the current classifier (blended with a TF-IDF baseline), add the `rounds[r]` surest per
    class and train a new classifier from `lm` on labels + those. -> the summary (also OUT/self_train.json).
    `start`: a finished classifier folder trained on the same labels (e.g. `ulmfit run`'s classifier stage) to
    take as round 0 instead of training one."""
    from ..inference import TextClassifier
    from .evaluate import _raw_texts
    from ..classifier.task import parse_stages
    from .classifier import train_classifier

    s = settings or SelfTrainSettings()
    _check_inputs(data, out, lm, start)
    out, work = Path(out), Path(out) / "self-train"
    ts = _train_settings(s)
    student = dataclasses.replace(ts, stages=s.student_stages)
    parse_stages(student.stages, "student_stages", "SelfTrainSettings")  # a typo fails now, not after round 0
    store, gold, pool = documents_of(data, ts)
    per_class = per_class_counts(s.rounds, len(pool), len(store.classes))
    say = (lambda *a: None) if s.quiet else (lambda msg: print(msg, file=sys.stderr))
    say(
        f"self-training: {len(gold):,} labelled documents, {len(pool):,} unlabelled ones to draw from, "
        f"{len(s.rounds)} round(s) adding {', '.join(f'{k:,}' for k in per_class)} per class"
    )
    t0, summary = time.time(), list[dict]()

    base = work / "baseline"
    _train_baseline(data, base, s)
    texts = _raw_texts(Path(data), pool) if s.teacher_weight < 1 else None
    p_tfidf = docs = pseudo = None
    for r in range(len(s.rounds) + 1):
        folder = out if r == len(s.rounds) else Path(start) if r == 0 and start is not None else work / f"round-{r}"
        was_done = _done(folder)
        if not was_done:
            say(
                f"round {r}: training on {len(gold):,} labelled"
                + ("" if pseudo is None else f" + {len(pseudo[0]):,} pseudo-labelled")
                + f" documents -> {folder}"
            )
            train_classifier(data, folder, lm, ts if pseudo is None else student, pseudo=pseudo)
            if not _done(folder):  # stopped early (max_minutes): resuming continues this round
                return {"rounds": summary, "stopped": r}
        summary.append(_round_row(r, folder, pseudo, work / f"round-{r}.json"))
        if r == len(s.rounds):
            break
        labelled_next = work / f"round-{r + 1}.json"
        if was_done and labelled_next.exists():  # a run stopped after this teacher step: its labels stand
            pseudo = _read_pseudo(labelled_next)
            continue
        # the teacher labels the pool
        clf = TextClassifier.load(folder, threads=s.threads)
        if docs is None:  # the pool's id arrays, once for all rounds
            docs = _pool_ids(store, pool)
        say(f"round {r + 1}: the round-{r} classifier labels {len(pool):,} documents")
        probs = clf.predict_ids(docs, progress=not s.quiet)
        if texts is not None:
            if p_tfidf is None:
                p_tfidf = _tfidf_probs(base, texts, clf.classes)
            probs = teacher_blend(probs, p_tfidf, s.teacher_weight)
        pseudo = _label_surest(store, pool, probs, per_class[r], labelled_next)
    result = {
        "data": str(data),
        "lm": str(lm),
        "labelled": int(len(gold)),
        "pool": int(len(pool)),
        "per_class": per_class,
        "rounds": summary,
        "teacher_weight": s.teacher_weight,
        "seconds": round(time.time() - t0, 1),
    }
    write_json(out / "self_train.json", result)
    say(f"wrote {out}: the round-{len(s.rounds)} classifier; per round in {out / 'self_train.json'}")
    return result
