"""`ulmfit tokenize`: a prepared dataset's documents -> vocab + token store, in parallel, streaming.

Worker processes each own a TextProcessor with a local token table; they get raw JSON lines in
batches and send back int32 ids in their local numbering plus the tokens they met for the first
time. The main process keeps one global token table, a translation array per worker, the token
counts, and appends global ids to a temporary file. Once every document is done, the vocab is
chosen from the counts and one vectorised look-up turns global ids into vocab ids. Memory stays at
the output arrays plus the token tables, whatever the corpus size.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError, UlmfitError
from ..io import atomic_dir, leftover_temps, read_json, write_json
from ..settings import TokenizeSettings
from .processor import TextProcessor, TokenTable
from .rules import clean
from .special import SPECIAL_TOKENS, UNK_ID
from .store import TOKENS_DIR, TokenStore
from .tokenizers import make_tokenizer, train_sentencepiece
from .vocab import Vocab

RULES_VERSION = 1  # bump when a cleaning rule changes what it produces: cached stores are redone

_proc = None  # the worker's TextProcessor


def _init(settings, folder):
    global _proc
    _proc = TextProcessor(make_tokenizer(settings, folder), TokenTable(SPECIAL_TOKENS))


def _encode_lines(job):
    first_line, lines, path = job
    docs = []
    for k, line in enumerate(lines):
        try:
            docs.append(json.loads(line)["text"])
        except (ValueError, KeyError, TypeError):
            raise InputError("not a document record", path=path, line=first_line + k) from None
    flat, lengths = _proc.encode_batch(docs)
    return os.getpid(), flat, lengths, _proc.token_id.take_new()


def _jobs(path, batch_size):
    with open(path, encoding="utf-8") as f:
        line = 1
        while True:
            lines = list(islice(f, batch_size))
            if not lines:
                return
            yield line, lines, str(path)
            line += len(lines)


def tokenizer_settings(
    backend=TokenizeSettings.tokenizer,
    max_vocab=TokenizeSettings.max_vocab,
    min_freq=TokenizeSettings.min_freq,
    lang="en",
    sp_vocab_size=None,
):
    s = {"backend": backend, "lang": lang, "rules_version": RULES_VERSION, "max_vocab": max_vocab, "min_freq": min_freq}
    if backend == "sentencepiece":
        s.update(model="spm.model", sp_vocab_size=sp_vocab_size or min(max_vocab, 30000))
    return s


def _train_spm(root, meta, tmp, settings, sample_docs=20000, seed=0):
    """SentencePiece learns its pieces from (a sample of) the cleaned language-model training texts."""
    idx_path = root / "splits" / "lm_train.npy"
    n = meta["n_docs"]
    pool = np.load(idx_path) if idx_path.exists() else np.arange(n)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(pool, size=min(sample_docs, len(pool)), replace=False).tolist())

    def texts():
        with open(root / "documents.jsonl", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i in chosen:
                    t = json.loads(line)["text"]
                    yield " ".join(clean(x) for x in ([t] if isinstance(t, str) else t))

    train_sentencepiece(texts(), tmp, vocab_size=settings["sp_vocab_size"])


LOCK_NAME = ".tokenize.lock"


def _store_is_current(tok_dir, key) -> bool:
    try:
        return read_json(tok_dir / "manifest.json").get("key") == key
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _folder_lock(root):
    """One `tokenize` at a time per dataset folder: an exclusive flock on DIR/.tokenize.lock (released by the
    system when the holder exits, however it ends). A second run says once that it waits, then waits."""
    with open(root / LOCK_NAME, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"ulmfit tokenize: waiting for another tokenize of {root} to finish (it holds {root / LOCK_NAME})",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_leftovers(tok_dir):
    """Temporary token folders of interrupted runs (about the store's size each). Called with the lock held:
    no other tokenize can be writing them."""
    for p in leftover_temps(tok_dir):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)


def tokenize_dataset(
    root,
    backend=TokenizeSettings.tokenizer,
    max_vocab=TokenizeSettings.max_vocab,
    min_freq=TokenizeSettings.min_freq,
    workers=None,
    batch_size=256,
    force=False,
    progress=True,
    sp_vocab_size=None,
    keep=None,
):
    """Tokenize DIR/documents.jsonl into DIR/tokens/ (see ulmfit.text.store). Returns (store, reused).

    keep: a Vocab whose words are kept whenever they occur, below min_freq too (a pretrained model's: their
    embeddings are trained already, so a word seen once is worth its row).

    One run at a time per folder (a second waits, then reuses what the first made); each run first removes
    the temporary token folders that interrupted runs left."""
    root = Path(root)
    if not (root / "dataset.json").exists():
        raise UlmfitError(f"{root} is not a prepared dataset (no dataset.json): run `ulmfit prepare ... --out {root}`")
    meta = read_json(root / "dataset.json")
    settings = tokenizer_settings(backend, max_vocab, min_freq, sp_vocab_size=sp_vocab_size)
    key = {"dataset": meta.get("fingerprint"), "settings": settings}
    if keep is not None:
        key["keep"] = keep.hash
    tok_dir = root / TOKENS_DIR
    # A finished store is swapped in whole (atomic_dir), so it can be checked and reused without the lock.
    if not force and _store_is_current(tok_dir, key) and not leftover_temps(tok_dir):
        return TokenStore(root), True
    with _folder_lock(root):
        _remove_leftovers(tok_dir)
        if not force and _store_is_current(tok_dir, key):  # another run finished it while this one waited
            return TokenStore(root), True
        return _tokenize(
            root, meta, settings, key, tok_dir, backend, max_vocab, min_freq, workers, batch_size, progress, keep
        )


def _write_ids(raw_path: Path, path: Path, lookup: np.ndarray, n_tokens: int, dtype) -> int:
    """The tokens' ids in first-seen order (raw_path, int32) through `lookup` into the vocab's ids at `path`
    (.npy), in slices that bound the memory; raw_path is removed -> the number of unknown tokens."""
    src = np.memmap(raw_path, dtype=np.int32, mode="r", shape=(n_tokens,))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_tokens,))
    step = 1 << 24
    for s in range(0, n_tokens, step):
        out[s : s + step] = lookup[src[s : s + step]]
    n_unk = int(np.count_nonzero(out == UNK_ID))
    out.flush()
    del out, src
    raw_path.unlink()
    return n_unk


def _encode_all(root, settings, tmp, workers, batch_size, n_docs, in_vocab, progress):
    """Every document of root/documents.jsonl through the workers (one: in this process), their global token ids
    appended to tmp/global_ids.i32 in document order -> (the global token table, each token's count over the
    documents marked in `in_vocab`, each document's length in tokens, the ids file)."""
    table = TokenTable(SPECIAL_TOKENS)
    counts = np.zeros(1 << 16, dtype=np.int64)
    trans: dict[int, np.ndarray] = {}
    lengths_all = np.zeros(n_docs, dtype=np.int64)
    raw_path = tmp / "global_ids.i32"
    done = 0
    jobs = _jobs(root / "documents.jsonl", batch_size)
    if workers == 1:
        _init(settings, tmp)
        results = map(_encode_lines, jobs)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(workers, initializer=_init, initargs=(settings, tmp))
        results = pool.imap(_encode_lines, jobs)
    try:
        with (
            open(raw_path, "wb") as raw,
            tqdm(total=n_docs, desc="tokenizing", unit="doc", disable=not progress) as bar,
        ):
            for pid, flat, lengths, new in results:
                tr = trans.get(pid)
                if tr is None:
                    tr = np.arange(len(SPECIAL_TOKENS), dtype=np.int32)
                if new:
                    tr = np.concatenate([tr, np.array([table(t) for t in new], dtype=np.int32)])
                trans[pid] = tr
                glob = tr[flat]
                raw.write(glob.tobytes())
                k = len(lengths)
                lengths_all[done : done + k] = lengths
                mask = np.repeat(in_vocab[done : done + k], lengths)
                if len(table.stoi) > len(counts):
                    counts = np.concatenate([counts, np.zeros(max(len(counts), len(table.stoi)), np.int64)])
                counts += np.bincount(glob[mask], minlength=len(counts))
                done += k
                bar.update(k)
    finally:
        if pool is not None:
            pool.terminate()
    if done != n_docs:
        raise UlmfitError(f"{root}/documents.jsonl has {done} documents, dataset.json says {n_docs}")
    return table, counts, lengths_all, raw_path


def _tokenize(
    root, meta, settings, key, tok_dir, backend, max_vocab, min_freq, workers, batch_size, progress, keep=None
):
    workers = max(1, workers or os.cpu_count() or 1)
    n_docs = meta["n_docs"]
    t0 = time.time()
    with atomic_dir(tok_dir) as tmp:
        if backend == "sentencepiece":
            _train_spm(root, meta, tmp, settings)
        in_vocab = np.zeros(n_docs, dtype=bool)
        vocab_split = root / "splits" / "lm_train.npy"
        in_vocab[np.load(vocab_split) if vocab_split.exists() else slice(None)] = True

        table, counts, lengths_all, raw_path = _encode_all(
            root, settings, tmp, workers, batch_size, n_docs, in_vocab, progress
        )

        itos = list(table.stoi)
        kept = keep.stoi if keep is not None else {}
        count_of = {w: int(c) for w, c in zip(itos, counts) if c >= min_freq or (c and w in kept)}
        if backend == "sentencepiece":
            count_of = {itos[i]: int(c) for i, c in enumerate(counts[: len(itos)]) if c > 0}
        # count_of holds exactly the candidates now: the cut-off was applied above
        vocab = Vocab.from_counts(count_of, max_size=max_vocab, min_freq=1)
        lookup = np.array([vocab.stoi.get(t, UNK_ID) for t in itos], dtype=np.int32)
        n_tokens = int(lengths_all.sum())
        n_unk = _write_ids(raw_path, tmp / "ids.npy", lookup, n_tokens, vocab.dtype)
        offsets = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(lengths_all, out=offsets[1:])
        np.save(tmp / "offsets.npy", offsets)
        vocab.save(tmp / "vocab.json")
        write_json(
            tmp / "manifest.json",
            {
                "key": key,
                "tokenizer": settings,
                "vocab_size": len(vocab),
                "vocab_hash": vocab.hash,
                "dtype": np.dtype(vocab.dtype).name,
                "n_docs": n_docs,
                "n_tokens": n_tokens,
                "n_distinct_tokens": len(itos),
                "unk_rate": round(n_unk / max(1, n_tokens), 5),
                "vocab_split": "lm_train" if vocab_split.exists() else "all",
                "seconds": round(time.time() - t0, 2),
            },
        )
    return TokenStore(root), False
