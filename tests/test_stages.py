"""Each stage as a PTransform: TestPipeline + Create + assert_that (batch)."""
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.counts import CountPerWindow
from transforms.dedup import Deduplicate, pack, unpack
from transforms.language import DetectLanguage
from transforms.parse import ParseFeedItems
from transforms.records import Article, FeedDocument, KeywordCount, RawItem, TopicCount
from transforms.topics import TagTopics
from transforms.topic_rules import parse_keywords, parse_topics, parse_variants

RSS = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
<item><title>First</title><link>https://x.org/1?utm_source=a</link><guid>g1</guid>
<pubDate>Sun, 15 Oct 2017 09:30:00 GMT</pubDate><description>&lt;b&gt;one&lt;/b&gt;</description></item>
<item><title>Second</title><link>https://x.org/2</link><guid>g2</guid><description>two</description></item>
</channel></rss>"""


def item(data: bytes) -> RawItem:
    return RawItem(source="items.jsonl", data=data, fetched="2017-10-15T12:00:00Z")


def article(id_: str, **kw: object) -> Article:
    base = dict(id=id_, url="", title="t", summary="", source="s", published="2017-10-15T10:00:00Z",
                fetched="2017-10-15T12:00:00Z")
    base.update(kw)
    return Article(**base)  # type: ignore[arg-type]


def test_parse_feed_and_items_with_dead_letters() -> None:
    doc = FeedDocument(source="feed", url="https://x.org/rss", body=RSS, fetched="2017-10-15T12:00:00Z")
    broken = FeedDocument(source="broken", url="/tmp/b.xml", body=b"\x00\x01 not a feed", fetched="2017-10-15T12:00:00Z")
    good = item(json.dumps({"title": "Hello", "published": "2017-10-15T08:00:00+02:00"}).encode())
    with TestPipeline() as p:
        out = (p | beam.Create([doc, broken, good, item(b"{nope"), item(b"[1, 2]")])
               | ParseFeedItems())
        summaries = out.articles | beam.Map(lambda a: (a.source, a.title, a.summary, a.url, a.published))
        assert_that(summaries, equal_to([
            ("feed", "First", "one", "https://x.org/1", "2017-10-15T09:30:00Z"),
            ("feed", "Second", "two", "https://x.org/2", "2017-10-15T12:00:00Z"),  # no date: fetch time
            ("items.jsonl", "Hello", "", "", "2017-10-15T06:00:00Z"),
        ]), label="articles")
        dead = out[ParseFeedItems.DEAD] | beam.Map(lambda d: (d.stage, d.source, d.error.split(":")[0]))
        assert_that(dead, equal_to([
            ("parse", "broken", "feed unusable"),
            ("parse", "items.jsonl", "not valid JSON"),
            ("parse", "items.jsonl", "expected a JSON object, got list"),
        ]), label="dead")


@pytest.mark.parametrize("compress", [True, False])
def test_dedup_keeps_earliest_fetched_copy_per_id(compress: bool) -> None:
    copies = [article("a", fetched="2017-10-15T12:00:00Z", source="late"),
              article("a", fetched="2017-10-15T11:00:00Z", source="early"),
              article("b")]
    with TestPipeline() as p:
        kept = (p | beam.Create(copies) | Deduplicate(compress=compress)
                | beam.Map(lambda a: (a.id, a.source)))
        assert_that(kept, equal_to([("a", "early"), ("b", "s")]))


def test_packed_articles_unpack_compressed_or_not() -> None:
    a = article("a", title="=starts with the plain marker")
    assert unpack(pack(a)) == a and unpack(pack(a, compress=False)) == a
    assert pack(a)[:1] != b"=" and pack(a, compress=False)[:1] == b"="


def test_language_and_topics_stages() -> None:
    variants = parse_variants([])
    topics = parse_topics([{"id": "raqqa", "query": "(الرقة OR Raqqa) AND (معارك OR battle)"}], variants)
    keywords = parse_keywords([{"id": "raqqa", "forms": ["الرقة", "Raqqa"]}])
    arts = [article("1", title="معارك عنيفة في وسط الرقة اليوم", summary="وتقدمت القوات نحو بالرقة القديمة"),
            article("2", title="The battle for Raqqa enters its final week", summary=""),
            article("3", title="Central bank holds interest rates steady", summary="")]
    with TestPipeline() as p:
        detected = p | beam.Create(arts) | DetectLanguage(allowed=["ar", "en", "fr"])
        out = ((detected.articles | TagTopics(topics, keywords, variants)).articles
               | beam.Map(lambda a: (a.id, a.language, a.topics, a.keyword_mentions)))
        assert_that(out, equal_to([
            ("1", "ar", ("raqqa",), (("raqqa", 2),)),
            ("2", "en", ("raqqa",), (("raqqa", 1),)),
            ("3", "en", (), ()),
        ]))


def test_counts_fixed_windows_by_published_time() -> None:
    arts = [article("1", language="ar", published="2017-10-15T09:10:00Z", topics=("t",),
                    keyword_mentions=(("raqqa", 3),)),
            article("2", language="ar", published="2017-10-15T09:50:00Z", topics=("t",),
                    keyword_mentions=(("raqqa", 1),)),
            article("4", language="ar", published="2017-10-15T09:55:00Z", topics=("t",),
                    keyword_mentions=(("raqqa", 1),), story="2"),   # a copy of story 2
            article("3", language="en", published="2017-10-15T10:05:00Z", keyword_mentions=(("raqqa", 2),))]
    with TestPipeline() as p:
        out = p | beam.Create(arts) | CountPerWindow(size=3600)
        assert_that(out["counts"], equal_to([
            KeywordCount("2017-10-15T09:00:00Z", "2017-10-15T10:00:00Z", "raqqa", "ar", 3, 5, 2),
            KeywordCount("2017-10-15T10:00:00Z", "2017-10-15T11:00:00Z", "raqqa", "en", 1, 2, 1),
        ]), label="counts")
        assert_that(out["topics"], equal_to([
            TopicCount("2017-10-15T09:00:00Z", "2017-10-15T10:00:00Z", "t", "ar", 3, 2),
        ]), label="topics")


def test_counts_sliding_windows_count_an_article_in_each_window() -> None:
    arts = [article("1", language="en", published="2017-10-15T09:20:00Z", keyword_mentions=(("k", 1),))]
    with TestPipeline() as p:
        out = p | beam.Create(arts) | CountPerWindow(size=3600, period=1800)
        assert_that(out["counts"] | beam.Map(lambda c: (c.window_start, c.articles)), equal_to([
            ("2017-10-15T08:30:00Z", 1), ("2017-10-15T09:00:00Z", 1)]), label="sliding")
