"""Folding, tokenising and Arabic proclitic rules of transforms/textnorm.py."""
from __future__ import annotations

import pytest

from transforms.textnorm import fold, lookup_keys, tokenize, wildcard_letters


@pytest.mark.parametrize("text, folded", [
    ("RAQQA", "raqqa"),
    ("Élysée", "elysee"),
    ("Façade Şam Türkiye", "facade sam turkiye"),
    ("Kurdistanê û Sûriyê", "kurdistane u suriye"),
    ("İstanbul", "istanbul"),
    ("ırak", "irak"),
    ("Straße", "strasse"),
    ("الرَّقَّة", "الرقه"),          # tashkeel (shadda, fatha) stripped, ة -> ه
    ("الـــرقـة", "الرقه"),          # tatweel stripped
    ("أحمد إدلب آمن ٱلله", "احمد ادلب امن الله"),
    ("مدرسة", "مدرسه"),
    ("مصطفى", "مصطفي"),
    ("کوردی", "كوردي"),               # Persian/Kurdish keheh and yeh
    ("٢٠١٧ ۲۰۱۷", "2017 2017"),
    ("ﻻ", "لا"),                      # presentation form
])
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_fold_keeps_hamza_on_waw_and_yeh() -> None:
    # only the contract's alef forms are folded; ؤ and ئ stay distinct letters
    assert fold("مؤتمر رئيس") == "مؤتمر رئيس"


def test_tokenize_keeps_surface_and_span() -> None:
    text = "Offensive on «Raqqa», وبالرَّقة!"
    tokens = tokenize(text)
    assert [t.folded for t in tokens] == ["offensive", "on", "raqqa", "وبالرقه"]
    assert [t.surface for t in tokens] == ["Offensive", "on", "Raqqa", "وبالرَّقة"]
    assert all(text[t.start:t.end] == t.surface for t in tokens)


def test_tokenize_splits_on_apostrophes_and_hyphens() -> None:
    assert [t.folded for t in tokenize("l'offensive Rakka'da Deir ez-Zor")] == \
        ["l", "offensive", "rakka", "da", "deir", "ez", "zor"]


def test_tokenize_skips_punctuation_and_tatweel_only() -> None:
    assert tokenize("... — ـــ !!") == []


@pytest.mark.parametrize("token", ["الرقه", "بالرقه", "والرقه", "وبالرقه", "للرقه", "وللرقه",
                                   "فالرقه", "كالرقه", "فبالرقه"])
def test_definite_term_matches_stacked_proclitics(token: str) -> None:
    assert "الرقه" in lookup_keys(token)


@pytest.mark.parametrize("token", ["ورقه", "رقه", "برقه", "الورقه", "لرقه"])
def test_definite_term_needs_the_article(token: str) -> None:
    assert "الرقه" not in lookup_keys(token)


def test_bare_term_matches_with_or_without_article() -> None:
    for token in ["هجوم", "الهجوم", "والهجوم", "بالهجوم", "وبهجوم", "للهجوم"]:
        assert "هجوم" in lookup_keys(token), token
    assert "هجوم" not in lookup_keys("هجومها")      # suffixes are not stripped
    assert "رقه" in lookup_keys("ورقه")             # و + رقة: the bare term matches


def test_proclitics_leave_two_letters() -> None:
    assert lookup_keys("ول") == ("ول",)
    assert lookup_keys("وال") == ("وال", "ال")     # never the empty stem after وال


def test_latin_tokens_have_one_key() -> None:
    assert lookup_keys("wallraqqa") == ("wallraqqa",)


def test_wildcard_letters_ignore_article() -> None:
    assert wildcard_letters("الرق") == 2
    assert wildcard_letters("offens") == 6


# --- issue 14 ------------------------------------------------------------------------------------

def test_persian_ezafe_heh_folds_like_heh_with_hamza() -> None:
    from transforms.textnorm import fold
    assert fold("خانۀ") == fold("خانهٔ") == fold("خانه")


def test_ligatures_are_expanded_before_tokenising() -> None:
    from transforms.textnorm import tokenize
    salla = [t.folded for t in tokenize("النبي ﷺ قال")]
    assert salla == ["النبي", "صلي", "الله", "عليه", "وسلم", "قال"]
    basmala = tokenize("﷽ في البداية")
    assert [t.folded for t in basmala][:4] == ["بسم", "الله", "الرحمن", "الرحيم"]
    assert {t.surface for t in basmala[:4]} == {"﷽"} and basmala[0].start == 0
    assert basmala[4].surface == "في" and basmala[4].start == 2
