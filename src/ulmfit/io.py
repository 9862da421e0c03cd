"""Atomic file writing and small JSON/numpy helpers shared by every stage.

Every artifact is written to a temporary file in the same folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name. A write that finds the disk full
(or the quota spent) is a DiskFullError naming the file or folder; its temporary is removed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import DISK_FULL_ERRNOS, InputError, UlmfitError, disk_full, is_disk_full


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
    check_output_dir(path, replaced=True)
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


def check_output_dir(path, replaced: bool = False):
    """A folder is to be written at `path`: refuse a file there (or above it) before any work is done.
    replaced: the folder is swapped whole (`atomic_dir`), so a symbolic link there is refused too: the swap
    would turn it into a real folder (a folder that only gets files written into it may be a link)."""
    path = Path(path)
    if replaced and path.is_symlink():
        raise UlmfitError(
            f"{path} is a symbolic link (to {os.readlink(path)}): refusing to replace it or write "
            "through it; give the folder it points to, or another path"
        )
    if path.exists() and not path.is_dir():
        raise UlmfitError(f"{path} is a file, not a folder: refusing to replace it (choose another output path)")
    if (bad := _existing_ancestor_not_a_folder(path)) is not None:
        raise UlmfitError(f"{bad} is a file, not a folder: cannot write {path} under it")
    # a swap makes its temporary folder beside `path` and empties the old one
    _check_writable([path, path.parent] if replaced and path.is_dir() else [path], path)


def check_output_file(path):
    """A file is to be written at `path`: refuse a folder there (or a file above it) before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise UlmfitError(f"{path} is a folder, not a file: give a file name to write")
    if (bad := _existing_ancestor_not_a_folder(path)) is not None:
        raise UlmfitError(f"{bad} is a file, not a folder: cannot write {path} under it")
    _check_writable([path.parent], path)  # the temporary file goes beside it


def _check_writable(folders, path):
    """Each of `folders` (or, where it does not exist yet, the nearest folder above it, where it will be made)
    can be written: a read-only disk or a missing permission is an error now, not after hours of training."""
    for folder in folders:
        folder = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UlmfitError(
                f"{folder} is not writable (a read-only disk, or no permission): cannot write "
                f"{path} there; choose another output path"
            )


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_not_an_input(output, inputs, what: str = "--out", inside: bool = True):
    """Refuse, before any work, an output that is one of the command's inputs ({label: path or None}, or
    (label, path) pairs), compared as resolved paths (links and hard links included). inside: also refuse an
    input within the output folder (the whole folder is replaced, so what the command reads from it can be)."""
    out = Path(output)
    for label, given in inputs.items() if isinstance(inputs, dict) else inputs:
        if given is None:
            continue
        src = Path(given)
        if _same(out, src):
            raise UlmfitError(
                f"{what} {output} is also the {label} input ({given}): writing it would replace what "
                f"the command reads; choose another {what}"
            )
        if inside and out.resolve() in src.resolve().parents:
            raise UlmfitError(
                f"{what} {output} holds the {label} input {given}: rewriting the folder could replace "
                f"what the command reads; choose another {what}"
            )


def plain_file_name(name, where, field: str) -> str:
    """`name`, read from the file `where` (a JSON file in a folder), names a file inside that folder: it must be
    a plain file name (no folder part, not '.' or '..', no NUL), so a crafted folder cannot reach outside."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in ("/", "\\", "\0")):
        raise InputError(f"must be a plain file name inside the folder, got {name!r}", path=where, field=field)
    return name


def write_safetensors(path, tensors: dict, metadata=None, numpy: bool = False):
    """safetensors' save_file, atomically and with the mode of every other file; its own error type for a
    full disk (or any other failed write) becomes a DiskFullError / UlmfitError naming `path`."""
    from safetensors import SafetensorError

    backend = importlib.import_module("safetensors.numpy" if numpy else "safetensors.torch")
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            backend.save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:
            code = re.search(r"\(os error (\d+)\)", str(e))
            if code and int(code.group(1)) in DISK_FULL_ERRNOS:
                raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
            raise UlmfitError(f"{path}: cannot write it ({e})") from None
        os.chmod(tmp, 0o666 & ~_UMASK)  # safetensors writes a 0600 temporary and renames it onto `tmp`
