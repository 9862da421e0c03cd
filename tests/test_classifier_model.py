import pytest
import torch

from ulmfit.batching.documents import pad_collate
from ulmfit.models.classifier import BPT3C

from classifier_helpers import StandInEncoder, tiny_classifier, one_thread  # noqa: F401 (autouse)


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
def test_padding_does_not_change_a_document(arch):
    m = tiny_classifier(n_classes=3, arch=arch).eval()
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(9, 40, (n,), generator=g).numpy() for n in (53, 3, 7, 21, 14, 1, 30)]
    x, n = pad_collate(docs)
    with torch.no_grad():
        batch = m(x, n)
        for k, d in enumerate(docs):
            xa, na = pad_collate([d])
            assert torch.allclose(m(xa, na)[0], batch[k], atol=1e-5), k
        # lengths may also be inferred from the pad id
        assert torch.allclose(m(x), batch, atol=1e-6)
        # extra trailing padding changes nothing either
        xp = torch.cat([x, torch.ones(len(docs), 25, dtype=torch.long)], 1)
        assert torch.allclose(m(xp, n), batch, atol=1e-6)


def test_pooling_matches_a_direct_computation():
    torch.manual_seed(0)
    enc = StandInEncoder().eval()
    pool = BPT3C(enc, bptt=4, max_len=6)
    ids = torch.randint(9, 40, (1, 15))
    with torch.no_grad():
        feats = pool(ids, torch.tensor([15]))
        out = enc(ids)[1][0]  # one pass over the whole document
    kept = out[15 - 6 :]
    direct = torch.cat([out[-1], kept.max(0).values, kept.mean(0)])
    assert torch.allclose(feats[0], direct, atol=1e-5)


def _saved_bytes(m, n_tokens):
    """Bytes autograd keeps for the backward pass of one training step on a batch of two documents."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    ids = torch.randint(9, 40, (2, n_tokens))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = m(ids, torch.tensor([n_tokens, n_tokens // 2])).sum()
    loss.backward()
    return total


def test_a_20000_token_document_trains_and_classifies_in_bounded_memory():
    m = tiny_classifier(bptt=70, max_len=140).train()
    short, long = _saved_bytes(m, 500), _saved_bytes(m, 20_000)
    assert long < 1.5 * short  # only the last max_len tokens keep a graph
    m.eval()
    with torch.no_grad():
        doc = torch.randint(9, 40, (1, 20_000))
        p = torch.softmax(m(doc), -1)
    assert p.shape == (1, 2) and torch.isfinite(p).all()


def test_param_groups_embedding_rnns_head():
    m = tiny_classifier()
    groups = m.param_groups()
    assert len(groups) == 5
    assert sum(len(g) for g in groups) == len(list(m.parameters()))
    assert groups[0][0] is m.encoder.encoder.embedding.weight
    assert all(any(p is q for q in m.head.parameters()) for p in groups[-1])
    assert [len(g) for g in groups[1:4]] == [4, 4, 4]  # each LSTM: two weights, two biases


@pytest.mark.parametrize("arch", ["awd_lstm", "qrnn"])
def test_embedding_the_batch_once_gives_the_per_chunk_result_and_gradients(arch):
    m = tiny_classifier(n_classes=3, arch=arch).eval()  # no dropout: both ways compute the same function
    g = torch.Generator().manual_seed(2)
    docs = [torch.randint(9, 40, (n,), generator=g).numpy() for n in (53, 3, 21, 30, 8)]
    x, n = pad_collate(docs)
    enc = m.encoder.encoder
    emb = enc.embedding.weight

    def run():
        m.zero_grad(set_to_none=True)
        out = m(x, n)
        (out * torch.arange(1, 4)).sum().backward()
        return out.detach(), emb.grad.clone(), enc.rnns[0].linear.weight.grad.clone() if arch == "qrnn" else None

    once = run()
    plain = enc.forward
    enc.forward = lambda ids, state=None, embedded=None: plain(ids, state)  # each chunk embeds itself
    per_chunk = run()
    assert torch.allclose(once[0], per_chunk[0], atol=1e-6)
    assert torch.allclose(once[1], per_chunk[1], atol=1e-6) and once[1].abs().sum() > 0
    if arch == "qrnn":
        assert torch.allclose(once[2], per_chunk[2], atol=1e-6)
