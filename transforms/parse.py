"""Stage 1, ParseFeedItems: feed documents and JSON items -> Articles (+ dead letters).

Input:  PCollection of `FeedDocument` (a fetched feed body) or `RawItem` (a JSONL line or a
        Pub/Sub message), mixed freely.
Output: tagged `articles` (Article) and `dead_letters` (DeadLetter).

Every feed entry or JSON item becomes exactly one article or one dead letter; a feed document
that cannot be parsed at all becomes one dead letter.  The metric `items_read` counts both, so
the run summary can prove nothing was lost.  JSON is decoded inside the DoFn, after the split,
so a malformed message is a dead letter, not a crash.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterator, cast

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from transforms.feeds import FeedError, html_to_text, parse_feed
from transforms.ids import article_id, canonical_url
from transforms.records import MAX_ITEM_BYTES, Article, DeadLetter, FeedDocument, RawItem
from transforms.timeutil import EARLIEST, LATEST, in_range, iso_utc, parse_time

STAGE = "parse"
ITEM_KEYS = {"id", "url", "title", "summary", "published", "source", "language"}


def articles_from_feed(doc: FeedDocument) -> Iterator[Article | DeadLetter]:
    """Pure: one feed document -> its articles and dead letters."""
    try:
        parsed = parse_feed(doc)
    except FeedError as exc:
        yield DeadLetter.of(STAGE, f"feed unusable: {exc}", doc.source, doc.body, doc.fetched)
        return
    # A feed whose items all link to one page (a home page, a print page) must not collapse
    # into one article: for those, the guid or the title decides the id instead of the link.
    guids_by_link: dict[str, set[str]] = defaultdict(set)
    for e in parsed.entries:
        if e.link:
            guids_by_link[canonical_url(e.link)].add(e.guid or e.title)
    for entry in parsed.entries:
        link_is_shared = bool(entry.link) and len(guids_by_link[canonical_url(entry.link)]) > 1
        id_url = "" if link_is_shared else entry.link
        yield Article(
            id=article_id(id_url, entry.guid, doc.source, entry.title),
            url=canonical_url(entry.link) if entry.link else "",
            title=entry.title,
            summary=entry.summary,
            source=doc.source,
            published=entry.published or doc.fetched,
            fetched=doc.fetched,
            guid=entry.guid,
            language_hint=doc.language_hint or entry.language,
        )
    for raw, reason in parsed.rejected:
        yield DeadLetter.of(STAGE, f"entry rejected: {reason}", doc.source, raw, doc.fetched)


def _encodable(text: str) -> bool:
    """False for text holding lone surrogates (JSON `"\\ud800"`): no sink can write it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unencodable_field(article: Article) -> str | None:
    for name in ("id", "url", "title", "summary", "source", "published", "fetched", "guid"):
        if not _encodable(getattr(article, name)):
            return name
    if article.language_hint is not None and not _encodable(article.language_hint):
        return "language_hint"
    return None


def article_from_item(item: RawItem) -> Article | DeadLetter:
    """Pure: one JSON item (JSONL line or message data) -> an article or a dead letter."""
    def dead(reason: str) -> DeadLetter:
        return DeadLetter.of(STAGE, reason, item.source, item.data, item.fetched)

    if len(item.data) > MAX_ITEM_BYTES:
        return dead(f"item too large: {len(item.data)} bytes > {MAX_ITEM_BYTES} bytes")
    try:
        data: Any = json.loads(item.data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return dead(f"not valid JSON: {exc}")
    except RecursionError:
        return dead("not valid JSON: nested too deeply")
    if not isinstance(data, dict):
        return dead(f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(_printable(k) for k in set(data) - ITEM_KEYS)
    for key in sorted(ITEM_KEYS & set(data)):
        if data[key] is not None and not isinstance(data[key], str):
            return dead(f"field '{key}' must be a string, got {type(data[key]).__name__}")
        if isinstance(data[key], str) and not _encodable(data[key]):
            return dead(f"field '{key}' holds a lone surrogate (\\ud800-\\udfff), not text")
    for key, value in item.attributes:
        if not (_encodable(key) and _encodable(value)):
            return dead(f"attribute {_printable(key)!r} holds a lone surrogate, not text")
    title = html_to_text(data.get("title") or "")
    summary = html_to_text(data.get("summary") or "")
    if not title and not summary:
        return dead("item has neither title nor summary" + (f" (unknown keys: {', '.join(unknown)})" if unknown else ""))
    attrs = dict(item.attributes)
    source = data.get("source") or attrs.get("source") or item.source
    published_raw = data.get("published") or attrs.get("published")
    moment = parse_time(published_raw) if published_raw else None
    if published_raw and moment is None:
        return dead(f"unparseable published time {published_raw!r}")
    if moment is not None and not in_range(moment):
        return dead(f"published time {published_raw!r} is out of range "
                    f"({iso_utc(EARLIEST)[:4]}..{iso_utc(LATEST)[:4]})")
    url = data.get("url") or ""
    guid = data.get("id") or ""  # the message attribute `id` is the publisher's article id, not a guid
    return Article(
        id=article_id(url, guid, source, title or summary),
        url=canonical_url(url) if url else "",
        title=title or summary[:120],
        summary=summary,
        source=source,
        published=iso_utc(moment) if moment else item.fetched,
        fetched=item.fetched,
        guid=guid,
        language_hint=(data.get("language") or item.language_hint or None),
    )


class _ParseFn(beam.DoFn):
    DEAD = "dead_letters"

    def __init__(self) -> None:
        self.items = Metrics.counter("mediamon", "items_read")
        self.failed = Metrics.counter(STAGE, "dead_letters")

    def process(self, element: FeedDocument | RawItem) -> Iterator[Any]:
        results: list[Article | DeadLetter]
        try:
            if isinstance(element, FeedDocument):
                results = list(articles_from_feed(element))
            else:
                results = [article_from_item(element)]
        except Exception as exc:  # noqa: BLE001 - one bad item must not fail the job: dead letter
            body = element.body if isinstance(element, FeedDocument) else element.data
            results = [DeadLetter.of(STAGE, f"unexpected error: {type(exc).__name__}: {exc}",
                                     element.source, body, element.fetched)]
        for result in results:
            if isinstance(result, Article):
                bad = _unencodable_field(result)
                if bad is not None:
                    result = DeadLetter.of(STAGE, f"field '{bad}' holds a lone surrogate, not text",
                                           result.source, _printable(result.title), result.fetched)
            self.items.inc()
            if isinstance(result, DeadLetter):
                self.failed.inc()
                yield TaggedOutput(self.DEAD, result)
            else:
                yield result


class ParseFeedItems(beam.PTransform):
    """FeedDocument | RawItem -> Article, with tagged output `dead_letters`."""

    DEAD = _ParseFn.DEAD

    def expand(self, pcoll: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        parse = beam.ParDo(_ParseFn()).with_output_types(Article)  # Article: its fast coder
        return cast("beam.pvalue.DoOutputsTuple", pcoll | "Parse" >> parse.with_outputs(self.DEAD, main="articles"))
