"""Sampling text from a LanguageModel (`sample`), and `generate`: a prompt continued as readable text."""

from __future__ import annotations

import torch

from ..text.detokenize import detokenize
from ..text.special import PAD_ID, UNK_ID


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


def generate(model, prompt: str, settings=None) -> str:
    """A language-model folder (or shipped name) continues `prompt` -> the detokenized text, prompt included."""
    from ..artifacts import load_language_model
    from ..pretrained import resolve_lm
    from ..settings import GenerateSettings
    from ..text.vocab import Vocab

    s = settings or GenerateSettings()  # checked when made (n_words >= 1, temperature >= 0)
    lm, _, encoder = load_language_model(model)
    itos = Vocab.load(resolve_lm(model) / "vocab.json").itos
    ids = encoder.encode([prompt])[0]
    gen = torch.Generator().manual_seed(s.seed) if s.seed is not None else None
    if s.seed is not None:
        torch.manual_seed(s.seed)
    new = sample(lm, ids, s.n_words, s.temperature, generator=gen)
    return detokenize([itos[int(i)] for i in list(ids) + new])
