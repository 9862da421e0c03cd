"""Cleaning rules: pure functions from str to str, applied in `RULES` order before tokenization.

The special-token rules work on the raw string (not on tokens), so the expensive tokenizer sees
lower-cased text made of far fewer distinct words. What they produce (token strings in special.py):

    fix_html        "<br />" -> newline, HTML entities decoded, wikitext "@-@" "@,@" "@.@" joined
    replace_rep     a character repeated 4+ times: "!!!!!" -> " xxrep 5 ! "
    add_spaces      spaces around "/", "#" and "\\" so they are tokens of their own
    replace_caps    "GREAT" -> "xxup great" (all caps, 2+ letters); "Great" -> "xxmaj great"
                    (capital then lower case); other words just lower-cased ("McDonald" -> "mcdonald")
    lowercase       everything else lower-cased
    collapse_spaces runs of whitespace (newlines too) -> one space, no leading/trailing space
and, after tokenization, on token ids:
    mark_word_repeats  a token repeated 3+ times: "so so so" -> "xxwrep 3 so"
Every document starts with "xxbos"; a document of several fields gets "xxfld N" (N from 1) before
field N. Line breaks are not kept: they become plain spaces.
"""

from __future__ import annotations

import html
import re

import numpy as np

from .special import MAJ, REP, SPECIAL_TOKENS, UP

_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_ENTITY_FIXES = [
    ("#39;", "'"),
    ("amp;", "&"),
    ("#146;", "'"),
    ("nbsp;", " "),
    ("quot;", '"'),
    ("\\n", "\n"),
    ('\\"', '"'),
    (" @.@ ", "."),
    (" @,@ ", ","),
    (" @-@ ", "-"),
]
_TAGS = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>")
# A surrogate code point in a str is always a lone half (JSON "\ud800", undecodable bytes in argv/stdin): no
# UTF-8 encodes it and the tokenizer would fail on it. It becomes the replacement character.
_SURROGATES = re.compile("[\ud800-\udfff]")


def replace_surrogates(s: str) -> str:
    return _SURROGATES.sub("\ufffd", s) if _SURROGATES.search(s) else s


def fix_html(s: str) -> str:
    s = replace_surrogates(s)
    s = _BR.sub("\n", s)
    if "&" in s:  # proper entities first, then the stray halves scraped text often has
        s = html.unescape(s)
    for a, b in _ENTITY_FIXES:
        if a in s:
            s = s.replace(a, b)
    if "<" in s:
        s = _TAGS.sub(" ", s)
    return s


_REP = re.compile(r"(\S)\1{3,}")


def replace_rep(s: str) -> str:
    return _REP.sub(lambda m: f" {REP} {len(m.group())} {m.group(1)} ", s)


_SPECIAL_CHARS = re.compile(r"([/#\\])")


def add_spaces(s: str) -> str:
    return _SPECIAL_CHARS.sub(r" \1 ", s)


# Words holding an upper-case letter (ASCII or Latin-1); only those need a look. The look-behind anchors a
# match at the start of a word: without it the engine retried from every position inside a long word with
# no capital, quadratic in its length (a 60,000-character word took 19 s).
_CAPS_WORD = re.compile(r"(?<!\w)\w*[A-Z\u00C0-\u00D6\u00D8-\u00DE]\w*")


def _caps(m) -> str:
    w = m.group()
    if len(w) > 1 and w.isupper():
        return f"{UP} {w}"
    if w[0].isupper() and w[1:].islower():
        return f"{MAJ} {w}"
    return w


def replace_caps(s: str) -> str:
    """Mark all-caps and capitalised words (lower-casing is the next rule's job)."""
    return _CAPS_WORD.sub(_caps, s)


def lowercase(s: str) -> str:
    return s.lower()


def collapse_spaces(s: str) -> str:
    return " ".join(s.split())


# fix_html may join or split words, so it runs on the whole text. The other string rules only ever
# look inside one whitespace-free chunk, so the tokenizing code applies them once per distinct chunk.
CHUNK_RULES = [replace_rep, add_spaces, replace_caps, lowercase]


def clean(s: str) -> str:
    """The string rules on a whole text (what the tokenizer sees, before word repeats are marked)."""
    s = fix_html(s)
    for rule in CHUNK_RULES:
        s = rule(s)
    return collapse_spaces(s)


def mark_word_repeats(ids: np.ndarray, wrep_id: int, count_id, min_count: int = 3):
    """Token-level rule: a token repeated `min_count`+ times in a row -> `xxwrep N token`.

    `ids` is a 1-D id array; `count_id(n)` gives the id of the token for the number n. Returns
    (new ids, the positions in the input where the dropped tokens were), so callers can fix lengths.
    Special tokens (ids below 9) are never marked.
    """
    if len(ids) < min_count:
        return ids, np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(ids)]]))
    hit = (lengths >= min_count) & (ids[starts] >= len(SPECIAL_TOKENS))
    if not hit.any():
        return ids, np.zeros(0, dtype=np.int64)
    out = ids.copy()
    keep = np.ones(len(ids), dtype=bool)
    for s, n in zip(starts[hit].tolist(), lengths[hit].tolist()):
        w = out[s]
        out[s], out[s + 1], out[s + 2] = wrep_id, count_id(n), w
        keep[s + 3 : s + n] = False
    return out[keep], np.flatnonzero(~keep)
