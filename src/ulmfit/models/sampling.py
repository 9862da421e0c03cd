"""Sampling text from a LanguageModel (`sample`), and `generate`: a prompt continued as readable text."""

from __future__ import annotations

import torch

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
