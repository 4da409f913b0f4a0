"""`mediamon poll`: fetch the configured feeds on a schedule and publish each new item once.

Each pass fetches every due feed (conditional GET and backoff: pipeline/fetch.py), parses it
with the batch parser (transforms/parse.py), and for every article whose id was never published
before: publishes one Pub/Sub message (data: the contract's JSONL item form; attributes `id`,
`source`, `published`), then appends the same JSON line to the archive (`poll.archive`) and
records the id in table `published_items` of the state database (`state.path`, next to the feed
state), so a restarted poller does not publish it again.

Order of effects, and what a crash can do: publish, then archive and record.  A crash between
the two republishes the item on restart: the stream counts it as a duplicate and the archive
may hold it twice; `mediamon run` deduplicates it.  Nothing is recorded as published that
Pub/Sub did not accept.

The item carries `id` = the feed's guid, or, lacking one, the article id mediamon computed, so
the stream job and a replay of the archive give every article the same id.
"""
from __future__ import annotations

import json
import logging
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Iterable, Iterator

from pipeline.config import Config, UsageError
from transforms.ids import article_id
from transforms.parse import articles_from_feed
from transforms.records import Article, DeadLetter, FeedDocument

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS published_items (
    id         TEXT PRIMARY KEY,   -- mediamon article id
    source     TEXT NOT NULL,
    published  TEXT NOT NULL,      -- the item's published time (ISO-8601 UTC)
    at         REAL NOT NULL       -- when it was published to Pub/Sub (Unix seconds)
)
"""


class PublishedIds:
    """The ids already published, in SQLite (WAL), shared with the feed state file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.execute(_SCHEMA)

    def known(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self._db.execute(
                f"SELECT id FROM published_items WHERE id IN ({', '.join('?' for _ in chunk)})", chunk)
            found.update(r[0] for r in rows)
        return found

    def record(self, articles: Iterable[Article], at: float) -> None:
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO published_items VALUES (?, ?, ?, ?)",
                                 [(a.id, a.source, a.published, at) for a in articles])

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM published_items").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def item_form(article: Article) -> dict[str, Any]:
    """The contract's JSONL item form of a parsed feed entry, keeping its mediamon id stable.

    The url is left out when it would not give the same id (a feed whose entries share a link).
    """
    item: dict[str, Any] = {"url": article.url, "title": article.title,
                            "summary": article.summary, "published": article.published,
                            "source": article.source}
    if article.guid:
        item["id"] = article.guid
    if article.language_hint:
        item["language"] = article.language_hint
    if article_id(article.url, article.guid, article.source, article.title) != article.id:
        item["url"] = ""
    return item


def message_for(article: Article) -> tuple[bytes, dict[str, str]]:
    """Data: the item form; attribute `id` is the mediamon article id."""
    item = item_form(article)
    data = json.dumps(item, ensure_ascii=False).encode("utf-8")
    return data, {"id": article.id, "source": article.source, "published": article.published}


@dataclass
class PassResult:
    feeds: dict[str, int]
    entries: int = 0
    published: int = 0
    already: int = 0
    rejected: int = 0


def new_articles(docs: Iterable[FeedDocument], published: PublishedIds,
                 result: PassResult) -> list[Article]:
    """Articles of these documents never published before, each id once."""
    fresh: dict[str, Article] = {}
    for doc in docs:
        for parsed in articles_from_feed(doc):
            if isinstance(parsed, DeadLetter):
                result.rejected += 1
                log.warning("feed %s: entry not published: %s", parsed.source, parsed.error)
                continue
            result.entries += 1
            fresh.setdefault(parsed.id, parsed)
    known = published.known(fresh)
    new = [a for i, a in fresh.items() if i not in known]
    result.already += result.entries - len(new)
    return new


def _fetch(config: Config, store: Any) -> Iterator[Any]:
    from pipeline.fetch import fetch_feeds
    from pipeline.io import all_feeds, fetch_settings
    return fetch_feeds(all_feeds(config), store=store, settings=fetch_settings(config))


def poll_once(config: Config, store: Any, published: PublishedIds, client: Any, topic: str) -> PassResult:
    """One pass: fetch due feeds, publish what is new, archive and record it."""
    from pipeline.pubsub_admin import publish_all
    from pipeline.store import HeldFeedState
    result = PassResult(feeds={})
    docs: list[FeedDocument] = []
    urls: dict[str, str] = {}
    held = HeldFeedState(store)  # ETags are saved only once their items are published
    for outcome in _fetch(config, held):
        result.feeds[outcome.status] = result.feeds.get(outcome.status, 0) + 1
        if outcome.document is not None:
            docs.append(outcome.document)
            urls[outcome.document.source] = outcome.feed.url
        elif outcome.status == "error":
            log.warning("feed %s: %s", outcome.feed.name, outcome.error)
    articles = new_articles(docs, published, result)
    if articles:
        publish_all(client, topic, (message_for(a) for a in articles))
        now = time.time()
        if config.poll.archive is not None:
            config.poll.archive.parent.mkdir(parents=True, exist_ok=True)
            with config.poll.archive.open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(item_form(a), ensure_ascii=False) + "\n" for a in articles)
                fh.flush()
        published.record(articles, now)
    held.flush()
    if articles:
        for source in {a.source for a in articles}:
            if source in urls:
                store.mark_new_items(urls[source], now)
    result.published = len(articles)
    return result


def run_poller(config: Config, once: bool = False, interval: float | None = None) -> int:
    """Poll until SIGINT/SIGTERM (or one pass with `once`); exit code 0."""
    if config.poll.topic is None:
        raise UsageError("poll.topic is not set: where should new items be published?")
    if config.state.path is None:
        raise UsageError("poll needs state.path: it remembers what it published there")
    if not (config.sources.feeds or config.sources.opml):
        raise UsageError("this config has no feeds to poll")
    from pipeline.feedstate import FeedStateStore
    from pipeline.pubsub_admin import ensure_subscription, ensure_topic, on_emulator, publisher
    every = interval if interval is not None else config.poll.interval
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("poll: signal %d, stopping after this pass", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    client = publisher()
    ensure_topic(config.poll.topic, client)
    source = config.sources.pubsub
    if on_emulator() and source is not None and source.subscription:
        # messages published before a subscription exists are lost: make the stream's first
        ensure_subscription(source.subscription, config.poll.topic)
    store = FeedStateStore(config.state.path)
    published = PublishedIds(config.state.path)
    try:
        while True:
            started = time.monotonic()
            result = poll_once(config, store, published, client, config.poll.topic)
            line = (f"poll: {result.entries} entries, {result.published} new published to "
                    f"{config.poll.topic}, {result.already} seen before, "
                    f"{result.rejected} rejected; feeds "
                    + ", ".join(f"{k} {v}" for k, v in sorted(result.feeds.items())))
            log.info(line)
            print(line, flush=True)
            if once or stop.wait(max(0.0, every - (time.monotonic() - started))):
                return 0
    finally:
        published.close()
        store.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
