"""End to end over HTTP: `mediamon poll --once` on feeds from a local server -> Pub/Sub emulator
-> `mediamon stream`, with conditional GET between polls.

The feed server (tests/feedserver.py, 127.0.0.1 only) serves one feed with an ETag and one with
Last-Modified.  The first poll publishes every item; after one feed changes, the second poll sends
If-None-Match / If-Modified-Since, gets a 304 for the unchanged feed and publishes only the new
items; a third poll gets 304s and publishes nothing.  A second subscription on the topic sees
every message, each once, with attributes id (the mediamon article id), source and published
(ISO-8601 UTC).  The stream job's counts then equal those of `mediamon run` over the archive.
"""
from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.feedserver import FeedServer, Route
from tests.pubsub_emulator import pubsub_emulator  # noqa: F401  (fixture)

PY = sys.executable
NOW = datetime.now(timezone.utc).replace(microsecond=0)
TOPIC = "projects/mediamon-http/topics/items"
STREAM_SUB = "projects/mediamon-http/subscriptions/items"
CHECK_SUB = "projects/mediamon-http/subscriptions/check"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LAST_MODIFIED = format_datetime(NOW - timedelta(hours=1), usegmt=True)

Entry = tuple[str, str, str, int]   # title, link, description, minutes ago

WIRE_V1: list[Entry] = [
    ("Raqqa offensive: SDF advance on Raqqa", "https://wire.example/a1",
     "The Syrian Democratic Forces (SDF) pressed the battle for Raqqa.", 5),
    ("Markets steady in Europe", "https://wire.example/a2", "Stocks were flat today.", 20),
]
WIRE_NEW: list[Entry] = [
    ("Rakka battle enters a new phase", "https://wire.example/a3", "SDF fighters in Rakka.", 2),
    ("Civilians fled Raqqa as the assault began", "https://wire.example/a4",
     "Thousands of civilians left Raqqa.", 1),
]
JOURNAL: list[Entry] = [
    ("Raqqa : les FDS progressent", "https://journal.example/b1",
     "Les Forces démocratiques syriennes (FDS) avancent dans la bataille de Raqqa.", 10),
    ("Raqqa offensive seen from the air", "https://journal.example/b2", "Air strikes on Raqqa.", 30),
]


def rss(entries: list[Entry]) -> bytes:
    body = "".join(f"<item><title>{t}</title><link>{link}</link><description>{d}</description>"
                   f"<pubDate>{format_datetime(NOW - timedelta(minutes=m))}</pubDate></item>"
                   for t, link, d, m in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            f"{body}</channel></rss>").encode("utf-8")


def write_configs(tmp: Path, server: FeedServer) -> tuple[Path, Path]:
    common = """
language: {allowed: [en, fr]}
topics:
  - {id: raqqa-offensive, name: Raqqa offensive, query: '(Raqqa OR Rakka) AND (offensive OR battle OR bataille OR assault)'}
keywords:
  - {id: raqqa, forms: [Raqqa, Rakka]}
  - {id: sdf, forms: [SDF, FDS, Syrian Democratic Forces]}
windows: {size: 1h, allowed_lateness: 1d, early: 1s}
"""
    stream = tmp / "stream.yaml"
    stream.write_text(f"""name: http-stream
sources:
  feeds:
    - {{url: '{server.url("/wire.xml")}', name: wire, language: en}}
    - {{url: '{server.url("/journal.xml")}', name: journal}}
  pubsub: {{subscription: {STREAM_SUB}}}
poll: {{topic: {TOPIC}, archive: out/archive.jsonl, interval: 1m}}
state: {{path: out/state.db}}
fetch: {{per_host_delay: 0}}
{common}
sinks:
  - {{type: sqlite, path: out/stream.db, what: counts}}
  - {{type: sqlite, path: out/stream.db, what: topics}}
  - {{type: sqlite, path: out/stream.db, what: articles}}
""", encoding="utf-8")
    replay = tmp / "replay.yaml"
    replay.write_text(f"""name: http-replay
sources: {{jsonl: out/archive.jsonl}}
{common}
sinks:
  - {{type: sqlite, path: out/batch.db, what: counts}}
  - {{type: sqlite, path: out/batch.db, what: topics}}
""", encoding="utf-8")
    return stream, replay


def mediamon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120)


