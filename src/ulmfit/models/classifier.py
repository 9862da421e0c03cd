"""The ULMFiT classifier: an encoder run over whole documents in bptt chunks (BPT3C) + a pooling head.

Plain modules that know nothing of training. Inputs are right-padded id batches with their lengths
(see `ulmfit.batching.documents`). Pooling is accumulated chunk by chunk over each document's own last
`max_len` positions, so
- padding never changes a document's result (the LSTM is causal and padding sits after the text);
- memory does not grow with document length: only chunks that some document pools from are run
  with autograd, the rest under no_grad, and no chunk's outputs are kept after it is pooled; in training
  the embedding runs over spans of at most `_span_tokens` tokens of the documents still active.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from ..errors import UlmfitError
from ..settings import SettingsError, TrainClassifierSettings, bounds, check, default


# Encoder states are lists over layers of tuples of [1, bs, dim] tensors, whatever the architecture.
def _select_state(state, idx):
    return [tuple(t.index_select(1, idx) for t in layer) for layer in state]


def _merge_state(state, idx, sub):
    return [tuple(t.index_copy(1, idx, s) for t, s in zip(layer, sub_layer)) for layer, sub_layer in zip(state, sub)]


class BPT3C(nn.Module):
    """Backpropagation through time for text classification.

    Wraps an encoder with the signature `raw, out, state = encoder(ids, state, embedded=None)` and an
    `embed(ids)` method (`RNNEncoder`: the AWD-LSTM, the QRNN) and returns concat-pooled features
    [last, max, mean] of its outputs, [bs, 3 * emb].
    The hidden state is carried from chunk to chunk and detached between chunks (truncated BPTT).
    """

    def __init__(self, encoder: nn.Module, bptt: int, max_len: int, pad_id: int = 1):
        super().__init__()
        if bptt < 1 or max_len < 1:
            raise ValueError("bptt and max_len must be positive")
        self.encoder, self.bptt, self.max_len, self.pad_id = encoder, bptt, max_len, pad_id

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        bs, T = ids.shape
        if lengths is None:
            lengths = (ids != self.pad_id).sum(1)
        # The chunk loop's decisions read the lengths on the host: one copy per batch (on a GPU, one sync)
        # rather than a sync per chunk.
        host = lengths.cpu().clamp(min=1)
        host_fk = (host - self.max_len).clamp(min=0)
        lengths = host.to(ids.device, non_blocking=True)
        first_kept = (lengths - self.max_len).clamp(min=0)  # each doc pools positions [first_kept, length)
        grad = torch.is_grad_enabled()
        # In training, a pooled chunk embeds a span of chunks at once (the documents active at its start, at
        # most `span` tokens): the backward then makes one dense vocab x emb embedding gradient per span rather
        # than one per chunk (zeroing and adding those took about a tenth of a CPU epoch), and a batch of
        # similar lengths pools within one span. The span is bounded so that one very long document does not
        # make the whole padded batch be embedded over its length. Chunks outside a span, and every chunk
        # without a graph (predict, validation), embed themselves.
        span = _span_tokens(self.bptt, self.max_len)
        embedded, e0, e1, rows = None, 0, 0, None  # the span [e0, e1) and its rows (None: the whole batch)
        state = None
        last = mx = total = None
        for i in range(0, int(host.max()), self.bptt):
            j = min(i + self.bptt, T)
            active = host > i  # documents that still have tokens in this chunk
            full = bool(active.all())
            idx_h = active.nonzero().squeeze(1)
            idx = None if full else idx_h.to(ids.device, non_blocking=True)  # None: every row
            pooled_here = bool(((host_fk[idx_h] < j) & (host[idx_h] > i)).any())
            x = ids[:, i:j] if idx is None else ids[:, i:j].index_select(0, idx)
            if grad and pooled_here and i >= e1:  # a new span (spans start at chunk starts, so j <= e1 within)
                e0, e1 = i, min(i + span, T)
                rows = None if full else idx_h
                span_ids = ids[:, e0:e1] if idx is None else ids[:, e0:e1].index_select(0, idx)
                embedded = self.encoder.embed(span_ids)  # type: ignore[operator]  # nn.Module attrs: Tensor | Module
            e = embedded[:, i - e0 : j - e0] if embedded is not None and i < e1 else None
            if e is not None and rows is not None and len(idx_h) < len(rows):  # documents ended within the span
                e = e.index_select(0, torch.searchsorted(rows, idx_h).to(ids.device, non_blocking=True))
            elif e is not None and rows is None and idx is not None:
                e = e.index_select(0, idx)
            st = state if (idx is None or state is None) else _select_state(state, idx)
            ln = lengths if idx is None else lengths.index_select(0, idx)
            fk = first_kept if idx is None else first_kept.index_select(0, idx)
            with torch.set_grad_enabled(grad and pooled_here):
                out, _, st = self.encoder(x, st, embedded=e)  # raw: the head applies its own dropout (output_p)
            st = [tuple(t.detach() for t in layer) for layer in st]
            state = st if (idx is None or state is None) else _merge_state(state, idx, st)
            if last is None or mx is None or total is None:  # allocate the running pools once the width is known
                emb = out.shape[-1]
                last = out.new_zeros(bs, emb, dtype=torch.float32)
                mx = out.new_full((bs, emb), float("-inf"), dtype=torch.float32)
                total = out.new_zeros(bs, emb, dtype=torch.float32)
            if not pooled_here:
                continue
            # pool in float32 even under bf16 autocast: sums run over up to max_len steps
            c_max, c_sum, c_last = chunk_pool(out.float(), i, ln, fk)
            if idx is None:
                mx, total, last = torch.maximum(mx, c_max), total + c_sum, last + c_last
            else:
                mx = mx.index_copy(0, idx, torch.maximum(mx.index_select(0, idx), c_max))
                total = total.index_add(0, idx, c_sum)
                last = last.index_add(0, idx, c_last)
        assert last is not None and mx is not None and total is not None, "an empty batch"
        count = (lengths - first_kept).to(total.dtype)[:, None]
        return torch.cat([last, mx, total / count], dim=1)


def chunk_pool(out, start, lengths, first_kept):
    """One chunk's share of concat pooling: out [n, L, emb] holds positions [start, start + L) of n documents,
    each pooling positions [first_kept, length). -> (max, sum over the pooled positions, the output at
    length - 1 where it lies in this chunk, else zeros), each [n, emb]; a document with nothing to pool here
    gives -inf, 0, 0. Shape-generic and free of host syncs: the ONNX chunk step is traced from it too
    (`start` may be a 0-d tensor)."""
    n, L, emb = out.shape
    pos = start + torch.arange(L, device=out.device)[None, :]
    valid = (pos >= first_kept[:, None]) & (pos < lengths[:, None])  # [n, L]
    c_max = out.masked_fill(~valid[..., None], float("-inf")).amax(1)
    c_sum = (out * valid[..., None]).sum(1)
    off = lengths - 1 - start  # the last position's offset in this chunk
    ends_here = (off >= 0) & (off < L)
    c_last = out.gather(1, off.clamp(0, L - 1)[:, None, None].expand(n, 1, emb)).squeeze(1)
    return c_max, c_sum, torch.where(ends_here[:, None], c_last, torch.zeros_like(c_last))


def _span_tokens(bptt: int, max_len: int) -> int:
    """Tokens BPT3C embeds at once in training: twice the chunks a document pools over, plus one (a batch of
    similar lengths pools within one span); whole chunks, so that every chunk lies in one span."""
    return bptt * (2 * -(-max_len // bptt) + 1)


class LinBnDrop(nn.Sequential):
    """BatchNorm -> Dropout -> Linear (-> ReLU): one block of the classifier head."""

    def __init__(self, n_in: int, n_out: int, p: float = 0.0, relu: bool = True):
        layers: list[nn.Module] = [nn.BatchNorm1d(n_in)]
        if p > 0:
            layers.append(nn.Dropout(p))
        layers.append(nn.Linear(n_in, n_out, bias=False))  # the next BatchNorm (or the loss) absorbs a bias
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


HIDDEN_DROPOUT = 0.1  # the head's dropout after each of its hidden layers (the paper's)


def head_dropouts(pooled_p: float, n_hidden: int) -> list[float]:
    """One dropout per head block: `pooled_p` on the pooled features, then HIDDEN_DROPOUT after each hidden layer."""
    return [pooled_p] + [HIDDEN_DROPOUT] * n_hidden


def _default_head_dropouts() -> list[float]:
    # the head train-classifier builds under its default settings (0.4 x drop_mult 0.5, then 0.1)
    from .config import classifier_dropouts

    d = TrainClassifierSettings
    pooled_p = classifier_dropouts(default(d, "arch"))["output_p"] * default(d, "drop_mult")
    return head_dropouts(pooled_p, len(default(TrainClassifierSettings, "head")))


class PoolingHead(nn.Sequential):
    """Concat-pooled features [3 * emb] -> LinBnDrop blocks -> class logits.

    `sizes` = [3 * emb, hidden..., n_classes]; `dropouts` has one entry per block (`head_dropouts`)."""

    def __init__(self, sizes, dropouts):
        if len(dropouts) != len(sizes) - 1:
            raise ValueError(f"the head needs {len(sizes) - 1} dropouts for sizes {sizes}, got {len(dropouts)}")
        n = len(sizes) - 1
        super().__init__(*[LinBnDrop(sizes[k], sizes[k + 1], dropouts[k], relu=k < n - 1) for k in range(n)])


class SequenceClassifier(nn.Module):
    """encoder (BPT3C over an AWD-LSTM) + head. forward(ids, lengths) -> logits [bs, n_classes]."""

    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int,
        emb_size: int,
        hidden,
        dropouts,
        bptt: int,
        max_len: int,
        pad_id: int = 1,
    ):
        super().__init__()
        self.encoder = BPT3C(encoder, bptt, max_len, pad_id)
        self.head = PoolingHead([3 * emb_size, *hidden, n_classes], list(dropouts))

    def forward(self, ids, lengths=None):
        return self.head(self.encoder(ids, lengths))

    def param_groups(self):
        """[embedding, rnn 1, ..., rnn n, head]: input side first, the head last (trainable when frozen)."""
        enc = self.encoder.encoder
        groups = enc.param_groups() if hasattr(enc, "param_groups") else [list(enc.parameters())]
        return [list(g) for g in groups] + [list(self.head.parameters())]


@dataclass
class ClassifierSettings:
    """Everything besides the AWD-LSTM's ModelConfig that rebuilds a classifier; config.json["classifier"].

    head_dropouts: one per head block (`head_dropouts`: 0.4 x drop_mult on the pooled features, then 0.1).
    backwards: the model reads each document reversed (`... c b a xxbos`).
    quantized: load with int8 dynamic quantization of the LSTMs (weights are stored in float32).
    """

    classes: list[str] = field(metadata={"bounds": bounds(min_len=1)})
    # defaults: what train-classifier's default settings give (a folder's config.json always has these fields)
    head_hidden: list[int] = field(
        default_factory=lambda: default(TrainClassifierSettings, "head"), metadata={"bounds": bounds(ge=1)}
    )
    head_dropouts: list[float] = field(default_factory=_default_head_dropouts, metadata={"bounds": bounds(ge=0, lt=1)})
    max_len: int = field(default=TrainClassifierSettings.max_len, metadata={"bounds": bounds(ge=1)})
    bptt: int = field(default=TrainClassifierSettings.bptt, metadata={"bounds": bounds(ge=1)})
    backwards: bool = False
    add_eos: bool = False
    multi_label: bool = False
    threshold: float = field(default=TrainClassifierSettings.threshold, metadata={"bounds": bounds(gt=0, lt=1)})
    quantized: bool = False

    def __post_init__(self):
        me = "classifier settings"
        check(self, me)  # every field's type and bounds (a hand-edited config.json: "quantized": "no")
        if len(self.head_dropouts) != len(self.head_hidden) + 1:
            raise SettingsError(
                me,
                "head_dropouts",
                lambda f: (
                    f"{f('head_dropouts')} needs one dropout per head "
                    f"block: {len(self.head_hidden) + 1} for {f('head_hidden')} {self.head_hidden}, got "
                    f"{len(self.head_dropouts)}"
                ),
            )
        if len(set(self.classes)) != len(self.classes):
            raise SettingsError(me, "classes", f"names a class twice: {self.classes}")

    @classmethod
    def from_dict(cls, d: dict, where="config.json") -> "ClassifierSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UlmfitError(f"{where}: unknown classifier setting(s): {', '.join(unknown)}")
        if not d.get("classes"):
            raise UlmfitError(f"{where}: field 'classifier.classes' is missing or empty")
        try:
            return cls(**d)
        except SettingsError as e:
            raise UlmfitError(f"{where}: " + e.message(lambda f: f"field 'classifier.{f}'")) from None


def build_classifier(mcfg, settings: ClassifierSettings) -> SequenceClassifier:
    """A fresh classifier: an encoder of mcfg.arch under BPT3C, and the pooling head."""
    from .registry import build_encoder

    return SequenceClassifier(
        build_encoder(mcfg),
        len(settings.classes),
        mcfg.emb_size,
        settings.head_hidden,
        settings.head_dropouts,
        settings.bptt,
        settings.max_len,
        mcfg.pad_id,
    )
