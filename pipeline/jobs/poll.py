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
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from pipeline.config import Config, UsageError
from pipeline.feeds.documents import all_feeds
from pipeline.feeds.fetch import fetch_feeds
from pipeline.feeds.state import FeedStateStore, HeldFeedState
from pipeline.graph.signals import StopOnSignal, crash_point
from pipeline.io.pubsub import (
    ensure_subscription,
    ensure_topic,
    item_form,
    message_for,
    on_emulator,
    publish_all,
    publisher,
)
from pipeline.store.published import PublishedIds
from transforms.parse import articles_from_feed
from transforms.records import Article, DeadLetter, FeedDocument

log = logging.getLogger(__name__)


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
    return fetch_feeds(all_feeds(config), store=store, settings=config.fetch)


def poll_once(config: Config, store: Any, published: PublishedIds, client: Any, topic: str) -> PassResult:
    """One pass: fetch due feeds, publish what is new, archive and record it."""
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
        crash_point("after_publish")   # published, not yet recorded: the next pass republishes
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
    every = interval if interval is not None else config.poll.interval
    signals = StopOnSignal(lambda name: log.info("poll: %s, stopping after this pass", name)).install()
    stop = signals.stop
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
        signals.restore()
