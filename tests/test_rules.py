import numpy as np

from ulmfit.text import rules
from ulmfit.text.special import SPECIAL_TOKENS


def test_fix_html():
    assert rules.fix_html("a<br /><br />b") == "a\n\nb"
    assert rules.fix_html("A &amp; B &quot;x&quot; it&#39;s") == 'A & B "x" it\'s'
    assert rules.fix_html("stray #39;s and amp; nbsp;") == "stray 's and & " + " "
    assert rules.fix_html("a @-@ b @,@ c @.@ d") == "a-b,c.d"
    assert rules.fix_html("<i>italic</i>") == " italic "


def test_replace_rep():
    assert rules.replace_rep("wow!!!!!") == "wow xxrep 5 ! "
    assert rules.replace_rep("cooool") == "c xxrep 4 o l"
    assert rules.replace_rep("ooo") == "ooo"  # three is not a repeat


def test_add_spaces():
    assert rules.add_spaces("a/b#c\\d") == "a / b # c \\ d"


def test_replace_caps():
    assert rules.replace_caps("This is GREAT") == "xxmaj This is xxup GREAT"
    assert rules.replace_caps("I saw McDonald iPhone") == "I saw McDonald iPhone"  # I: one letter; mixed: none
    assert rules.replace_caps("Élan ÉTÉ") == "xxmaj Élan xxup ÉTÉ"


def test_clean_composes_rules_in_order():
    assert rules.clean("This is GREAT!!!!<br />Go/stop") == "xxmaj this is xxup great xxrep 4 ! xxmaj go / stop"


def test_collapse_spaces():
    assert rules.collapse_spaces("  a \n\n b\t c ") == "a b c"


def test_mark_word_repeats_on_ids():
    n = len(SPECIAL_TOKENS)
    w, x = n + 1, n + 2
    count_ids = {3: 100, 4: 101}
    ids = np.array([2, x, w, w, w, w, x, x, 2, 2, 2], dtype=np.int32)
    out, dropped = rules.mark_word_repeats(ids, 6, count_ids.__getitem__)
    assert out.tolist() == [2, x, 6, 101, w, x, x, 2, 2, 2]  # specials (bos) are never marked
    assert dropped.tolist() == [5]
    same, none = rules.mark_word_repeats(np.array([2, w, w, x], dtype=np.int32), 6, count_ids.__getitem__)
    assert same.tolist() == [2, w, w, x] and len(none) == 0
