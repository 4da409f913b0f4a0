"""read_opml (nested outlines, categories, names, bad files) and dedupe_feeds."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import FeedSource
from pipeline.feeds.opml import dedupe_feeds, read_opml

CORPUS_OPML = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "opml"

NESTED = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>subscriptions</title></head>
  <body>
    <outline text="News">
      <outline text="Middle East" title="Middle East">
        <outline type="rss" text="Example Arabic" xmlUrl="https://example.org/ar/rss.xml"
                 language="ar"/>
        <outline type="rss" title="Titled" text="ignored text"
                 xmlUrl="https://example.org/titled.xml" category="/syria,/iraq"/>
      </outline>
      <outline type="rss" xmlUrl="https://nameless.example.net/feed"/>
    </outline>
    <outline type="rss" text="Top level" xmlUrl="https://top.example/rss"/>
    <outline text="a folder without feeds"/>
  </body>
</opml>
"""


def test_nested_outlines_categories_and_names(tmp_path: Path) -> None:
    path = tmp_path / "subs.opml"
    path.write_text(NESTED, encoding="utf-8")
    assert read_opml(path) == [
        FeedSource(url="https://example.org/ar/rss.xml", name="Example Arabic", language="ar",
                   category="News/Middle East"),
        FeedSource(url="https://example.org/titled.xml", name="Titled",
                   category="/syria,/iraq"),
        FeedSource(url="https://nameless.example.net/feed", name="nameless.example.net",
                   category="News"),
        FeedSource(url="https://top.example/rss", name="Top level", category=None),
    ]


def test_corpus_opml() -> None:
    path = CORPUS_OPML / "plenary-iran-news.opml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    feeds = read_opml(path)
    assert len(feeds) == 7
    assert {f.category for f in feeds} == {"Iran"}
    assert feeds[0].url == "https://www.yjc.ir/fa/rss/allnews"
    assert all(f.name and f.url.startswith("https://") for f in feeds)


@pytest.mark.parametrize("text, message", [
    ("<opml><body><outline", "not valid OPML"),
    ("<rss version='2.0'><channel/></rss>", "root element is <rss>"),
    ("<opml version='2.0'><head/></opml>", "no <body>"),
    ('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     "<opml><body><outline text='&x;' xmlUrl='https://e.org/'/></body></opml>", "not valid OPML"),
    ('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
     "<opml><body><outline text='&b;' xmlUrl='https://e.org/'/></body></opml>", "not valid OPML"),
])
def test_bad_opml_is_a_value_error_naming_the_file(tmp_path: Path, text: str,
                                                   message: str) -> None:
    path = tmp_path / "bad.opml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        read_opml(path)
    assert str(path) in str(caught.value)


def test_missing_opml_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.opml"):
        read_opml(tmp_path / "missing.opml")


def test_dedupe_feeds_normalises_scheme_host_port_and_trailing_slash() -> None:
    feeds = [
        FeedSource(url="https://Example.org/news/", name="first"),
        FeedSource(url="HTTPS://example.ORG:443/news", name="second"),
        FeedSource(url="https://example.org/news?page=2", name="other query"),
        FeedSource(url="http://example.org/news", name="other scheme"),
        FeedSource(url="https://example.org/News", name="path case matters"),
        FeedSource(url="/data/feeds/a.xml", name="local"),
        FeedSource(url="/data/feeds/../feeds/a.xml", name="same local"),
    ]
    assert [f.name for f in dedupe_feeds(feeds)] == [
        "first", "other query", "other scheme", "path case matters", "local"]
