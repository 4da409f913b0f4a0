"""Property-based tests (Hypothesis): arbitrary input gives a result or a clear error, never an
unexpected exception; canonicalisation and folding are idempotent.

Small runs (max_examples 200, no deadline) so CI stays fast; a failure prints the input that
broke the property, and Hypothesis replays it first on the next run.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.config import ConfigError, load_config
from transforms.feeds import FeedError, ParsedFeed, parse_feed
from transforms.ids import article_id, canonical_url, normalise_title
from transforms.parse import article_from_item, articles_from_feed
from transforms.query import Document, QuerySyntaxError, parse_query
from transforms.records import Article, DeadLetter, FeedDocument, RawItem
from transforms.textnorm import fold, fold_token, lookup_keys, tokenize
from transforms.timeutil import iso_utc, parse_duration, parse_time

# MEDIAMON_HYPOTHESIS_EXAMPLES=5000 for a deeper local search; CI keeps 200
SMALL = settings(max_examples=int(os.environ.get("MEDIAMON_HYPOTHESIS_EXAMPLES", "200")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# --- URLs ----------------------------------------------------------------------------------------

_host_chars = st.sampled_from(list("abcxyz019-._~%:[]@") + ["ü", "ب", "\u200d", "Ａ", "ß", "İ"])
_path_chars = st.sampled_from(list("abc/./..;=%20?#&+~!$'()*,:@") + ["é", "ر", " ", "\t", "\\"])
_path_parts = st.lists(st.one_of(st.text(_path_chars, max_size=6),
                                 st.sampled_from(["%E2%80", "/amp", "/index.html", ";jsessionid=AB",
                                                  "%2F", "/./", "/../"])), max_size=5).map("".join)
hosts = st.one_of(
    st.text(_host_chars, max_size=20),
    st.sampled_from(["www.example.org", "m.example.org", "[2001:db8::1]", "[::1]:8080", "xn--bcher-kva.de",
                     "www.bücher.de", "example.org:443", "example.org:99999", "user:pw@example.org",
                     "news.google.com", "www.google.com", "x.cdn.ampproject.org", ""]),
)
queries = st.lists(st.tuples(
    st.sampled_from(["utm_source", "id", "cid", "ref", "amp", "outputType", "PHPSESSID", "q", "url",
                     "a", "", "%75tm_x", "Ä"]),
    st.text(_path_chars, max_size=12)), max_size=4).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
urls = st.builds(lambda scheme, host, path, query, frag: f"{scheme}{host}{path}" + (f"?{query}" if query else "")
                 + (f"#{frag}" if frag else ""),
                 st.sampled_from(["http://", "https://", "HTTP://", "https:", "ftp://", ""]),
                 hosts, _path_parts, queries, st.text(max_size=5))


@SMALL
@given(st.one_of(urls, st.text(max_size=60)))
@example("http://www.bücher.de?q=x")
@example("http://[2001:db8::1]/story")
@example("http://user@/x")
@example("http://\\0/0/0")               # found by Hypothesis: a backslash in the authority
@example("http://0/amp/amp/amp")          # found by Hypothesis: AMP suffixes stacked
@example("https://www.google.com/url?url=https://www.google.com/url?url=https://example.org/a")
def test_canonical_url_is_total_and_idempotent(url: str) -> None:
    canon = canonical_url(url)
    assert isinstance(canon, str)
    assert canonical_url(canon) == canon
    if canon.startswith("https://"):
        assert canon != "https://" and not canon.startswith("https:///")


@SMALL
@given(st.one_of(urls, st.text(max_size=40)), st.text(max_size=20), st.text(max_size=20),
       st.text(max_size=40))
def test_article_id_is_total(url: str, guid: str, source: str, title: str) -> None:
    ident = article_id(url, guid, source, title)
    assert len(ident) == 16 and int(ident, 16) >= 0
    assert ident == article_id(url, guid, source, title)
    assert normalise_title(normalise_title(title)) == normalise_title(title)


# --- folding -------------------------------------------------------------------------------------

arabic_heavy = st.text(st.one_of(
    st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
    st.characters(min_codepoint=0xFB50, max_codepoint=0xFDFF),
    st.characters(min_codepoint=0xFE70, max_codepoint=0xFEFF),
    st.sampled_from(list("ۀهٔ ﷺ﷽İıIiéÉ\u0301\u200c\u200d'-")),
    st.characters()), max_size=40)


@SMALL
@given(st.one_of(arabic_heavy, st.text(max_size=40)))
@example("ﷺ")
@example("ۀ")
@example("İ")
@example("\u0345")
def test_fold_is_idempotent_and_tokens_are_stable(text: str) -> None:
    folded = fold(text)
    assert fold(folded) == folded
    for token in tokenize(text):
        assert token.folded and fold_token(token.folded) == token.folded
        assert 0 <= token.start < token.end <= len(text)
        assert token.surface == text[token.start:token.end]
        assert lookup_keys(token.folded)[0] == token.folded


# --- queries -------------------------------------------------------------------------------------

query_text = st.lists(st.one_of(
    st.sampled_from(["AND", "OR", "NOT", "(", ")", '"', "*", "NEAR", "NEAR/3", "NEAR/0", "NEAR/x",
                     "title:", "title:Raqqa", "الرقة", "Raqqa", "ra*", "r*", "\"battle for\"", "~", ":"]),
    st.text(max_size=8)), max_size=12).map(" ".join)


@SMALL
@given(st.one_of(query_text, st.text(max_size=40)))
def test_query_parser_gives_a_query_or_a_syntax_error(text: str) -> None:
    try:
        query = parse_query(text)
    except QuerySyntaxError as err:
        assert str(err)
        return
    assert query.matches(Document(text, text)) in (True, False)  # and it runs on any text


# --- times ---------------------------------------------------------------------------------------

@SMALL
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(),
                 st.datetimes().map(lambda d: d.isoformat()),
                 st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00",
                                  "Mon, 01 Jan 0001 00:00:00 +0500", "1e400"])))
def test_parse_time_gives_a_time_or_none_and_iso_reads_back(value: Any) -> None:
    moment = parse_time(value)
    if moment is not None:
        assert isinstance(moment, datetime)
        assert parse_time(iso_utc(moment)) == moment.replace(microsecond=0)


@SMALL
@given(st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                 st.sampled_from([".nan", "-1s", "0s", "1e309s", "1h"])))
def test_parse_duration_gives_finite_seconds_or_a_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        assert "duration" in str(err)
        return
    assert math.isfinite(seconds) and seconds >= 0


# --- feeds ---------------------------------------------------------------------------------------

FETCHED = "2024-01-01T00:00:00Z"


def _doc(body: bytes, content_type: str = "") -> FeedDocument:
    return FeedDocument(source="prop", url="https://example.org/feed.xml", body=body, fetched=FETCHED,
                        content_type=content_type)


xml_text = st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
                              st.sampled_from(["&amp;", "&lt;", "&#xD800;", "&#0;", "&#x110000;", "<b>",
                                               "]]>", "<![CDATA[", "&bogus;", "\x00", "\ufffe"])),
                    max_size=6).map("".join)
encodings = st.sampled_from(["utf-8", "utf-16", "utf-7", "iso-8859-1", "windows-1256", "cp037",
                             "shift_jis", "bogus-enc", ""])


@st.composite
def feed_bodies(draw: Any) -> tuple[bytes, str]:
    enc = draw(encodings)
    items = "".join(
        f"<item><title>{draw(xml_text)}</title><link>{draw(urls)}</link>"
        f"<description>{draw(xml_text)}</description><pubDate>{draw(st.text(max_size=30))}</pubDate>"
        f"<guid>{draw(xml_text)}</guid></item>" for _ in range(draw(st.integers(0, 3))))
    decl = f'<?xml version="1.0" encoding="{enc}"?>' if enc else ""
    text = f'{decl}<rss version="2.0"><channel><title>{draw(xml_text)}</title>{items}</channel></rss>'
    codec = enc if enc and enc != "bogus-enc" else "utf-8"
    body = text.encode(codec, errors="replace")
    if draw(st.booleans()):   # damage: cut it, or flip a byte
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=4)) + body[cut + 1:]
    return body, draw(st.sampled_from(["", "application/rss+xml; charset=utf-8", "text/xml",
                                       "text/html; charset=utf-7"]))


def _writable(article: Article) -> None:
    json.dumps(article.to_json(), ensure_ascii=False).encode("utf-8")


@SMALL
@given(st.one_of(feed_bodies(), st.tuples(st.binary(max_size=200), st.just(""))))
@example((b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title></title><item>'
          b'<title>t</title><link>http://]</link></item></channel></rss>', ""))   # found by Hypothesis
def test_feed_parsing_gives_entries_or_a_feed_error(case: tuple[bytes, str]) -> None:
    body, content_type = case
    try:
        parsed = parse_feed(_doc(body, content_type))
    except FeedError as err:
        assert str(err)
    else:
        assert isinstance(parsed, ParsedFeed)
    for out in articles_from_feed(_doc(body, content_type)):
        assert isinstance(out, (Article, DeadLetter))
        if isinstance(out, Article):
            _writable(out)
            assert parse_time(out.published) is not None


# --- JSONL lines and messages --------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=10)
item_objects = st.fixed_dictionaries({}, optional={
    "title": st.one_of(st.text(max_size=40), json_values), "summary": st.text(max_size=40),
    "url": st.one_of(urls, st.text(max_size=20)), "id": st.text(max_size=10),
    "published": st.one_of(st.text(max_size=25), st.datetimes().map(lambda d: d.isoformat()),
                           st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])),
    "source": st.text(max_size=10), "language": st.text(max_size=5), "extra": json_values})


def _item_bytes(obj: Any) -> bytes:
    # ensure_ascii: lone surrogates in the strategy's text come out as \ud800 escapes, as an
    # attacker would write them
    return json.dumps(obj).encode("utf-8")


@SMALL
@given(st.one_of(item_objects.map(_item_bytes), json_values.map(_item_bytes), st.binary(max_size=80),
                 st.sampled_from([b"[" * 100_000, b'{"title": "Raqqa \\ud800"}', b'{"title": "\\udfff x"}'])),
       st.lists(st.tuples(st.sampled_from(["published", "source", "id"]), st.text(max_size=25)), max_size=2))
def test_json_items_give_an_article_or_a_dead_letter(data: bytes, attributes: list[tuple[str, str]]) -> None:
    out = article_from_item(RawItem(source="prop", data=data, fetched=FETCHED, attributes=tuple(attributes)))
    assert isinstance(out, (Article, DeadLetter))
    if isinstance(out, Article):
        _writable(out)
        moment = parse_time(out.published)
        assert moment is not None and 1900 <= moment.year < 2200
    else:
        json.dumps(out.to_json(), ensure_ascii=False).encode("utf-8")


# --- the config loader ---------------------------------------------------------------------------

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                         st.sampled_from(["1h", "0s", "-5m", ".nan", ".inf", "15m", "${NOPE}", "ar",
                                          "jsonl", "articles", "sqlite", "/", "."]))
config_keys = st.sampled_from(["name", "include", "sources", "feeds", "jsonl", "opml", "url", "language",
                               "allowed", "topics", "id", "query", "keywords", "forms", "windows", "size",
                               "period", "state", "path", "fetch", "timeout", "deadline", "sinks",
                               "type", "what", "beam_options", "runner", "bogus"])
config_values = st.recursive(yaml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(config_keys, children, max_size=4)), max_leaves=15)


@SMALL
@given(st.one_of(st.dictionaries(config_keys, config_values, max_size=6).map(
    lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=80),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
@example("include: 1\n")                               # found by Hypothesis: TypeError
@example("name: null\nsources:\n  feeds: true\n")     # found by Hypothesis: TypeError
@example('sources:\n  feeds: ["\\0"]\n')              # found by Hypothesis: embedded NUL in a path
def test_config_loader_gives_a_config_or_a_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                        text: str) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    path = Path(folder) / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_config(path)
    except ConfigError as err:
        assert str(err)


VALID = {
    "name": "p", "include": [],
    "sources": {"feeds": [{"url": "feed.xml", "name": "f", "language": "ar", "category": "c"}],
                "opml": "list.opml", "jsonl": ["items.jsonl"],
                "pubsub": {"subscription": "projects/demo-project/subscriptions/items"}},
    "language": {"allowed": ["ar", "en"], "aliases": {"ckb": "ku"}, "second_opinion": True},
    "topics": [{"id": "t", "name": "T", "query": "Raqqa AND battle",
                "examples": {"match": ["Raqqa battle"], "no_match": ["x"]}},
               {"id": "w", "weights": {"Raqqa": 2, "battle": 1}, "threshold": 2}],
    "keywords": [{"id": "k", "forms": ["Raqqa", "الرقة"]}],
    "variants": [["Raqqa", "Rakka"]],
    "windows": {"size": "1h", "period": "15m", "allowed_lateness": "1d", "early": "10s"},
    "state": {"path": "state/s.db", "on_overlap": "wait", "wait_timeout": "1m", "retention": "30d"},
    "sinks": [{"type": "jsonl", "path": "out/a.jsonl", "what": "articles", "name": "a"},
              {"type": "sqlite", "path": "out/r.db", "what": "counts"},
              {"type": "pubsub", "topic": "projects/demo-project/topics/out", "what": "alerts"}],
    "fetch": {"timeout": "10s", "max_bytes": 1000, "concurrency": 2, "per_host_delay": "1s",
              "deadline": "1m", "interval": "0s", "backoff_base": "5m", "backoff_cap": "1d",
              "max_redirects": 3, "user_agent": "ua"},
    "dedup": {"ttl": "7d"},
    "poll": {"topic": "projects/demo-project/topics/items", "interval": "5m", "archive": "arch"},
    "alerts": {"rules": [{"topic": "t", "rule": "ratio", "min_count": 3}]},
    "beam_options": {"runner": "DirectRunner"},
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutated(path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    data: Any = json.loads(json.dumps(VALID))
    if not path:
        return {"name": new}
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return data  # type: ignore[no-any-return]


@SMALL
@given(st.sampled_from(_paths(VALID)), config_values)
def test_config_loader_with_one_value_replaced(tmp_path_factory: pytest.TempPathFactory,
                                               path: tuple[Any, ...], new: Any) -> None:
    """A valid config with one value anywhere replaced by anything: a Config or a ConfigError."""
    folder = Path(tmp_path_factory.mktemp("cfg"))
    target = folder / "config.yaml"
    target.write_text(yaml.safe_dump(_mutated(path, new), allow_unicode=True), encoding="utf-8")
    try:
        load_config(target)
    except ConfigError as err:
        assert str(err)
