"""Atomic file writing and small JSON/numpy helpers shared by every stage.

Every artifact is written to a temporary file in the same folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; artifacts are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path, obj, indent=2):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=False)
            f.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_text(path, text):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array))


def load_npy(path, mmap=True):
    return np.load(path, mmap_mode="r" if mmap else None)


def _old_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover_dir(path) -> Path:
    """If a folder swap died between its two renames, `path` is missing and its last good version sits at
    `.NAME.old`: put it back. Readers and writers call this first, so that copy is never lost."""
    path = Path(path)
    old = _old_name(path)
    if not path.exists() and old.is_dir():
        os.replace(old, path)
    return path


@contextlib.contextmanager
def atomic_dir(path):
    """Build a folder under a temporary name and swap it in at the end (the old version removed after).

    At every moment either `path` or `.NAME.old` holds a complete folder (see `recover_dir`). A file at
    `path` is never replaced by a folder."""
    path = recover_dir(path)
    if path.exists() and not path.is_dir():
        from .errors import UlmfitError

        raise UlmfitError(f"{path} is a file, not a folder: refusing to replace it (choose another output path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if path.exists():
            old = _old_name(path)
            if old.exists():
                shutil.rmtree(old)  # a stale copy: `path` itself is complete (recover_dir ran above)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
