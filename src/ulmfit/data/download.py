"""Fetch a file over HTTP(S) into a cache folder, once, with a progress bar and a size/checksum check."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UlmfitError
from ..io import atomic_path


def cache_dir() -> Path:
    return Path(os.environ.get("ULMFIT_CACHE", Path.home() / ".cache" / "ulmfit"))


def _digest(path, algo):
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(path, size=None, md5=None, sha256=None):
    if size is not None and os.path.getsize(path) != size:
        return f"size {os.path.getsize(path):,} bytes, expected {size:,}"
    if md5 and _digest(path, "md5") != md5.lower():
        return f"md5 differs from {md5}"
    if sha256 and _digest(path, "sha256") != sha256.lower():
        return f"sha256 differs from {sha256}"
    return None


def download(url: str, dest_dir=None, size=None, md5=None, sha256=None, progress=True) -> Path:
    """Download `url` into `dest_dir` (default: the ulmfit cache) unless a verified copy is there."""
    from tqdm.auto import tqdm

    dest_dir = Path(dest_dir) if dest_dir else cache_dir()
    dest = dest_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if dest.exists():
        # A cached file is trusted by size (cheap); the checksum was verified when it was written.
        if size is None or os.path.getsize(dest) == size:
            return dest
    try:
        resp = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError) as e:
        raise UlmfitError(f"could not download {url}: {e}. Download it by hand and pass the file's path.") from None
    total = int(resp.headers.get("Content-Length") or 0) or None
    with resp, atomic_path(dest) as tmp:
        with (
            open(tmp, "wb") as f,
            tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}", disable=not progress) as bar,
        ):
            for block in iter(lambda: resp.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))
        got = os.path.getsize(tmp)
        if total is not None and got != total:
            raise UlmfitError(f"download of {url} stopped early: {got:,} of {total:,} bytes")
        problem = _check(tmp, size, md5, sha256)
        if problem:
            raise UlmfitError(f"download of {url} is corrupt: {problem}")
    return dest
