"""The cleaning rules and the tokenizer on hostile text: no crash on any unicode, and time linear in the input."""

import random
import time

import pytest

from ulmfit.text.processor import TextProcessor, TokenTable
from ulmfit.text.rules import clean
from ulmfit.text.tokenizers import SpacyTokenizer

# Each was quadratic somewhere once (the caps regex on a long word; spaCy's suffix peeling on "!?!?...").
PATTERNS = {"word": "a", "caps": "A", "mixed case": "aB", "punctuation": "!?", "tag-like": "<a", "html": "<br />",
            "digits": "1", "dots": ".,", "quotes": "'\"", "spaces": "a ", "emoji": "\U0001F600x"}


@pytest.fixture(scope="module")
def processor():
    return TextProcessor(SpacyTokenizer(), TokenTable())


def _seconds(f, text, reps=3):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(text)
        best = min(best, time.perf_counter() - t)
    return best


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_time_is_linear_in_the_input(processor, name):
    unit = PATTERNS[name]
    n = 20_000 // len(unit)
    for f in (clean, lambda t: processor.encode([t + str(time.perf_counter_ns())])):  # a new chunk each time
        small, large = _seconds(f, unit * n), _seconds(f, unit * (8 * n))
        # linear: 8x the input takes ~8x the time; quadratic would take ~64x. Generous for a noisy machine,
        # and an absolute cap for 160k characters.
        assert large < max(20 * small, 0.05) and large < 3.0, (name, small, large)


def _random_text(rng: random.Random) -> str:
    pools = [
        lambda: chr(rng.randint(32, 126)),  # ascii
        lambda: chr(rng.randint(0, 31)),  # control characters
        lambda: chr(rng.randint(0xA0, 0x24F)),  # latin
        lambda: chr(rng.randint(0x4E00, 0x4E80)),  # CJK
        lambda: chr(rng.randint(0x1F300, 0x1F64F)),  # emoji
        lambda: chr(rng.randint(0xD800, 0xDFFF)),  # lone surrogates (e.g. from JSON "\\ud800")
        lambda: chr(rng.randint(0x300, 0x36F)),  # combining marks
        lambda: rng.choice([" ", "\n", "\t", "\u00a0", "\u2028", "<br />", "&amp;", "xxbos", "xxmaj", "#", "\\"]),
    ]
    n = rng.choice([0, 1, 5, 50, 500, 3000])
    return "".join(rng.choice(pools)() for _ in range(n))


def test_fuzz_any_unicode_encodes_without_error(processor):
    rng = random.Random(0)
    texts = [_random_text(rng) for _ in range(400)] + ["A" * 50_000, "\ud800" * 1000, "\x00" * 1000]
    t = time.perf_counter()
    for i in range(0, len(texts), 50):
        batch = texts[i : i + 50]
        ids = processor.encode(batch)
        assert len(ids) == len(batch) and all(a.ndim == 1 and len(a) >= 1 for a in ids)  # at least xxbos
    assert time.perf_counter() - t < 60


def test_lone_surrogates_in_a_source_are_kept_as_replacement_characters(tmp_path):
    import json

    import ulmfit
    from ulmfit.settings import TableSettings

    (tmp_path / "t.jsonl").write_text('{"text": "bad \\ud800 text", "label": "a"}\n{"text": "fine", "label": "b"}\n')
    meta = ulmfit.prepare("table", str(tmp_path / "t.jsonl"), tmp_path / "d", TableSettings(quiet=True))
    doc = json.loads((tmp_path / "d" / "documents.jsonl").read_text().splitlines()[0])
    assert doc["text"] == "bad \ufffd text" and meta["n_docs"] == 2
    assert "t.jsonl:1" in json.dumps(meta["skipped"]) and "U+FFFD" in json.dumps(meta["skipped"])
