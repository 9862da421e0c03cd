"""Writing a prepared dataset folder (layout: see ulmfit.text.store).

`DatasetWriter` streams documents to `documents.jsonl` as sources yield them, keeping only labels
and split names in memory; `finish()` adds the label array, the split index arrays (including the
language-model 90/10 split over every text) and `dataset.json`, which is written last: a folder
without it is incomplete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import UlmfitError, disk_full, is_disk_full
from ..io import atomic_path, check_output_dir, read_json, save_npy, write_json
from ..settings import PrepareSettings
from ..text.rules import replace_surrogates
from ..text.store import DATASET_FORMAT, labelled


def read_texts(folder, wanted) -> dict:
    """{document index: text} of a prepared folder's documents.jsonl for the indices in `wanted`
    (a multi-field document's text is its list of fields)."""
    out = {}
    with open(Path(folder) / "documents.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i in wanted:
                t = json.loads(line)["text"]
                out[i] = t if isinstance(t, str) else list(t)
    return out


class DatasetWriter:
    """Documents go to a temporary documents.jsonl until `finish()`; `abort()` drops it, leaving any
    earlier dataset in the folder as it was."""

    def __init__(self, out_dir, kind: str):
        self.out = Path(out_dir)
        check_output_dir(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self._ctx = atomic_path(self.out / "documents.jsonl")
        self._tmp = self._ctx.__enter__()
        self._f = open(self._tmp, "w", encoding="utf-8")
        self.splits: list[str] = []
        self.labels: list = []
        self.skipped: dict[str, dict] = {}
        self.n_fields: int | None = None

    def add(self, doc_id: str, split: str, fields, label=None):
        if isinstance(fields, str):
            fields = [fields]
        if self.n_fields is None:
            self.n_fields = len(fields)
        fixed = [replace_surrogates(f) for f in fields]
        if fixed != fields:
            # Lone UTF-16 halves (JSON "\ud800" escapes): no UTF-8 encodes them. Kept as U+FFFD and counted.
            fields = fixed
            self.skip("lone surrogates replaced by U+FFFD (the document is kept)", doc_id)
        text = fields[0] if len(fields) == 1 else fields
        try:
            self._f.write(json.dumps({"id": doc_id, "split": split, "text": text, "label": label}, ensure_ascii=False))
            self._f.write("\n")
        except OSError as e:
            if is_disk_full(e):
                raise disk_full(e, self.out / "documents.jsonl") from None
            raise
        self.splits.append(split)
        self.labels.append(label)

    def skip(self, reason: str, where: str):
        s = self.skipped.setdefault(reason, {"count": 0, "examples": []})
        s["count"] += 1
        if len(s["examples"]) < 10:
            s["examples"].append(where)

    def abort(self):
        self._f.close()
        self._ctx.__exit__(UlmfitError, UlmfitError("aborted"), None)

    def finish(
        self,
        classes=None,
        lm_valid_frac=PrepareSettings.lm_valid_frac,
        seed=PrepareSettings.seed,
        source=None,
        clas_splits=("train", "test"),
        valid_frac=0.0,
        multi_label=False,
    ):
        """Write labels, splits and dataset.json. `classes=None` infers them (sorted) from labels.
        `multi_label`: each label is a collection of class names (`classes` required).

        Everything is checked before anything of an earlier dataset is replaced; then dataset.json goes
        first, so a folder that a crash or a full disk leaves half-replaced reads as unprepared (no
        dataset.json), never as the old dataset with the new documents."""
        try:
            self._f.close()  # flushes: a full disk can show here
            labels, classes = self._label_array(classes, multi_label)
        except BaseException as e:
            self.abort()
            if is_disk_full(e):
                raise disk_full(e, self.out / "documents.jsonl") from None
            raise
        try:
            (self.out / "dataset.json").unlink(missing_ok=True)
            self._ctx.__exit__(None, None, None)
            return self._write_rest(labels, classes, lm_valid_frac, seed, source, clas_splits, valid_frac, multi_label)
        except BaseException as e:
            if is_disk_full(e):
                raise disk_full(e, self.out, "the folder is left unprepared: it has no dataset.json") from None
            raise

    def _label_array(self, classes, multi_label):
        n = len(self.splits)
        if n == 0:
            raise UlmfitError("no documents were read (all were empty or skipped)")
        given = [lab for lab in self.labels if lab is not None]
        if multi_label:
            # Multi-hot rows [n_docs, n_classes]; a document without labels (unlike one with an empty label
            # set) is a row of -1.
            cidx = {c: i for i, c in enumerate(classes)}
            labels = np.full((n, len(classes)), -1, dtype=np.int64)
            for d, lab in enumerate(self.labels):
                if lab is not None:
                    labels[d] = 0
                    labels[d, [cidx[c] for c in lab]] = 1
        else:
            if classes is None and given:
                classes = sorted(set(given), key=lambda x: (str(type(x)), x))
            labels = np.full(n, -1, dtype=np.int64)
            if classes is not None:
                cidx = {c: i for i, c in enumerate(classes)}
                unknown = sorted({lab for lab in given if lab not in cidx}, key=str)
                if unknown:
                    raise UlmfitError(f"labels {unknown[:5]} are not among the classes {classes}")
                labels = np.array([-1 if lab is None else cidx[lab] for lab in self.labels], dtype=np.int64)
        return labels, classes

    def _write_rest(self, labels, classes, lm_valid_frac, seed, source, clas_splits, valid_frac, multi_label):
        n = len(self.splits)
        split_arr = np.array(self.splits)
        rng = np.random.default_rng(seed)
        splits = {}
        for name in clas_splits:
            idx = np.flatnonzero(split_arr == name)
            if len(idx):
                splits[name] = idx
        if valid_frac and "train" in splits and "valid" not in splits:
            tr = rng.permutation(splits["train"])
            k = max(1, int(round(len(tr) * valid_frac)))
            splits["valid"], splits["train"] = np.sort(tr[:k]), np.sort(tr[k:])
        # The language model reads every text, labelled or not (as the lecture does), split 90/10.
        perm = rng.permutation(n)
        k = max(1, int(round(n * lm_valid_frac))) if n > 1 else 0
        splits["lm_valid"], splits["lm_train"] = np.sort(perm[:k]), np.sort(perm[k:])
        for name, idx in splits.items():
            save_npy(self.out / "splits" / f"{name}.npy", idx.astype(np.int64))
        for old in (self.out / "splits").glob("*.npy"):
            if old.stem not in splits:
                old.unlink()
        save_npy(self.out / "labels.npy", labels)
        counts = {name: int(len(idx)) for name, idx in splits.items()}
        per_class = {}
        if classes is not None:
            for name in clas_splits:
                if name in splits:
                    lab = labels[splits[name]]
                    lab = lab[labelled(lab)]
                    bc = lab.sum(0) if multi_label else np.bincount(lab, minlength=len(classes))
                    per_class[name] = {str(c): int(x) for c, x in zip(classes, bc)}
        meta = {
            "format": DATASET_FORMAT,
            "version": 1,
            "kind": self.kind,
            "classes": classes,
            "multi_label": multi_label,
            "n_docs": n,
            "n_fields": self.n_fields,
            "splits": counts,
            "class_counts": per_class,
            "source_splits": dict(Counter(self.splits)),
            "skipped": self.skipped,
            "source": source,
            "lm_valid_frac": lm_valid_frac,
            "seed": seed,
        }
        meta["fingerprint"] = hashlib.sha256(
            json.dumps([meta, os.urandom(8).hex()], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        write_json(self.out / "dataset.json", meta)
        return meta


def cached_dataset(out_dir, source_key: dict):
    """The dataset.json of `out_dir` if it was prepared from exactly `source_key`, else None."""
    path = Path(out_dir) / "dataset.json"
    if not path.exists() or not (Path(out_dir) / "documents.jsonl").exists():
        return None
    try:
        meta = read_json(path)
    except (OSError, ValueError):
        return None
    return meta if meta.get("source") == source_key else None


_HASHES: dict = {}


def file_key(path) -> dict:
    """What identifies an input's version: path, size and content hash of a file (a copy or a restore
    that only changes the modification time keeps its cached results); just the path of a folder."""
    p = Path(path).resolve()
    st = p.stat()
    if p.is_dir():
        return {"path": str(p)}
    memo = (str(p), st.st_size, st.st_mtime_ns)  # hash each file version once per process
    if memo not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        _HASHES[memo] = h.hexdigest()
    return {"path": str(p), "size": st.st_size, "sha256": _HASHES[memo]}


def folder_key(root, files) -> dict:
    """What identifies a folder source's version: each file's path inside it, size and modification time
    (a move between class folders, an edit or a swap of two folders all change it). One stat per file: cheap
    for IMDb's 100k files, where hashing every file would read them all twice."""
    h = hashlib.sha256()
    for f in files:
        st = Path(f).stat()
        h.update(json.dumps([Path(f).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns]).encode() + b"\n")
    return {"path": str(Path(root).resolve()), "n_files": len(files), "listing_sha256": h.hexdigest()}


def check_out_not_inside(out_dir, root):
    """A prepared folder written inside the folder it reads would be read back as part of it next time."""
    out, src = Path(out_dir).resolve(), Path(root).resolve()
    if out == src or src in out.parents:
        raise UlmfitError(
            f"the output folder {out_dir} is inside the source folder {root}: it would be read back "
            "as part of the source; write the prepared folder elsewhere"
        )


def summary(meta) -> str:
    parts = [f"{meta['n_docs']:,} documents", "splits " + ", ".join(f"{k} {v:,}" for k, v in meta["splits"].items())]
    if meta.get("classes"):
        parts.append(f"classes {meta['classes']}")
    for reason, s in (meta.get("skipped") or {}).items():
        parts.append(f"skipped {s['count']:,} {reason} (e.g. {', '.join(s['examples'][:3])})")
    return "; ".join(parts)
