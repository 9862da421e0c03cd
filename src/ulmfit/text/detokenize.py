"""Tokens back into readable text: the inverse of the cleaning rules (`rules.py`), as far as it goes."""

from __future__ import annotations

from .special import BOS, EOS, MAJ, PAD, REP, UP, WREP

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
