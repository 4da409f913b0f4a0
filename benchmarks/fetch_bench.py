"""Fetch benchmark: N feeds served locally, fetched cold and again with 304s; peak memory.

    .venv/bin/python -m benchmarks.fetch_bench [--feeds 1000] [--concurrency 8] [--items 20]

The feed server (tests/feedserver.py) runs in a child process so that the figures are the
fetcher's own. All feeds sit on one host (127.0.0.1), so per-host pacing is switched off here;
with real feeds pacing applies per host. The second pass sends If-None-Match from the SQLite
feed-state store and gets 304s. Also reported: parse_feed over the cold bodies.
"""
from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import resource
import tempfile
import time
from pathlib import Path

from pipeline.config import FeedSource, FetchSettings
from pipeline.feeds.fetch import fetch_feeds
from pipeline.feeds.state import FeedStateStore
from transforms.feeds import parse_feed
from transforms.records import FeedDocument


def make_feed(index: int, items: int) -> bytes:
    entries = "".join(
        f"<item><title>Feed {index} story {i}: Raqqa offensive enters a new phase</title>"
        f"<link>https://news{index}.example/story/{i}?utm_source=rss</link>"
        f"<guid>https://news{index}.example/story/{i}</guid>"
        f"<pubDate>Sun, 15 Oct 2017 09:{i % 60:02d}:00 GMT</pubDate>"
        f"<description>&lt;p&gt;{'Fighting continued around the stadium. ' * 12}&lt;/p&gt;"
        f"</description></item>" for i in range(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {index}</title><link>https://news{index}.example/</link>"
            f"<language>en</language>{entries}</channel></rss>").encode()


def serve(feeds: int, items: int, conn: multiprocessing.connection.Connection) -> None:
    from tests.feedserver import FeedServer, Route
    server = FeedServer().start()
    for i in range(feeds):
        server.route(f"/feed/{i}.xml", Route(body=make_feed(i, items), etag=f'"{i}-v1"'))
    conn.send(server.url("/feed/"))
    conn.recv()                      # wait until the benchmark is done
    server.stop()


def timed_pass(feeds: list[FeedSource], store: FeedStateStore,
               settings: FetchSettings) -> tuple[float, dict[str, int], list[FeedDocument]]:
    counts: dict[str, int] = {}
    docs: list[FeedDocument] = []
    started = time.perf_counter()
    for outcome in fetch_feeds(feeds, store=store, settings=settings):
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.document is not None:
            docs.append(outcome.document)
    return time.perf_counter() - started, counts, docs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--items", type=int, default=20, help="items per feed")
    args = parser.parse_args(argv)

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.feeds, args.items, child),
                                     daemon=True)
    server.start()
    base = parent.recv()
    feeds = [FeedSource(url=f"{base}{i}.xml", name=f"feed-{i}") for i in range(args.feeds)]
    settings = FetchSettings(concurrency=args.concurrency, per_host_delay=0.0)
    body_kib = len(make_feed(0, args.items)) / 1024
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                FeedStateStore(Path(tmp) / "state.db") as store:
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            cold, cold_counts, docs = timed_pass(feeds, store, settings)
            warm, warm_counts, _ = timed_pass(feeds, store, settings)
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            entries = sum(len(parse_feed(doc).entries) for doc in docs)
            parse_time = time.perf_counter() - started
    finally:
        parent.send("done")
        server.join(timeout=10)

    print(f"fetch benchmark: {args.feeds} feeds of {body_kib:.1f} KiB ({args.items} items), "
          f"concurrency {args.concurrency}, one local host, pacing off")
    print(f"  cold (200s):      {args.feeds / cold:8.1f} feeds/s  {cold:6.2f} s  {cold_counts}")
    print(f"  warm (304s):      {args.feeds / warm:8.1f} feeds/s  {warm:6.2f} s  {warm_counts}")
    print(f"  parse_feed:       {len(docs) / parse_time:8.1f} feeds/s  {parse_time:6.2f} s  "
          f"({entries} entries, {entries / parse_time:.0f} entries/s)")
    print(f"  peak RSS (fetcher process): {rss_after / 1024:.0f} MiB "
          f"(before fetching: {rss_before / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
