"""IMDb Large Movie Review Dataset (Maas et al. 2011) in its original aclImdb layout.

`aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` and `aclImdb/train/unsup/<id>_0.txt`, read from
the folder, the original `.tar.gz` (streamed, not unpacked to disk), or a URL (downloaded once).
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import InputError, UlmfitError
from .dataset import DatasetWriter, cached_dataset, file_key
from .download import download

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# The Stanford file (84,125,825 bytes); the md5 other loaders check it against.
IMDB_SIZE = 84125825
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
CLASSES = ["neg", "pos"]
N_DOCS = 100_000

_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")


def decode(raw: bytes, where) -> str:
    """A whole file's bytes as text; a leading UTF-8 byte-order mark (as Excel and Notepad write) is dropped."""
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {e.start} of the file)", path=where, line=line) from None


def _records_from_tar(path):
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            mm = _MEMBER.search(m.name)
            if m.isfile() and mm:
                yield mm, f"{path}:{m.name}", tf.extractfile(m).read()


def _records_from_folder(root: Path):
    for split in ("train", "test"):
        for cls in ("neg", "pos", "unsup"):
            folder = root / split / cls
            if not folder.is_dir():
                continue
            files = sorted(folder.glob("*.txt"), key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)])
            for p in files:
                mm = _MEMBER.search(p.as_posix())
                if mm:
                    yield mm, str(p), p.read_bytes()


def resolve_source(source) -> Path:
    """A folder, a tarball, or a URL (downloaded into the cache) -> a local path."""
    source = str(source or IMDB_URL)
    if re.match(r"^(https?|ftp)://", source):
        official = source == IMDB_URL
        return download(source, size=IMDB_SIZE if official else None, md5=IMDB_MD5 if official else None)
    path = Path(source)
    if not path.exists():
        raise UlmfitError(f"{path}: no such file or folder (give an aclImdb folder, aclImdb_v1.tar.gz, or a URL)")
    if path.is_dir() and (path / "aclImdb").is_dir():
        path = path / "aclImdb"
    return path


def prepare_imdb(source, out_dir, lm_valid_frac=0.1, seed=42, force=False, progress=True):
    path = resolve_source(source)
    key = {"reader": "imdb", **file_key(path), "lm_valid_frac": lm_valid_frac, "seed": seed}
    if not force and (meta := cached_dataset(out_dir, key)):
        return meta, True
    records = _records_from_folder(path) if path.is_dir() else _records_from_tar(path)
    w = DatasetWriter(out_dir, kind="imdb")
    try:
        for mm, where, raw in tqdm(records, total=N_DOCS, desc="reading IMDb", unit="doc", disable=not progress):
            split, cls, num, rating = mm.groups()
            text = decode(raw, where)
            if not text.strip():
                w.skip("empty documents", where)
                continue
            doc_id = f"{split}/{cls}/{num}_{rating}.txt"
            if cls == "unsup":
                w.add(doc_id, "unsup", text, None)
            else:
                w.add(doc_id, split, text, cls)
    except BaseException:
        w.abort()
        raise
    meta = w.finish(classes=CLASSES, lm_valid_frac=lm_valid_frac, seed=seed, source=key)
    if meta["n_docs"] == 0:
        raise UlmfitError(f"{path}: no aclImdb reviews found")
    return meta, False
