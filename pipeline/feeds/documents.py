"""Configured feeds (and OPML lists) -> fetched FeedDocuments and fetch dead letters, with progress."""
from __future__ import annotations

import logging
import sys
from typing import Any

from pipeline.config import Config, FeedSource
from pipeline.feeds.fetch import fetch_feeds
from pipeline.feeds.opml import dedupe_feeds, read_opml
from transforms.records import DeadLetter, FeedDocument
from transforms.timeutil import now_iso

log = logging.getLogger(__name__)


def all_feeds(config: Config, dead: list[DeadLetter] | None = None) -> list[FeedSource]:
    """Configured feeds plus every feed outline of the OPML files, each URL once.

    An OPML file that is missing or not OPML is treated as a missing JSONL file is: one item
    and one dead letter (stage `read`) when `dead` collects them, else a logged warning; the
    other sources are still read."""
    feeds = list(config.sources.feeds)
    for opml in config.sources.opml:
        try:
            feeds.extend(read_opml(opml))
        except ValueError as error:
            if dead is None:
                log.warning("skipping an OPML source: %s", error)
            else:
                dead.append(DeadLetter.of("read", f"OPML source unusable: {error}", opml.name,
                                          str(opml), now_iso()))
    return dedupe_feeds(feeds)


def fetch_documents(config: Config, store: Any = None,
                    progress: bool = True) -> tuple[list[FeedDocument], list[DeadLetter], dict[str, int]]:
    """Fetch every due feed once: documents to parse, dead letters for feeds that failed."""
    dead: list[DeadLetter] = []
    feeds = all_feeds(config, dead)
    settings = config.fetch
    docs: list[FeedDocument] = []
    outcomes: dict[str, int] = {}

    tty = sys.stderr.isatty()
    step = 1 if tty else 25

    def report(done: int, total: int, outcome: Any) -> None:
        if not progress or total < 2 or (done % step and done != total):
            return
        line = f"fetching feeds: {done}/{total} ({outcome.feed.name}: {outcome.status})"
        if tty:
            print("\r" + line.ljust(78)[:78], end="" if done < total else "\n", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    for outcome in fetch_feeds(feeds, store=store, settings=settings, progress=report):
        outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
        if outcome.document is not None:
            docs.append(outcome.document)
        elif outcome.status == "error" or (outcome.status == "retired" and outcome.http_status == 410):
            # a feed gone this run (410) yields nothing: one item, one dead letter; later runs skip it
            dead.append(DeadLetter.of("fetch", outcome.error or "fetch failed", outcome.feed.name,
                                      outcome.feed.url, now_iso()))
    return docs, dead, outcomes


