"""What a term matches with morphology on, per language, and what it must not match."""
from __future__ import annotations

import pytest

from transforms.morphology import (kurmanji_stem, kurmanji_stems, one_letter_stems,
                                   sorani_stem, sorani_stems)
from transforms.query import matches, parse_query
from transforms.spec import SpecErrors
from transforms.textnorm import fold
from transforms.topic_matcher import Tagger
from transforms.topic_rules import TopicSpec, parse_topics

CASES = [
    # (language, term, texts it matches, texts it must not match)
    ("ar", "الرقة", ["بالرقة", "والرقة", "وبالرقة", "للرقة", "الرقة"], ["ورقة", "رقة", "الورقة"]),
    ("ar", "تقدم", ["يتقدم الجيش", "تقدمت القوات", "التقدم"], ["قدم", "مقدمة"]),
    ("ar", "حصار", ["حصاراً خانقاً", "الحصار", "حصارها"], ["حصان"]),
    ("ar", "نزوح", ["نزوحهم من المدينة", "النزوح"], ["نزاع"]),
    ("ar", "غارة", ["غارات جوية", "الغارات", "غارة"], ["غيرة", "مغارة"]),
    ("ar", "سيطرة", ["سيطرت القوات", "السيطرة على"], ["سطر"]),
    ("ar", "مقاتل", ["المقاتلين الأجانب", "مقاتلون"], ["قتل"]),
    ("en", "offensive", ["offensives", "the Offensive"], ["offer", "office"]),
    ("en", "capture", ["captured", "captures", "capturing"], ["caption"]),
    ("en", "refugee", ["refugees"], ["refund"]),
    ("fr", "attaque", ["attaques", "attaquer"], ["attache"]),
    ("fr", "déplacé", ["déplacés", "deplacees"], ["placé"]),
    ("fr", "djihadiste", ["djihadistes"], ["jihad"]),
    ("tr", "mülteci", ["mülteciler"], ["müttefik"]),
    ("tr", "çatışma", ["çatışmalar", "çatışmaları"], ["çatı"]),
    ("tr", "operasyon", ["operasyonu", "operasyonlar"], ["opera"]),
    ("ku-kmr", "Efrîn", ["Efrînê", "li Efrînê", "Efrînî"], ["Efes"]),
    ("ku-kmr", "Reqa", ["Reqayê", "Reqa"], ["Reqem"]),
    ("ku-kmr", "koçber", ["koçberên", "koçberan"], ["koç"]),
    ("ku-ckb", "ئەفرین", ["ئەفرینی", "لە ئەفرینەوە"], ["ئەفسەر"]),
    ("ku-ckb", "ڕەققە", ["ڕەققەدا", "ڕەققەی"], ["ڕەق"]),
    ("ku-ckb", "ئاوارە", ["ئاوارەکان", "ئاوارەکانی"], ["ئاوا"]),
]


