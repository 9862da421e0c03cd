"""IMDb Large Movie Review Dataset (Maas et al. 2011) in its original aclImdb layout.

`aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` and `aclImdb/train/unsup/<id>_0.txt`, read from
the folder, the original `.tar.gz` (streamed, not unpacked to disk), or a URL (downloaded once).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import tarfile
import zlib
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import InputError, UlmfitError
from ..settings import PrepareSettings
from .dataset import DatasetWriter, cached_dataset, check_out_not_inside, file_key, folder_key
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


# sha256 of the archives whose contents are known: for these the count of every folder is checked too.
KNOWN_ARCHIVES = {
    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe": "the Stanford aclImdb_v1.tar.gz",
    "f270fb8e988c6dc26f7774db24cd1c7338ef06569449c4cf7eacfcddd82806ff": "the aclImdb_v1.tar.gz repack (shared/data)",
}
OFFICIAL_COUNTS = {
    ("train", "pos"): 12500,
    ("train", "neg"): 12500,
    ("train", "unsup"): 50000,
    ("test", "pos"): 12500,
    ("test", "neg"): 12500,
}

# What a damaged or truncated archive raises while it is read: tarfile's errors, a deflate stream that does
# not decode (zlib.error), a gzip/xz/bz2 stream cut short (EOFError), a gzip CRC or length that differs
# (gzip.BadGzipFile, an OSError), xz's own check (LZMAError).
_UNREADABLE = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def _open_decompressed(path):
    """The archive's tar bytes: gzip, bzip2 and xz are recognised by their first bytes, not the name."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")
    return open(path, "rb")


class _LastRead:
    """The tar bytes as tarfile reads them, keeping the last read. tarfile takes a header it cannot parse
    (a damaged block) for the end of the archive without a word; the block it stopped at tells the two
    apart: zeros (or nothing) at the real end, anything else where the archive is damaged."""

    def __init__(self, f):
        self.f, self.last = f, b""

    def read(self, n=-1):
        self.last = self.f.read(n)
        return self.last

    def seek(self, pos, whence=0):
        return self.f.seek(pos, whence)

    def tell(self):
        return self.f.tell()


def _records_from_tar(path, counts):
    """Reviews of an aclImdb tarball, streamed; `counts[(split, class)]` counts them. The archive is read to
    its very end, so a damaged header, a gzip CRC or length that differs, or a cut-short file is an error."""
    with _open_decompressed(path) as raw:
        stream = _LastRead(raw)
        try:
            tf = tarfile.open(fileobj=stream, mode="r:")
        except _UNREADABLE as e:
            raise UlmfitError(f"{path}: not a readable tar archive (plain, .gz, .bz2 or .xz): {e}") from None
        members = iter(tf)
        while True:
            try:
                m = next(members, None)
                if m is None:
                    break
                mm = _MEMBER.search(m.name)
                raw_text = tf.extractfile(m).read() if m.isfile() and mm else None
            except _UNREADABLE as e:
                raise UlmfitError(
                    f"{path}: the archive is damaged or cut short (at byte {stream.tell():,} of its "
                    f"unpacked data: {e}); download it again"
                ) from None
            if raw_text is not None:
                counts[mm.group(1), mm.group(2)] += 1
                yield mm, f"{path}:{m.name}", raw_text
        if stream.last.strip(b"\0"):
            raise UlmfitError(
                f"{path}: the archive is damaged: a bad tar header at byte {tf.offset:,} of its unpacked "
                "data (everything after it would be lost); download it again"
            )
        try:
            # Read on to the real end: a compressed stream's CRC and length are checked only there.
            while block := raw.read(1 << 20):
                if block.strip(b"\0"):
                    raise UlmfitError(
                        f"{path}: the archive is damaged: data after its end-of-archive marker; download it again"
                    )
        except _UNREADABLE as e:
            raise UlmfitError(f"{path}: the archive is damaged or cut short ({e}); download it again") from None


def _folder_files(root: Path) -> list:
    """(match, path) of the reviews of an aclImdb folder, in reading order."""
    found: list[tuple[re.Match, Path]] = []
    for split in ("train", "test"):
        for cls in ("neg", "pos", "unsup"):
            folder = root / split / cls
            if not folder.is_dir():
                continue
            files = sorted(folder.glob("*.txt"), key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)])
            found.extend((mm, p) for p in files if (mm := _MEMBER.search(p.as_posix())))
    return found


def _records_from_folder(files, counts):
    for mm, p in files:
        counts[mm.group(1), mm.group(2)] += 1
        yield mm, str(p), p.read_bytes()


def _check_complete(path, counts, sha256=None):
    """Both splits with both classes, and for a known archive (by its sha256) every folder's exact count:
    a partial copy must not pass for the dataset."""
    missing = [f"{split}/{cls}" for split in ("train", "test") for cls in ("pos", "neg") if not counts[split, cls]]
    if missing:
        raise UlmfitError(
            f"{path}: incomplete aclImdb: no reviews in {', '.join(f'aclImdb/{m}' for m in missing)} "
            "(a damaged or partial copy?)"
        )
    if sha256 in KNOWN_ARCHIVES:
        wrong = [
            f"{split}/{cls} {counts[split, cls]:,} (expected {n:,})"
            for (split, cls), n in OFFICIAL_COUNTS.items()
            if counts[split, cls] != n
        ]
        if wrong:
            raise UlmfitError(
                f"{path} is {KNOWN_ARCHIVES[sha256]} (by its sha256), but the reviews read differ: " + ", ".join(wrong)
            )


def _has_both_classes_in_both_splits(meta) -> bool:
    counts = meta.get("class_counts") or {}
    return all((counts.get(split) or {}).get(cls) for split in ("train", "test") for cls in CLASSES)


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


def prepare_imdb(
    source, out_dir, lm_valid_frac=PrepareSettings.lm_valid_frac, seed=PrepareSettings.seed, force=False, progress=True
):
    path = resolve_source(source)
    if path.is_dir():
        # A folder's key lists every review's path, size and modification time: swapping test/pos and
        # test/neg, or editing a review, reads it again.
        check_out_not_inside(out_dir, path)
        files = _folder_files(path)
        key = {
            "reader": "imdb",
            **folder_key(path, [p for _, p in files]),
            "lm_valid_frac": lm_valid_frac,
            "seed": seed,
        }
    else:
        key = {"reader": "imdb", **file_key(path), "lm_valid_frac": lm_valid_frac, "seed": seed}
    # A folder prepared from a partial archive before the checks below existed is not reused.
    if not force and (meta := cached_dataset(out_dir, key)) and _has_both_classes_in_both_splits(meta):
        return meta, True
    counts = Counter()
    records = _records_from_folder(files, counts) if path.is_dir() else _records_from_tar(path, counts)
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
        if not sum(counts.values()):
            raise UlmfitError(f"{path}: no aclImdb reviews found (expected aclImdb/{{train,test}}/{{pos,neg}}/*.txt)")
        _check_complete(path, counts, key.get("sha256"))
    except BaseException:
        w.abort()
        raise
    meta = w.finish(classes=CLASSES, lm_valid_frac=lm_valid_frac, seed=seed, source=key)
    return meta, False
