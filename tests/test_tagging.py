"""Tagger: topics, keyword mentions, evidence, weights, prefilter, pickling."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from transforms.query import Document
from transforms.topic_matcher import TagResult, Tagger
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec, WeightSpec

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SEED = CORPUS / "seed" / "zamanalwsl-raqqa-2017.txt"

RAQQA = TopicSpec("raqqa-offensive", "Raqqa offensive",
                  "(الرقة OR Raqqa OR Rakka) AND "
                  "(هجوم OR معارك OR معركة OR offensive OR battle OR assault)")
RAQQA_KEYWORD = KeywordSpec("raqqa", ("الرقة", "Raqqa", "Rakka", "Raqa"))


def test_seed_article_is_tagged_with_nine_mentions() -> None:
    if not SEED.exists():
        pytest.skip(f"corpus absent: {SEED}")
    text = SEED.read_text(encoding="utf-8")
    result = Tagger([RAQQA], [RAQQA_KEYWORD]).tag("", text)
    assert result.topics == ("raqqa-offensive",)
    assert result.keyword_mentions == (("raqqa", 9),)
    (topic, terms), = result.evidence
    assert topic == "raqqa-offensive"
    assert dict(terms)["الرقة"] == ("الرقة",)


def test_tag_result_shape_and_sorting() -> None:
    topics = [
        TopicSpec("b-topic", "B", "raqqa"),
        TopicSpec("a-topic", "A", "الرقة AND title:battle"),
        TopicSpec("c-topic", "C", "mosul"),
    ]
    keywords = [KeywordSpec("zz", ("battle",)), KeywordSpec("aa", ("الرقة", "Raqqa"))]
    result = Tagger(topics, keywords).tag("Battle for Raqqa", "معارك وبالرقة و Raqqa")
    assert result == TagResult(
        topics=("a-topic", "b-topic"),
        keyword_mentions=(("aa", 3), ("zz", 1)),
        evidence=(
            ("a-topic", (("الرقة", ("وبالرقة",)), ("battle", ("Battle",)))),
            ("b-topic", (("raqqa", ("Raqqa",)),)),
        ),
    )
    assert result.keywords == ("aa", "zz")


def test_evidence_shows_proclitic_surface_form() -> None:
    result = Tagger([TopicSpec("t", "T", "الرقة")]).tag("", "قصف وبالرقة")
    assert result.evidence == (("t", (("الرقة", ("وبالرقة",)),)),)


def test_untagged_article() -> None:
    result = Tagger([RAQQA], [RAQQA_KEYWORD]).tag("Football", "ورقة")
    assert result == TagResult((), (), ())


def test_keyword_counts_phrase_forms_once_per_occurrence() -> None:
    tagger = Tagger([], [KeywordSpec("dez", ("Deir ez-Zor", "دير الزور", "Deir"))])
    result = tagger.tag("Deir ez-Zor", "battle near Deir ez Zor and in ودير الزور")
    assert result.keyword_mentions == (("dez", 3),)


def test_variants_apply_to_topics_and_keywords() -> None:
    variants = [VariantSpec(("Raqqa", "Raqqah", "Rakka", "الرقة"))]
    tagger = Tagger([TopicSpec("t", "T", "Raqqa")], [KeywordSpec("k", ("raqqa",))], variants)
    result = tagger.tag("Rakka'da çatışma", "Raqqah, بالرقة")
    assert result.topics == ("t",)
    assert result.keyword_mentions == (("k", 3),)
    assert result.evidence == (("t", (("Raqqa", ("Rakka", "Raqqah", "بالرقة")),)),)


def test_weighted_topic_reaches_threshold() -> None:
    topic = TopicSpec("strikes", "Air strikes", None,
                      (WeightSpec("airstrike* OR غارة OR غارات", 3),
                       WeightSpec("coalition OR التحالف", 2),
                       WeightSpec("football", -4)),
                      threshold=4)
    tagger = Tagger([topic])
    assert tagger.tag("Coalition airstrikes", "").topics == ("strikes",)
    assert tagger.tag("", "غارات التحالف على الرقة").topics == ("strikes",)
    assert tagger.tag("Airstrikes reported", "").topics == ()            # 3 < 4
    assert tagger.tag("Coalition airstrike", "after the football").topics == ()  # 1
    result = tagger.tag("Coalition airstrikes", "")
    assert result.evidence == (("strikes", (("airstrike*", ("airstrikes",)),
                                            ("coalition", ("Coalition",)))),)


def test_weighted_topic_with_gate_query() -> None:
    topic = TopicSpec("t", "T", "syria OR سوريا", (WeightSpec("raid*", 1),), threshold=1)
    tagger = Tagger([topic])
    assert tagger.tag("Raids in Syria", "").topics == ("t",)
    assert tagger.tag("Raids in Iraq", "").topics == ()


def test_not_only_topic_is_always_evaluated() -> None:
    tagger = Tagger([TopicSpec("no-sport", "No sport", "NOT football")])
    assert tagger.tag("anything", "").topics == ("no-sport",)
    assert tagger.tag("football", "").topics == ()


def test_prefilter_skips_topics_without_their_terms() -> None:
    topics = [TopicSpec(f"t{i}", "T", f"word{i} AND common") for i in range(200)]
    tagger = Tagger(topics)
    topic_ids, _ = tagger.candidates(Document("word7 common", "word9"))
    assert topic_ids == {7, 9}
    assert tagger.tag("word7 common", "word9").topics == ("t7", "t9")   # AND spans fields
    assert tagger.tag("word7 common", "word999").topics == ("t7",)


def test_prefilter_finds_wildcards_and_proclitic_forms() -> None:
    tagger = Tagger([TopicSpec("w", "W", "offens* AND الرقة")])
    assert tagger.tag("Offensives", "وللرقة").topics == ("w",)


def test_tagger_pickles() -> None:
    tagger = Tagger([RAQQA], [RAQQA_KEYWORD])
    again = pickle.loads(pickle.dumps(tagger))
    assert again.tag("", "معركة الرقة").topics == ("raqqa-offensive",)
