import numpy as np

from ulmfit.batching.documents import ClassifierBatches, pad_collate, sort_order, sortish_batches
from ulmfit.text.special import EOS_ID, PAD_ID
from ulmfit.text.store import write_store

from classifier_helpers import synthetic_docs, one_thread  # noqa: F401 (autouse)


def test_sort_order_longest_first():
    assert sort_order([3, 9, 1, 9]).tolist() == [1, 3, 0, 2]


def test_sortish_batches_cover_everything_longest_first():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, size=1003)
    batches = sortish_batches(lengths, 8, np.random.default_rng(1), chunk_mult=5)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1003))
    assert lengths[batches[0]].max() == lengths.max()
    # inside a chunk, batches are sorted: each batch's lengths are non-increasing
    assert all(np.all(np.diff(lengths[b]) <= 0) for b in batches)
    again = sortish_batches(lengths, 8, np.random.default_rng(1), chunk_mult=5)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = sortish_batches(lengths, 8, np.random.default_rng(2), chunk_mult=5)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))


def test_pad_collate_right_pads_eos_and_backwards():
    x, n = pad_collate([np.array([2, 5, 6]), np.array([2, 7])], eos_id=EOS_ID)
    assert x.tolist() == [[2, 5, 6, EOS_ID], [2, 7, EOS_ID, PAD_ID]]
    assert n.tolist() == [4, 3]
    x, n = pad_collate([np.array([2, 5, 6]), np.array([2, 7])], backwards=True)
    assert x.tolist() == [[6, 5, 2], [7, 2, PAD_ID]]


def test_batches_from_store(tmp_path):
    docs, labels, itos = synthetic_docs(50)
    labels[3] = -1  # unlabelled documents are skipped
    store = write_store(tmp_path, docs, itos, labels=labels, classes=["neg", "pos"])
    b = ClassifierBatches(store.split("train"), bs=8)
    assert b.n_docs == 49 and len(b) == 7
    seen = 0
    for x, n, y in b:
        seen += len(y)
        for row, ln, lab in zip(x, n, y):
            i = [k for k in range(50) if k != 3 and len(docs[k]) == ln and docs[k] == row[:ln].tolist()]
            assert i and labels[i[0]] == lab
            assert (row[ln:] == PAD_ID).all()
    assert seen == 49
    shuf = ClassifierBatches(store.split("train"), bs=8, shuffle=True, seed=3, limit=20)
    assert shuf.n_docs == 20 and sum(len(y) for _, _, y in shuf) == 20
