"""Why a classifier decided: per-token integrated gradients (IG) on the input embeddings.

    clf.explain("A wonderful film.")   # {"label", "probability", "tokens": ["A", "wonderful", ...], "scores": [...]}

IG (Sundararajan et al. 2017) integrates the gradient of the predicted class's probability along the straight
path from a baseline input (all embeddings zero) to the text's embeddings; a token's score is its embedding
times the path's mean gradient, summed over the embedding's width. The scores add up to p(text) - p(baseline)
(completeness), so each says how much probability its token brings. Our own ~40 lines rather than Captum: no
extra dependency, and BPT3C embeds spans of a document itself, so the embeddings are reached by wrapping the
encoder's `embed` (which sees every embedding the model reads, in reading order) rather than a layer hook.
"""

from __future__ import annotations

import copy
import html
import threading

import numpy as np
import torch

from .errors import UlmfitError
from .text.special import BOS, EOS, EOS_ID, FLD, MAJ, PAD, REP, UP, WREP

_local = threading.local()  # the IG pass of this thread, if any: predictions on other threads see plain embed
_wrap_lock = threading.Lock()
_NO_SPACE_BEFORE = {".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "n't", "'s", "'re", "'ve", "'m", "'ll", "'d"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}
_PATH_TOKENS = 8192  # tokens per forward/backward pass over path points (memory grows with it)


class _Pass:
    def __init__(self, alphas):
        self.alphas, self.pieces = alphas, []  # pieces: (embeddings as read, their scaled copy on the path)


def _wrap_embed(encoder):
    """Wrap encoder.embed once: inside an IG pass of this thread it scales each embedding by the pass's alphas
    (one per batch row) and keeps it for the gradient."""
    with _wrap_lock:
        if getattr(encoder, "_ig_plain_embed", None) is not None:
            return
        plain = encoder.embed

        def embed(ids):
            x = plain(ids)
            p = getattr(_local, "ig", None)
            if p is None:
                return x
            scaled = (x.detach() * p.alphas.view(-1, 1, 1).to(x.dtype)).requires_grad_(torch.is_grad_enabled())
            p.pieces.append((x.detach(), scaled))
            return scaled

        encoder._ig_plain_embed = plain
        encoder.embed = embed


def _probs(logits, multi_label):
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)


def integrated_gradients(model, x, lengths, target: int, steps: int, multi_label: bool):
    """x [1, T] ids (as the model reads them) -> (scores [T] float64, probabilities [n_classes] of x,
    the target's probability at the zero baseline). Midpoint rule over `steps` points of the path."""
    T = x.shape[1]
    # BPT3C detaches the state between its bptt chunks (truncated backprop), which would cut each token's
    # gradient at its chunk's end: a shallow copy sharing the weights reads the document in one chunk (the same
    # function: detaching changes gradients, not values).
    bpt3c = copy.copy(model.encoder)
    bpt3c.bptt = max(T, bpt3c.bptt)
    _wrap_embed(bpt3c.encoder)

    def whole(ids, lens):
        return model.head(bpt3c(ids, lens))

    def run(alphas, grad):
        _local.ig = p = _Pass(alphas)
        try:
            with torch.set_grad_enabled(grad):
                probs = _probs(whole(x.expand(len(alphas), T), lengths.expand(len(alphas))).float(), multi_label)
        finally:
            _local.ig = None
        return probs, p

    with torch.no_grad():
        p_x = _probs(model(x, lengths).float(), multi_label)[0]
        p_base = float(run(torch.zeros(1), False)[0][0, target])
    total = torch.zeros(T, dtype=torch.float64)
    chunk = max(1, _PATH_TOKENS // T)
    for alphas in ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps).split(chunk):
        probs, p = run(alphas, True)
        used = [s for _, s in p.pieces if s.requires_grad]
        grads = iter(torch.autograd.grad(probs[:, target].sum(), used, allow_unused=True) if used else [])
        emb = torch.cat([e for e, _ in p.pieces], 1)
        g = torch.cat([_grad_or_zero(s, grads) for _, s in p.pieces], 1)
        if emb.shape[1] != T:
            raise UlmfitError(
                f"explain: the encoder embedded {emb.shape[1]} positions of a {T}-token input; it "
                "must read its embeddings through `embed` (the encoder contract)"
            )
        total += (emb * g).sum((0, 2)).double()  # baseline 0: (x - 0) * gradient
    return (total / steps).numpy(), p_x.numpy(), p_base


def _grad_or_zero(s, grads):
    if not s.requires_grad:
        return torch.zeros_like(s)
    g = next(grads)
    return torch.zeros_like(s) if g is None else g


def _float_model(clf):
    """The float torch model to differentiate: int8 and ONNX models have no gradients, so their folder's float
    weights are loaded once and kept on the classifier."""
    if not clf.int8 and isinstance(clf.model, torch.nn.Module) and getattr(clf, "backend", "torch") == "torch":
        return clf.model
    cached = getattr(clf, "_explain_model", None)
    if cached is None:
        if clf.folder is None:
            raise UlmfitError("explain needs float weights: this int8 classifier was not loaded from a folder")
        from .artifacts import load_classifier

        cached = clf._explain_model = load_classifier(clf.folder)[0].eval()
    return cached