@pytest.mark.parametrize("language,term,hits,misses", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_term_matches_inflected_forms_and_not_lookalikes(language: str, term: str,
                                                        hits: list[str], misses: list[str]) -> None:
    query = parse_query(term)
    for text in hits:
        assert matches(query, text), f"{term} should match {text}"
    for text in misses:
        assert not matches(query, text), f"{term} should not match {text}"


def test_morphology_off_matches_exact_forms_only() -> None:
    assert matches(parse_query("offensive"), "offensives")
    assert not matches(parse_query("=offensive"), "offensives")
    assert matches(parse_query("=offensive"), "Offensive")                  # still folded
    assert not matches(parse_query("offensive", morphology=False), "offensives")
    assert not matches(parse_query('="air strike"'), "air strikes")
    assert matches(parse_query('"air strike"'), "air strikes")
    assert not matches(parse_query("title:=ISIS"), "", "ISIS")               # title only
    assert matches(parse_query("title:=ISIS"), "ISIS fighters", "")


def test_article_rule_holds_with_morphology() -> None:
    # the contract: a term written with the article needs it; ورقة is و + رقة
    for text in ("بالرقة", "والرقة", "وبالرقة", "للرقة", "فالرقة", "والرقه"):
        assert matches("الرقة", text), text
    for text in ("ورقة", "ورقته", "الورقة", "رقة"):
        assert not matches("الرقة", text), text


def test_evidence_keeps_the_surface_form() -> None:
    tagger = Tagger([TopicSpec("t", "T", "تقدم OR Efrîn OR offensive")])
    result = tagger.tag("يتقدم الجيش نحو Efrînê", "Offensives continue")
    assert result.topics == ("t",)
    (_, evidence), = result.evidence
    assert dict(evidence) == {"تقدم": ("يتقدم",), "Efrîn": ("Efrînê",),
                              "offensive": ("Offensives",)}


def test_topic_level_switch() -> None:
    exact = Tagger([TopicSpec("t", "T", "offensive", morphology=False)])
    assert exact.tag("offensives", "").topics == ()
    assert exact.tag("offensive", "").topics == ("t",)
    (spec,) = parse_topics([{"id": "t", "query": "offensive", "morphology": False}])
    assert spec.morphology is False
    with pytest.raises(SpecErrors, match="morphology must be true or false"):
        parse_topics([{"id": "t", "query": "x", "morphology": "no"}])


def test_validation_reports_a_one_letter_stem() -> None:
    assert one_letter_stems("es", "ES") == ["e"]          # English: ES -> e
    assert one_letter_stems(fold("offensive"), "offensive") == []
    with pytest.raises(SpecErrors, match="'es' stems to 'e'.*=ES"):
        parse_topics([{"id": "t", "query": "ES OR Rakka"}])
    with pytest.raises(SpecErrors, match="weights\\[0\\].term"):
        parse_topics([{"id": "t", "weights": [{"term": "ES", "weight": 1}], "threshold": 1}])
    # the exact form or morphology off are fine
    parse_topics([{"id": "t", "query": "=ES OR Rakka"}])
    parse_topics([{"id": "t", "query": "ES", "morphology": False}])


def test_kurdish_rules() -> None:
    assert kurmanji_stem(fold("Efrînê")) == "efrin"
    assert kurmanji_stem(fold("Reqayê")) == kurmanji_stem("reqa")
    assert kurmanji_stem("ser") == "ser"          # never below 3 letters
    assert sorani_stem(fold("ئەفرینی")) == fold("ئەفرین")
    assert sorani_stem(fold("ئاوارەکان")) == sorani_stem(fold("ئاوارە"))


def _share(stems, a: str, b: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(set(stems(fold(a))) & set(stems(fold(b))))


# (base, inflected forms that must share a stem with it, words that must not)
KURMANJI = [
    ("Reqa", ["Reqayê", "Reqaya", "Reqayêda"], ["req", "Reqem"]),
    ("Sûriye", ["Sûriyeyê", "Sûriyê", "Sûrî", "Sûriya", "Sûrîyayê"], ["sure", "Sûr"]),
    ("Kobanî", ["Kobaniyê", "Kobanê", "Kobanîyê"], ["Kob", "koba"]),
    ("Efrîn", ["Efrînê", "Efrîna", "Efrînêda", "Efrîneke"], ["Efr", "Efes"]),
    ("Erdogan", ["Erdoganê", "Erdogana"], ["Erdem"]),
    ("Serêkanî", ["Serêkaniyê"], ["serek", "serê", "ser"]),
    ("koçber", ["koçberên", "koçberan", "koçberekî"], ["koç"]),
    ("Zor", ["Zorê"], ["Zora", "zorî"]),        # only -ê is cut from a 3-letter word
    ("Roj", ["Roj"], ["roja", "rojên"]),          # the Roj camp is not roja, day
    ("Minbic", ["Minbicê"], ["Minber"]),
    ("Tirkiye", ["Tirkiyê", "Tirkiya", "Tirkî"], ["Tirş"]),
]

SORANI = [
    ("ڕەققە", ["ڕەققەدا", "ڕەققەی", "ڕەققەکەدا", "ڕەققەش", "ڕەققەوە"], ["ڕەق", "ڕەقەم"]),
    ("ڕەقە", ["ڕەقەدا", "ڕەقەی"], ["ڕەق"]),      # ڕەق is "hard"
    ("کۆبانی", ["کۆبانێ", "کۆبانێدا", "کۆبانییەوە"], ["کۆب"]),
    ("سەرێکانی", ["سەرێکانیدا"], ["سەر", "سەری"]),  # سەر is "head, on"
    ("ئاوارە", ["ئاوارەکان", "ئاوارەکانی", "ئاوارەکانیش", "ئاوارەیەک"], ["ئاوا"]),
    ("هێرش", ["هێرشێکی", "هێرشیش", "هێرشەکان"], ["هێز"]),
    ("هۆڵ", ["هۆڵی"], ["هۆ"]),
    ("ئێران", ["ئێرانی", "ئێرانیش"], ["ئێرە"]),     # ئێرە is "here"
    ("کەمپ", ["کەمپەکان", "کەمپەکەدا"], ["کەم"]),
]


@pytest.mark.parametrize("base,forms,others", KURMANJI, ids=[c[0] for c in KURMANJI])
def test_kurmanji_endings(base: str, forms: list[str], others: list[str]) -> None:
    for form in forms:
        assert _share(kurmanji_stems, base, form), (base, form, kurmanji_stems(fold(form)))
    for other in others:
        assert not _share(kurmanji_stems, base, other), (base, other)


@pytest.mark.parametrize("base,forms,others", SORANI, ids=[c[0] for c in SORANI])
def test_sorani_endings(base: str, forms: list[str], others: list[str]) -> None:
    for form in forms:
        assert _share(sorani_stems, base, form), (base, form, sorani_stems(fold(form)))
    for other in others:
        assert not _share(sorani_stems, base, other), (base, other)


def test_kurdish_stems_match_through_queries() -> None:
    # the keys the matcher uses: Kurmanji stems live in their own key space (k:)
    assert matches("Sûriye", "li Sûriyeyê") and matches("Kobanî", "Kobaniyê")
    assert not matches("Serêkanî", "serek") and not matches("Serêkanî", "serê")
    # (French Snowball does cut roja to roj, so the pack writes the Roj camp as a phrase)
    assert matches("ڕەققە", "لە ڕەققەکەدا") and not matches("سەرێکانی", "سەر")
    assert kurmanji_stems(fold("2026ê"))[0] == "2026"            # a year keeps its digits


def test_stemmers_do_not_meet_each_other() -> None:
    # Turkish cuts sarin to sar, Kurmanji cuts Şara to sar: different stemmers, no match
    assert not matches("sarin", "Şara")
    # within one stemmer names can collide (French: Homs and home -> hom): write =Homs
    assert matches("Homs", "home") and not matches("=Homs", "home")


def test_french_and_turkish_stemmers_read_the_accents() -> None:
    # the stemmers see déplacées, not the folded deplacees (which French stems differently)
    assert matches("déplacé", "déplacées") and matches("déplacés", "deplacees")
    assert matches("mülteci", "mülteciler") and matches("MÜLTECİ", "mülteciler")
