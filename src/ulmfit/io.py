"""Atomic file writing and small JSON/numpy helpers shared by every stage.

Every artifact is written to a temporary file in the same folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name. A write that finds the disk full
(or the quota spent) is a DiskFullError naming the file or folder; its temporary is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import UlmfitError, disk_full, is_disk_full


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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e):
            raise disk_full(e, path) from None
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
    check_output_dir(path)
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
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):  # named by the folder: the temporary one the write failed in is gone
            raise disk_full(e, path) from None
        raise


def leftover_temps(path) -> list[Path]:
    """What interrupted `atomic_path`/`atomic_dir` writes of `path` left next to it: exactly the names they
    make (`.NAME.` + tempfile's 8 random characters + `.tmp`), nothing else."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def _existing_ancestor_not_a_folder(path: Path):
    """The nearest existing path above `path` if it is a file (nothing can be made under it), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_dir(path):
    """A folder is to be written at `path`: refuse a file there (or above it) before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UlmfitError(f"{path} is a file, not a folder: refusing to replace it (choose another output path)")
    if (bad := _existing_ancestor_not_a_folder(path)) is not None:
        raise UlmfitError(f"{bad} is a file, not a folder: cannot write {path} under it")


def check_output_file(path):
    """A file is to be written at `path`: refuse a folder there (or a file above it) before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise UlmfitError(f"{path} is a folder, not a file: give a file name to write")
    if (bad := _existing_ancestor_not_a_folder(path)) is not None:
        raise UlmfitError(f"{bad} is a file, not a folder: cannot write {path} under it")
