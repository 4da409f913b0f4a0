"""Records made without their frozen __init__ (coders, Article.replace) equal those made with it."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.records import (Article, ArticleCoder, DeadLetter, DeadLetterCoder, KeywordCount,
                                KeywordCountCoder, RawItem, RawItemCoder)

ARTICLE = Article(id="https://a.example/1", url="https://a.example/1", title="Clashes in Raqqa",
                  summary="SDF fighters advanced.", source="a", published="2017-06-06T10:00:00Z",
                  fetched="2017-06-06T10:05:00Z", language="en", language_confidence=0.98,
                  topics=("raqqa-offensive",), keywords=("raqqa", "sdf"), guid="g1",
                  keyword_mentions=(("raqqa", 2), ("sdf", 1)),
                  evidence=(("raqqa-offensive", (("raqqa", ("Raqqa",)),)),), story="s1", story_size=3)


@pytest.mark.parametrize("coder, record", [
    (ArticleCoder(), ARTICLE),
    (ArticleCoder(), Article("i", "u", "t", "", "s", "2017-01-01T00:00:00Z", "2017-01-01T00:00:00Z")),
    (RawItemCoder(), RawItem("sub", b"{\"x\": 1}", "2017-01-01T00:00:00Z", (("k", "v"),), "ar")),
    (DeadLetterCoder(), DeadLetter("parse", "bad", "feed", "raw", "2017-01-01T00:00:00Z")),
    (KeywordCountCoder(), KeywordCount("2017-01-01T00:00:00Z", "2017-01-01T01:00:00Z", "raqqa", "en", 3, 5)),
])
def test_decoded_records_equal_the_originals_field_by_field(coder, record) -> None:
    back = coder.decode(coder.encode(record))
    assert type(back) is type(record)
    assert back == record and hash(back) == hash(record)
    assert dataclasses.asdict(back) == dataclasses.asdict(record)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.source = "changed"   # still frozen


def test_a_tuple_of_other_length_goes_through_init() -> None:
    coder = RawItemCoder()
    short = coder._tuple.encode(("sub", b"data", "2017-01-01T00:00:00Z"))     # defaults fill the rest
    assert coder.decode(short) == RawItem("sub", b"data", "2017-01-01T00:00:00Z")
    with pytest.raises(TypeError):
        coder.decode(coder._tuple.encode(("too", "few")))


def test_article_replace_equals_dataclasses_replace() -> None:
    changed = ARTICLE.replace(story="s9", story_size=7, topics=())
    assert changed == dataclasses.replace(ARTICLE, story="s9", story_size=7, topics=())
    assert ARTICLE.story == "s1"          # the original is unchanged
    assert ARTICLE.replace() == ARTICLE and ARTICLE.replace() is not ARTICLE
    with pytest.raises(TypeError, match="storey"):
        ARTICLE.replace(storey="x")