def poll(config: Path, expect_new: int) -> str:
    done = mediamon("poll", str(config), "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{expect_new} new published" in done.stdout, done.stdout + done.stderr[-2000:]
    return done.stdout


def rows(db: Path, table: str) -> set[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(f"SELECT * FROM {table}"))


def pull_all(subscription: str, expected: int) -> list[Any]:
    """Pull from the check subscription until `expected` messages arrived (or 20 s passed)."""
    from pipeline.io.pubsub import subscriber
    client = subscriber()
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        response = client.pull(request={"subscription": subscription, "max_messages": 100}, timeout=5)
        if response.received_messages:
            client.acknowledge(request={"subscription": subscription,
                                        "ack_ids": [m.ack_id for m in response.received_messages]})
        got.extend(m.message for m in response.received_messages)
    return got


def run_stream_until(config: Path, db: Path, articles: int, summary: Path) -> dict[str, Any]:
    """Start `mediamon stream`, wait until `articles` reach the sink, SIGTERM; return the summary."""
    proc = subprocess.Popen([PY, "-m", "pipeline", "stream", str(config), "--summary", str(summary)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"stream exited early ({proc.returncode}): {proc.communicate()[1][-3000:]}")
            try:
                if db.exists() and len(rows(db, "articles")) == articles and rows(db, "counts"):
                    break
            except sqlite3.OperationalError:
                pass                                   # tables not made yet
            time.sleep(0.5)
        else:
            proc.send_signal(signal.SIGTERM)
            pytest.fail(f"stream did not write {articles} articles in 60 s: {proc.communicate(timeout=30)[1][-3000:]}")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8"))
    return result


def test_poll_over_http_conditional_get_then_stream(pubsub_emulator: str, feed_server: FeedServer,  # noqa: F811
                                                    tmp_path: Path) -> None:
    from pipeline.io.pubsub import ensure_subscription
    feed_server.route("/wire.xml", Route(body=rss(WIRE_V1), etag='"wire-v1"'))
    feed_server.route("/journal.xml", Route(body=rss(JOURNAL), last_modified=LAST_MODIFIED))
    stream_cfg, replay_cfg = write_configs(tmp_path, feed_server)
    ensure_subscription(CHECK_SUB, TOPIC)          # sees every message the poller publishes

    poll(stream_cfg, expect_new=4)
    assert all("If-None-Match" not in r.headers and "If-Modified-Since" not in r.headers
               for r in feed_server.requests)

    feed_server.route("/wire.xml", Route(body=rss(WIRE_V1 + WIRE_NEW), etag='"wire-v2"'))
    second = poll(stream_cfg, expect_new=2)                    # only the wire's two new items
    assert "not_modified 1" in second, second                  # the journal answered 304
    wire, journal = feed_server.seen("/wire.xml"), feed_server.seen("/journal.xml")
    assert wire[-1].headers.get("If-None-Match") == '"wire-v1"'
    assert journal[-1].headers.get("If-Modified-Since") == LAST_MODIFIED

    third = poll(stream_cfg, expect_new=0)                     # 304 twice: nothing published
    assert "not_modified 2" in third, third
    assert feed_server.seen("/wire.xml")[-1].headers.get("If-None-Match") == '"wire-v2"'

    messages = pull_all(CHECK_SUB, 6)
    assert len(messages) == 6 and not pull_all(CHECK_SUB, 1)   # six, and no more
    assert len((tmp_path / "out" / "archive.jsonl").read_text(encoding="utf-8").splitlines()) == 6
    recorded = {r[0] for r in rows(tmp_path / "out" / "state.db", "published_items")}
    assert sorted(m.attributes["id"] for m in messages) == sorted(recorded)   # each id once
    for m in messages:
        assert set(m.attributes) == {"id", "source", "published"}, dict(m.attributes)
        assert m.attributes["source"] in {"wire", "journal"}
        assert ISO_UTC.match(m.attributes["published"]), m.attributes["published"]
        assert json.loads(m.data)["published"] == m.attributes["published"]

    summary = run_stream_until(stream_cfg, tmp_path / "out" / "stream.db", 6, tmp_path / "summary.json")
    assert (summary["items_read"], summary["articles"], summary["duplicates"],
            summary["dead_letters"], summary["late"]) == (6, 6, 0, 0, 0), summary

    replayed = mediamon("run", str(replay_cfg), "--quiet")
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    stream_db, batch_db = tmp_path / "out" / "stream.db", tmp_path / "out" / "batch.db"
    assert rows(stream_db, "counts") and rows(stream_db, "counts") == rows(batch_db, "counts")
    assert rows(stream_db, "topics") and rows(stream_db, "topics") == rows(batch_db, "topics")
