"""The poller's pure parts: the item form keeps article ids stable; published ids persist."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.io.pubsub import item_form, message_for
from pipeline.jobs.poll import PassResult, new_articles
from pipeline.store.published import PublishedIds
from transforms.parse import article_from_item
from transforms.records import Article, FeedDocument, RawItem

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>One</title><link>https://example.org/1</link><pubDate>Sun, 15 Oct 2017 09:30:00 GMT</pubDate></item>
<item><title>Two</title><guid isPermaLink="false">g-2</guid><link>http://example.org/home</link></item>
<item><title>Three</title><guid isPermaLink="false">g-3</guid><link>http://example.org/home</link></item>
<item><title>Four, no link or guid</title></item>
<item><title>One</title><link>https://example.org/1</link></item>
</channel></rss>"""


def doc() -> FeedDocument:
    return FeedDocument(source="feed", url="feed.xml", body=FEED, fetched="2017-10-16T00:00:00Z")


def test_published_item_parses_back_to_the_same_article_id(tmp_path: Path) -> None:
    result = PassResult(feeds={})
    with_db = PublishedIds(tmp_path / "state.db")
    articles = new_articles([doc()], with_db, result)
    assert result.entries == 5 and len(articles) == 4 and result.already == 1
    for a in articles:
        data, attrs = message_for(a)
        item = json.loads(data)
        assert set(attrs) == {"id", "source", "published"} and attrs["id"] == a.id
        assert item.get("id", "") == a.guid
        back = article_from_item(RawItem(source="sub", data=data, fetched="2017-10-17T00:00:00Z",
                                         attributes=tuple(sorted(attrs.items()))))
        replayed = article_from_item(RawItem(source="archive.jsonl", data=data, fetched="x"))
        assert isinstance(back, Article) and isinstance(replayed, Article)
        assert back.id == replayed.id and back.published == a.published   # stream == archive replay
        assert back.id == a.id                                            # == `mediamon run` on the feed


def test_published_ids_survive_a_restart(tmp_path: Path) -> None:
    first = PublishedIds(tmp_path / "state.db")
    articles = new_articles([doc()], first, PassResult(feeds={}))
    first.record(articles, 0.0)
    first.close()
    again = PublishedIds(tmp_path / "state.db")
    result = PassResult(feeds={})
    assert new_articles([doc()], again, result) == []
    assert result.already == 5 and again.count() == 4


def test_item_form_has_the_contract_keys() -> None:
    a = new_articles([doc()], PublishedIds(Path(":memory:")), PassResult(feeds={}))[0]
    assert set(item_form(a)) <= {"id", "url", "title", "summary", "published", "source", "language"}
