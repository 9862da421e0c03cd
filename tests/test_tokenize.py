import json

import numpy as np
import pytest

from ulmfit.data.table import prepare_table
from ulmfit.errors import UlmfitError
from ulmfit.text.encoder import TextEncoder
from ulmfit.text.pipeline import tokenize_dataset
from ulmfit.text.processor import TextProcessor, TokenTable
from ulmfit.text.rules import clean
from ulmfit.text.special import SPECIAL_TOKENS
from ulmfit.text.store import TokenStore, write_store
from ulmfit.text.tokenizers import SpacyTokenizer

TEXTS = [
    "This movie was GREAT!!!! I loved it, it's a \"must-see\" (really).<br /><br />10/10 would watch again.",
    "Terrible. Just terrible terrible terrible acting; the plot? Non-existent... Don't bother &amp; skip it.",
    "Mr. Smith's U.S. debut wasn't bad: e-mail me at a@b.com or visit http://example.com #film",
    "Ce film était très BIEN, naïve café-au-lait. 1,000,000 stars $5.99 :) ;-)",
]


def write_csv(path, rows, header=("text", "label")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_chunk_cache_gives_exactly_spacys_tokens():
    tok = SpacyTokenizer()
    proc = TextProcessor(tok, TokenTable(SPECIAL_TOKENS))
    flat, lengths = proc.encode_batch(TEXTS)
    itos = list(proc.token_id.stoi)
    got = np.split(flat, np.cumsum(lengths)[:-1])
    for text, ids in zip(TEXTS, got):
        ref = ["xxbos"] + [t.text for t in tok.nlp.tokenizer(clean(text)) if not t.is_space]
        # word repeats are marked after tokenization; undo that for the comparison
        toks = [itos[i] for i in ids]
        while "xxwrep" in toks:
            k = toks.index("xxwrep")
            toks[k : k + 3] = [toks[k + 2]] * int(toks[k + 1])
        assert toks == ref


def test_multi_field_documents_get_field_markers():
    proc = TextProcessor(SpacyTokenizer(), TokenTable(SPECIAL_TOKENS))
    flat, lengths = proc.encode_batch([["Title here", "Body text"]])
    itos = list(proc.token_id.stoi)
    assert [itos[i] for i in flat] == ["xxbos", "xxfld", "1", "xxmaj", "title", "here", "xxfld", "2", "xxmaj",
                                       "body", "text"]


@pytest.fixture
def dataset(tmp_path):
    rows = [(TEXTS[i % 4] + f" number {i}", "pos" if i % 2 else "neg") for i in range(40)]
    train = write_csv(tmp_path / "train.csv", rows[:30])
    test = write_csv(tmp_path / "test.csv", rows[30:])
    prepare_table(train, tmp_path / "ds", ["text"], label_col="label", test=test, progress=False)
    return tmp_path / "ds", [r[0] for r in rows]


@pytest.mark.parametrize("workers", [1, 2])
def test_tokenize_store_matches_encoder_and_is_cached(dataset, workers):
    root, texts = dataset
    store, reused = tokenize_dataset(root, min_freq=2, workers=workers, batch_size=7, progress=False)
    assert not reused
    assert store.ids.dtype == np.uint16 and isinstance(store.ids, np.memmap)
    assert store.offsets[-1] == len(store.ids) and store.n_docs == 40
    assert store.vocab.itos[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    enc = TextEncoder.from_store(store)
    docs = [json.loads(line)["text"] for line in open(root / "documents.jsonl", encoding="utf-8")]
    for d, ids in enumerate(enc.encode(docs)):
        assert np.array_equal(store.ids[store.offsets[d] : store.offsets[d + 1]], ids)
        assert ids[0] == store.vocab.bos_id
    # vocab only holds tokens seen >= min_freq times in lm_train
    lm = store.split("lm_train")
    counts = np.bincount(lm.stream(), minlength=len(store.vocab))
    assert (counts[len(SPECIAL_TOKENS) :] >= 2).all()
    mtime = (root / "tokens" / "ids.npy").stat().st_mtime_ns
    again, reused = tokenize_dataset(root, min_freq=2, workers=workers, progress=False)
    assert reused and (root / "tokens" / "ids.npy").stat().st_mtime_ns == mtime
    _, reused = tokenize_dataset(root, min_freq=1, workers=workers, progress=False)
    assert not reused  # other settings -> a new store


def test_max_vocab_and_unknown_tokens(dataset):
    root, _ = dataset
    store, _ = tokenize_dataset(root, max_vocab=5, min_freq=1, progress=False)
    assert len(store.vocab) == len(SPECIAL_TOKENS) + 5
    assert (np.asarray(store.ids) == store.vocab.unk_id).any()
    assert np.asarray(store.ids).max() < len(store.vocab)


def test_sentencepiece_backend(dataset):
    root, texts = dataset
    store, _ = tokenize_dataset(root, backend="sentencepiece", sp_vocab_size=120, min_freq=1, progress=False)
    assert (root / "tokens" / "spm.model").exists()
    enc = TextEncoder.from_store(store)
    assert "xxmaj" in store.vocab  # specials stay whole pieces
    ids = enc.encode(["This movie was GREAT"])[0]
    assert ids[0] == store.vocab.bos_id and store.vocab.stoi["xxmaj"] in ids and store.vocab.stoi["xxup"] in ids
    d = store.split("train").doc(0)
    assert d[0] == store.vocab.bos_id and len(d) > 5


def test_encoder_folder_round_trip(dataset, tmp_path):
    root, _ = dataset
    store, _ = tokenize_dataset(root, min_freq=1, progress=False)
    enc = TextEncoder.from_store(store)
    enc.save(tmp_path / "model")
    enc2 = TextEncoder.load(tmp_path / "model")
    assert enc2.vocab.itos == enc.vocab.itos
    assert [a.tolist() for a in enc2.encode(TEXTS)] == [a.tolist() for a in enc.encode(TEXTS)]


def test_store_splits_and_stream(tmp_path):
    itos = SPECIAL_TOKENS + ["a", "b", "c"]
    docs = [[2, 9, 10], [2, 11], [2, 9, 9, 9, 10]]
    store = write_store(tmp_path / "s", docs, itos, labels=[0, 1, 0], classes=["x", "y"],
                        splits={"train": [0, 2], "lm_train": [0, 1, 2]})
    tr = store.split("train")
    assert tr.lengths.tolist() == [3, 5] and tr.labels.tolist() == [0, 0]
    assert tr.stream().tolist() == [2, 9, 10, 2, 9, 9, 9, 10]
    assert store.split("lm_train").stream().tolist() == sum(docs, [])
    assert TokenStore(tmp_path / "s").split("train").doc(1).tolist() == [2, 9, 9, 9, 10]


def test_spacy_fast_path_agrees_with_spacy():
    tok = SpacyTokenizer()
    words = ["hello", "cannot", "gonna", "dont", "mr", "st", "a", "i", "e", "vs", "etc", "jan", "u", "ok",
             "ain", "lets", "im", "youre", "theyll", "wo", "ca", "na", "o", "p", "s"]
    words += [w.lower().rstrip(".,!?;:") for w in tok._rules if w.isascii() and w.lower().rstrip(".,!?;:").isalpha()]
    chunks = sorted({w + p for w in words for p in ["", ".", ",", "!", "?", ";", ":"]})
    got = tok.tokenize_chunks(chunks)
    ref = [[t.text for t in tok.nlp.tokenizer(c)] for c in chunks]
    bad = [(c, g, r) for c, g, r in zip(chunks, got, ref) if g != r]
    assert not bad, bad[:10]


def test_a_pretrained_vocab_keeps_its_rare_words(tmp_path):
    """keep_vocab: words the pretrained model knows stay in the vocab even when they occur once."""
    import ulmfit
    from ulmfit.settings import TokenizeSettings
    from ulmfit.text.special import SPECIAL_TOKENS
    from ulmfit.text.vocab import Vocab

    rows = [("common words here", "a")] * 4 + [("zebra once", "b"), ("quokka once", "b")]
    write_csv(tmp_path / "t.csv", rows)
    prepare_table(tmp_path / "t.csv", tmp_path / "ds", ["text"], label_col="label", progress=False)
    Vocab(SPECIAL_TOKENS + ["zebra", "common", "never"]).save(tmp_path / "pre.json")
    plain, _ = ulmfit.tokenize(tmp_path / "ds", TokenizeSettings(min_freq=2, quiet=True))
    assert "zebra" not in plain.vocab and "common" in plain.vocab
    kept, reused = ulmfit.tokenize(tmp_path / "ds", TokenizeSettings(min_freq=2, quiet=True,
                                                                    keep_vocab=str(tmp_path / "pre.json")))
    assert not reused  # another vocab: tokenized again
    assert "zebra" in kept.vocab and "quokka" not in kept.vocab and "never" not in kept.vocab
    with pytest.raises(UlmfitError, match="keep_vocab"):
        ulmfit.tokenize(tmp_path / "ds", TokenizeSettings(keep_vocab=str(tmp_path / "no-such-model")))


def test_text_encoder_makes_its_tokenizer_only_when_it_encodes(tmp_path, monkeypatch):
    """Saving and loading a model folder needs no tokenizer (a GPU machine without spaCy trains from ids)."""
    import ulmfit.text.encoder as enc

    encoder = TextEncoder.from_texts(["the movie was great .", "the movie was bad ."], min_freq=1)
    ids = encoder.encode(["the movie was great ."])[0]
    encoder.save(tmp_path)
    made = []
    real = enc.make_tokenizer
    monkeypatch.setattr(enc, "make_tokenizer", lambda *a: made.append(a) or real(*a))
    loaded = TextEncoder.load(tmp_path)
    loaded.save(tmp_path / "copy")
    assert made == [] and loaded.decode(ids) == encoder.decode(ids)
    assert np.array_equal(loaded.encode(["the movie was great ."])[0], ids) and len(made) == 1
