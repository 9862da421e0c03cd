import torch

from ulmfit.classifier.data import pad_collate
from ulmfit.models.classifier import BPT3C, SequenceClassifier

from classifier_helpers import StandInEncoder


def _model(bptt=7, max_len=20, **kw):
    torch.manual_seed(0)
    return SequenceClassifier(StandInEncoder(), n_classes=3, emb_size=8, bptt=bptt, max_len=max_len, **kw)


def test_padding_does_not_change_a_document():
    m = _model().eval()
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(9, 40, (n,), generator=g).numpy() for n in (53, 3, 7, 21, 14, 1, 30)]
    x, n = pad_collate(docs)
    with torch.no_grad():
        batch = m(x, n)
        for k, d in enumerate(docs):
            xa, na = pad_collate([d])
            alone = m(xa, na)
            assert torch.allclose(alone[0], batch[k], atol=1e-5), k
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


def test_long_document_keeps_autograd_memory_bounded():
    """A 20,000-token document trains with the graph of its last max_len tokens only."""
    m = _model(bptt=70, max_len=140).train()

    def saved_bytes(n_tokens):
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

    short, long = saved_bytes(500), saved_bytes(20_000)
    assert long < 1.5 * short


def test_param_groups_embedding_rnns_head():
    m = _model()
    groups = m.param_groups()
    assert len(groups) == 5
    assert sum(len(g) for g in groups) == len(list(m.parameters()))
    assert groups[0][0] is m.encoder.encoder.embedding.weight
    assert all(any(p is q for q in m.head.parameters()) for p in groups[-1])
