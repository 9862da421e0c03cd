"""Sampling text from a LanguageModel, and turning sampled tokens back into readable text."""

from __future__ import annotations

import torch

from ..text.special import BOS, EOS, MAJ, PAD, PAD_ID, REP, UNK_ID, UP, WREP


@torch.inference_mode()
def sample(lm, ids, n_words: int, temperature: float = 1.0, generator=None, banned=(UNK_ID, PAD_ID)):
    """Continue the 1-D id sequence `ids` by `n_words` sampled ids (returned as a list of ints).

    temperature 0 is greedy decoding; `banned` ids (unknown word, padding) are never produced."""
    lm.eval()
    device = next(lm.parameters()).device
    x = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)
    if x.numel() == 0:
        raise ValueError("sample() needs at least one prompt id (e.g. bos)")
    state, out = None, []
    for _ in range(n_words):
        logits, _, _, state = lm(x, state)
        logits = logits[0, -1].float()
        if banned:
            logits[list(banned)] = float("-inf")
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = int(torch.multinomial(probs.cpu(), 1, generator=generator))
        out.append(nxt)
        x = torch.tensor([[nxt]], device=device)  # the state carries the context
    return out


_NO_SPACE_BEFORE = {".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "n't", "'s", "'re", "'ve", "'m", "'ll", "'d", "'"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}


def detokenize(tokens) -> str:
    """Undo the recipe's token rules well enough to read: xxmaj/xxup capitalization, xxrep/xxwrep
    repetitions, markers dropped, no space before punctuation or clitics."""
    words, i, toks = [], 0, list(tokens)
    while i < len(toks):
        t = toks[i]
        if t in (BOS, PAD):
            i += 1
            continue
        if t == EOS:
            words.append("\n")
        elif t in (MAJ, UP) and i + 1 < len(toks):
            nxt = toks[i + 1]
            words.append(nxt[:1].upper() + nxt[1:] if t == MAJ else nxt.upper())
            i += 1
        elif t in (REP, WREP) and i + 2 < len(toks) and toks[i + 1].isdigit():
            n, w = int(toks[i + 1]), toks[i + 2]
            words.append(w * n if t == REP else " ".join([w] * n))
            i += 2
        elif t not in (MAJ, UP, REP, WREP):
            words.append(t)
        i += 1
    text = ""
    for w in words:
        if text and not text.endswith(("\n", *_NO_SPACE_AFTER)) and w not in _NO_SPACE_BEFORE and w != "\n":
            text += " "
        text += w
    return text.strip(" ")


def generate(model, prompt: str, settings=None) -> str:
    """A language-model folder (or shipped name) continues `prompt` -> the detokenized text, prompt included."""
    from ..artifacts import load_language_model
    from ..errors import UlmfitError
    from ..pretrained import resolve_lm
    from ..settings import GenerateSettings
    from ..text.vocab import Vocab

    s = settings or GenerateSettings()
    if s.n_words < 1:
        raise UlmfitError("n_words must be at least 1")
    lm, _, encoder = load_language_model(model)
    itos = Vocab.load(resolve_lm(model) / "vocab.json").itos
    ids = encoder.encode([prompt])[0]
    gen = torch.Generator().manual_seed(s.seed) if s.seed is not None else None
    if s.seed is not None:
        torch.manual_seed(s.seed)
    new = sample(lm, ids, s.n_words, s.temperature, generator=gen)
    return detokenize([itos[int(i)] for i in list(ids) + new])
