import numpy as np
import pytest
import torch

from ulmfit.batching.lm import MIN_SEQ, LMBatches
from ulmfit.errors import UlmfitError


def rows_of(batches, epoch):
    xs, ys = zip(*batches.iterate(epoch))
    return torch.cat(xs, 1).numpy(), torch.cat(ys, 1).numpy()


def test_targets_are_inputs_shifted_by_one():
    b = LMBatches(np.arange(5000), bs=4, bptt=20, seed=3)
    for x, y in b.iterate(0):
        assert x.dtype == torch.long and x.shape == y.shape and x.shape[0] == 4
        assert np.array_equal(((x.numpy() + 1) % 5000), y.numpy())


def test_rows_are_contiguous_and_cover_the_stream():
    n, bs = 3001, 6
    b = LMBatches(np.arange(n), bs=bs, bptt=17, seed=0, shuffle=True)
    x, y = rows_of(b, 2)
    assert x.shape == (bs, (n - 1) // bs)
    # each row is a contiguous (cyclic) stretch; row r+1 starts where row r ends
    for r in range(bs):
        assert np.all(np.diff(x[r]) % n == 1)
        if r + 1 < bs:
            assert (x[r + 1, 0] - x[r, -1]) % n == 1
    assert len(set(x.ravel().tolist())) == x.size  # no token twice


def test_no_shuffle_starts_at_zero_with_fixed_bptt():
    b = LMBatches(np.arange(1000), bs=3, bptt=50, variable=False, shuffle=False)
    lens = b.seq_lens(0)
    assert lens[:-1].tolist() == [50] * (len(lens) - 1) and lens.sum() == (1000 - 1) // 3
    x, _ = next(b.iterate(0))
    assert x[:, 0].tolist() == [0, 333, 666]


def test_backwards_reverses_the_stream():
    s = np.arange(2000)
    fwd = LMBatches(s, bs=4, bptt=30, seed=1, shuffle=False, variable=False)
    bwd = LMBatches(s, bs=4, bptt=30, seed=1, shuffle=False, variable=False, backwards=True)
    xf, _ = rows_of(fwd, 0)
    xb, yb = rows_of(bwd, 0)
    assert xb[0, 0] == 1999 and np.all(np.diff(xb[0]) == -1)
    assert np.array_equal(yb, xb - 1)
    ref = np.concatenate([x for x, _ in LMBatches(s[::-1].copy(), 4, 30, variable=False, shuffle=False).iterate(0)], 1)
    assert np.array_equal(xb, ref)
    assert not np.array_equal(xf, xb)


def test_same_seed_and_epoch_same_batches_and_resume_from_k():
    s = np.random.default_rng(0).integers(0, 100, 20000)
    a, b = LMBatches(s, 8, 40, seed=5), LMBatches(s, 8, 40, seed=5)
    ea, eb = list(a.iterate(3)), list(b.iterate(3))
    assert len(ea) == len(eb) == len(a.epoch(3))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(ea, eb))
    k = 7
    tail = list(a.epoch(3).iterate(k))
    assert len(tail) == len(ea) - k and all(torch.equal(t[0], e[0]) for t, e in zip(tail, ea[k:]))
    # another epoch or seed differs
    assert not torch.equal(next(a.iterate(4))[0], ea[0][0])
    assert not torch.equal(next(LMBatches(s, 8, 40, seed=6).iterate(3))[0], ea[0][0])


def test_variable_sequence_lengths():
    b = LMBatches(np.zeros(200_000, dtype=np.uint16), bs=4, bptt=70, seed=0)
    lens = np.concatenate([b.seq_lens(e) for e in range(3)])
    assert lens.min() >= MIN_SEQ and lens.max() <= 70 + 25 + MIN_SEQ
    assert len(np.unique(lens)) > 10
    assert np.mean(np.abs(lens - 35) < 15) > 0.01  # the bptt/2 draws exist
    assert abs(np.median(lens) - 70) <= 3
    assert abs(len(b) - b.n_batches(0)) <= 0.15 * len(b)
    # uint16 store ids come out as int64
    assert next(b.iterate(0))[0].dtype == torch.long


def test_too_short_stream_is_a_user_error():
    with pytest.raises(UlmfitError):
        LMBatches(np.arange(5), bs=8, bptt=10)


def test_every_epoch_plan_covers_each_row_exactly():
    """The sequence lengths of an epoch add up to the row length whatever the tail, and a tail too short
    to be a sequence joins the one before it."""
    short_tails = 0
    for n_tokens in range(300, 1400, 7):
        b = LMBatches(np.arange(n_tokens) % 50, bs=2, bptt=20, seed=n_tokens)
        for epoch in range(3):
            lens = b.seq_lens(epoch)
            assert lens.sum() == b.row_len, (n_tokens, epoch)
            assert lens.min() >= MIN_SEQ, (n_tokens, epoch)
            x, y = rows_of(b, epoch)
            assert x.shape == (2, b.row_len) and np.array_equal(x[:, 1:], y[:, :-1])
        fixed = LMBatches(np.arange(n_tokens) % 50, bs=2, bptt=20, seed=0, variable=False)
        short_tails += b.row_len % 20 in range(1, MIN_SEQ)
        assert fixed.seq_lens(0).sum() == fixed.row_len
    assert short_tails > 0  # the merge path ran