def _words(clf, text, ids):
    """The tokens of `text` as strings (an unknown word as itself, not xxunk), else the vocab's."""
    from .text.processor import TextProcessor, TokenTable

    table = TokenTable()
    flat, _ = TextProcessor(clf.encoder.tokenizer, table).encode_batch([text])
    itos = list(table.stoi)
    words = [itos[i] for i in flat]
    return words if len(words) == len(ids) else [clf.encoder.vocab.itos[i] for i in ids]


def readable(words, scores):
    """Tokens as a reader sees them -> (tokens, scores, spaces: a space before each token). Markers fold into
    the word they mark (xxmaj great -> Great, xxrep 4 ! -> !!!!) with their scores added; xxbos, xxpad, xxeos
    and field markers are not shown."""
    toks: list[str] = []
    out: list[float] = []
    i = 0
    while i < len(words):
        w, s = words[i], float(scores[i])
        if w in (BOS, PAD, EOS):
            i += 1
            continue
        if w == FLD:
            i += 2 if i + 1 < len(words) and words[i + 1].isdigit() else 1
            continue
        if w in (MAJ, UP) and i + 1 < len(words):
            nxt = words[i + 1]
            toks.append(nxt[:1].upper() + nxt[1:] if w == MAJ else nxt.upper())
            out.append(s + float(scores[i + 1]))
            i += 2
            continue
        if w in (REP, WREP) and i + 2 < len(words) and words[i + 1].isdigit():
            n, x = int(words[i + 1]), words[i + 2]
            toks.append(x * n if w == REP else " ".join([x] * n))
            out.append(s + float(scores[i + 1]) + float(scores[i + 2]))
            i += 3
            continue
        toks.append(w)
        out.append(s)
        i += 1
    spaces = [k > 0 and t not in _NO_SPACE_BEFORE and toks[k - 1] not in _NO_SPACE_AFTER for k, t in enumerate(toks)]
    return toks, out, spaces


def explain(clf, text: str, steps: int) -> dict:
    """`TextClassifier.explain`: the predicted class (the most probable label for a multi-label classifier)
    and each token's share of its probability."""
    from .batching.documents import pad_collate

    if not isinstance(text, str):
        raise UlmfitError(f"explain takes one text (a str), got {type(text).__name__}")
    s = clf.settings
    model = _float_model(clf)
    ids = clf.encode([text])[0]
    with clf.encode_lock:  # _words tokenizes too, and other threads may tokenize with this classifier
        words = _words(clf, text, ids)
    x, lengths = pad_collate([ids], model.encoder.pad_id, EOS_ID if s.add_eos else None, s.backwards)
    with torch.no_grad():
        target = int(_probs(model(x, lengths).float(), s.multi_label)[0].argmax())
    scores, probs, p_base = integrated_gradients(model, x, lengths, target, steps, s.multi_label)
    if s.backwards:  # the model read the document reversed: scores back to reading order
        scores = scores[::-1]
    scores = scores[: len(ids)]  # an appended xxeos is not the user's
    tokens, shown, spaces = readable(words, scores)
    out = {
        "label": clf.classes[target],
        "probability": float(probs[target]),
        "probabilities": {c: round(float(v), 6) for c, v in zip(clf.classes, probs)},
    }
    if s.multi_label:
        out["labels"] = [c for c, v in zip(clf.classes, probs) if v >= s.threshold]
    return {
        **out,
        "tokens": tokens,
        "scores": [round(v, 6) for v in shown],
        "spaces": spaces,
        "baseline_probability": round(p_base, 6),
        "total": round(float(np.sum(scores)), 6),
        "steps": steps,
    }


def to_html(result: dict, title: str = "ulmfit explain") -> str:
    """A standalone page: the label, its probabilities, and the text with each token shaded by its score
    (green for, red against the label; spans carry data-score)."""
    scale = max([abs(v) for v in result["scores"]] + [1e-12])
    spans = []
    for t, v, sp in zip(result["tokens"], result["scores"], result["spaces"]):
        rgb = "22,163,74" if v >= 0 else "220,38,38"
        spans.append(
            f'{" " if sp else ""}<span class="tok" data-score="{v:.6f}" title="{v:+.4f}" '
            f'style="background: rgba({rgb},{abs(v) / scale:.3f})">{html.escape(t)}</span>'
        )
    probs = "".join(f"<tr><td>{html.escape(c)}</td><td>{p:.4f}</td></tr>" for c, p in result["probabilities"].items())
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}.tok{padding:0 1px;border-radius:3px}"
        "#tokens{line-height:1.8}</style></head><body>"
        f"<h1>{html.escape(result['label'])} <small>({result['probability']:.3f})</small></h1>"
        f'<table>{probs}</table><p id="tokens">{"".join(spans)}</p>'
        f"<p><small>integrated gradients, {result['steps']} steps; green: for the label, red: against</small></p>"
        "</body></html>\n"
    )
