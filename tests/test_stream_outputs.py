"""Exactly-once `mediamon stream` (state.path): spike alerts and story records, on the real emulator.

A quiet stretch of 10-minute windows, then a spike window: the stream raises the same alerts and
writes the same story records as one `mediamon run` over the same items (with a state.path of its
own: stories are matched against stored signatures in both), also when it is killed
mid-way (SIGKILL after an export, after an ack) and restarted: each alert is stored once and
POSTed to the webhook once, and the last alerts line per key is the batch run's record.
"""
from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.pubsub_emulator import pubsub_emulator  # noqa: F401  (fixture)
from tests.test_stream_exactly_once import message, publish, rows, run_batch, start, stop, stored_articles, wait_for

WINDOW = 600
NOW = datetime.now(timezone.utc).replace(microsecond=0)
CURRENT = int(NOW.timestamp()) // WINDOW * WINDOW     # start of the current (open) window
# which articles are one story must not depend on the order they arrive in: distinct articles
# carry distinct title numbers; the rewrites (the same story on purpose) are published after
WORDS = {
    "en": "convoy bridge hospital market school water power road village checkpoint drone mortar refugees "
          "aid winter flour doctors council tribal elders mines river dam curfew shelter tents fuel bakery "
          "wounded negotiations".split(),
    "fr": "convoi pont hôpital marché école eau électricité route village barrage drone obus réfugiés aide "
          "hiver farine médecins conseil tribus anciens mines fleuve couvre-feu abri tentes carburant "
          "boulangerie blessés négociations quartier".split(),
    "ar": "قافلة جسر مستشفى سوق مدرسة مياه كهرباء طريق قرية حاجز طائرة قذائف لاجئين مساعدات شتاء طحين "
          "أطباء مجلس عشائر وجهاء ألغام نهر سد حظر ملجأ خيام وقود مخبز جرحى مفاوضات".split(),
    "de": "Stimmen Bezirk Bürgermeister Rathaus Parteien Ergebnis Beteiligung Wähler Kandidaten Liste "
          "Koalition Umfrage Briefwahl Landrat Gemeinderat Auszählung".split(),
}
RAQQA = [("en", "Raqqa offensive:", "The battle for Raqqa:"), ("fr", "Raqqa, offensive :", "La bataille de Raqqa :"),
         ("ar", "الرقة:", "المعارك في الرقة:")]

COMMON = """
language: {allowed: [en, fr, ar, de]}
topics:
  - {id: raqqa, name: Raqqa, query: '(Raqqa OR Rakka OR الرقة) AND (battle OR bataille OR المعارك OR offensive)'}
  - {id: elections, name: Elections, query: 'Wahl OR election'}
keywords:
  - {id: raqqa, forms: [Raqqa, Rakka, الرقة]}
windows: {size: 10m, allowed_lateness: 1d, early: 1s}
alerts:
  rules:
    - {name: raqqa-ratio, type: ratio, topic: raqqa, previous: 3, margin: 2, min_count: 5, cooldown: 30m}
    - {name: any-deviation, type: deviation, baseline: 40m, k: 2, min_count: 5}
"""


def burst(seed: int, tag: str) -> list[dict[str, Any]]:
    """Nine windows (in the past, not yet late): 2-3 Raqqa articles and one election article
    each, then 16 Raqqa articles in the last one, three of which other outlets rewrite two
    minutes later (one story each); three re-sent copies (duplicates). Shuffled, rewrites last."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    rewrites: list[dict[str, Any]] = []

    def words(lang: str, n: int) -> str:
        return " ".join(rng.sample(WORDS[lang], n))

    def add(k: int, title: str, summary: str, source: str) -> dict[str, Any]:
        when = datetime.fromtimestamp(CURRENT + k * WINDOW + rng.randint(5, WINDOW - 300), timezone.utc)
        url = f"https://{source}.example/{tag}/{len(out)}"
        item = {"id": url, "url": url, "title": title, "summary": summary, "source": source,
                "published": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        out.append(item)
        return item

    for k in range(-9, 0):
        n = 16 if k == -1 else 2 + (k % 2)
        for i in range(n):
            lang, head, lede = RAQQA[i % len(RAQQA)]
            # a number of its own in each title: articles whose titles' numbers differ are never one story
            first = add(k, f"{head} {words(lang, 5)} {100 + len(out)}", f"{lede} {words(lang, 7)}", f"news{i % 5}")
            if k == -1 and i < 3:
                later = datetime.strptime(first["published"], "%Y-%m-%dT%H:%M:%SZ") + timedelta(seconds=120)
                rewrites.append(dict(first, id=first["id"] + "-re", url=first["url"] + "-re", source="wire",
                                     title=first["title"] + " (report)",
                                     published=later.strftime("%Y-%m-%dT%H:%M:%SZ")))
        add(k, f"Wahl: {words('de', 5)} {100 + len(out)}", f"Die Wahl im {words('de', 6)}", "zeitung")
    copies = [dict(rng.choice(out)) for _ in range(3)]
    rng.shuffle(out)
    return out + rewrites + copies


class Hook:
    """A local webhook that records every alert POSTed to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    try:
        yield h
    finally:
        h.server.shutdown()


def world(tmp: Path, name: str, hook_url: str) -> tuple[Path, Path, str]:
    topic = f"projects/mediamon-test/topics/{name}"
    sub = f"projects/mediamon-test/subscriptions/{name}"
    stream = tmp / "stream.yaml"
    stream.write_text(f"""name: {name}
sources: {{pubsub: {{subscription: {sub}}}}}
poll: {{topic: {topic}}}
state: {{path: out/state.db}}
{COMMON}
  webhook: {{url: "{hook_url}", retries: 1, backoff: 0s}}
sinks:
  - {{type: sqlite, path: out/stream.db, what: alerts}}
  - {{type: sqlite, path: out/stream.db, what: stories}}
  - {{type: sqlite, path: out/stream.db, what: topics}}
  - {{type: jsonl, path: out/alerts.jsonl, what: alerts}}
  - {{type: jsonl, path: out/stories.jsonl, what: stories}}
""", encoding="utf-8")
    batch = tmp / "batch.yaml"
    batch.write_text(f"""name: {name}-batch
sources: {{jsonl: items.jsonl}}
state: {{path: out/batch-state.db}}
{COMMON}
sinks:
  - {{type: sqlite, path: out/batch.db, what: alerts}}
  - {{type: sqlite, path: out/batch.db, what: stories}}
  - {{type: sqlite, path: out/batch.db, what: topics}}
""", encoding="utf-8")
    from pipeline.io.pubsub import ensure_subscription
    ensure_subscription(sub, topic)
    return stream, batch, topic


def last_lines(path: Path, key: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        last[tuple(record[k] for k in key)] = record
    return last


def as_rows(records: dict[tuple[Any, ...], dict[str, Any]], db: Path, table: str) -> set[tuple[Any, ...]]:
    """JSONL records in the column order of the SQLite table (lists as JSON text)."""
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    return {tuple(json.dumps(r[c], ensure_ascii=False) if isinstance(r[c], list) else r[c] for c in cols)
            for r in records.values()}


def story_shapes(records: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    """Story records without what names the story (id, headline, url: its first-seen article)."""
    return {r[:2] + r[5:] for r in records}


def check_same_as_batch(tmp: Path, hook: Hook, arrival_order_kept: bool = True) -> None:
    """`arrival_order_kept`: False after kills, whose redeliveries can make an article arrive
    after a later rewrite of it; the rewrite then names the story (a story is named by its
    first-seen article), so only the stories' contents are compared."""
    stream_db, batch_db = tmp / "out" / "stream.db", tmp / "out" / "batch.db"
    batch_alerts = rows(batch_db, "alerts")
    # the burst raises the Raqqa spike (both rules) and nothing else
    assert {(a[0], a[1], a[6]) for a in batch_alerts} == {
        ("raqqa", datetime.fromtimestamp(CURRENT - WINDOW, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), rule)
        for rule in ("raqqa-ratio", "any-deviation")}, batch_alerts
    assert rows(stream_db, "topics") == rows(batch_db, "topics")
    assert rows(stream_db, "alerts") == batch_alerts
    assert rows(tmp / "out" / "state.db", "alerts") == batch_alerts       # the store keeps the cool-downs
    assert as_rows(last_lines(tmp / "out" / "alerts.jsonl", ("topic", "window_start", "window_end", "rule")),
                   batch_db, "alerts") == batch_alerts
    # the webhook got each alert once, when it was first raised
    posted = [(p["topic"], p["window_start"], p["rule"]) for p in hook.posts]
    assert sorted(posted) == sorted((a[0], a[1], a[6]) for a in batch_alerts), hook.posts
    batch_stories = rows(batch_db, "stories")
    assert any(s[7] > 1 for s in batch_stories)                           # a story with its rewrites
    same = (lambda r: r) if arrival_order_kept else story_shapes
    assert same(rows(stream_db, "stories")) == same(batch_stories)
    assert same(as_rows(last_lines(tmp / "out" / "stories.jsonl", ("window_start", "window_end", "story")),
                        batch_db, "stories")) == same(batch_stories)


def test_alerts_and_stories_equal_a_batch_run(pubsub_emulator: str, tmp_path: Path, hook: Hook) -> None:  # noqa: F811
    stream_cfg, batch_cfg, topic = world(tmp_path, "outputs", hook.url)
    items = burst(seed=5, tag="outputs")
    distinct = len({i["id"] for i in items})
    proc = start(stream_cfg, env={"MEDIAMON_STREAM_BATCH": "15"})
    publish(topic, [message(i) for i in items], rate=10.0)     # several judgments while windows fill
    wait_for(lambda: stored_articles(tmp_path) == distinct, proc, 180, "every distinct article stored")
    time.sleep(3.0)
    code, took, err = stop(proc)
    assert code == 0 and took < 15, (code, took, err[-3000:])
    assert "alerts raised" in err
    run_batch(tmp_path, batch_cfg, items)
    check_same_as_batch(tmp_path, hook)


def test_kills_and_restarts_raise_each_alert_once(pubsub_emulator: str, tmp_path: Path, hook: Hook) -> None:  # noqa: F811
    stream_cfg, batch_cfg, topic = world(tmp_path, "outkills", hook.url)
    items = burst(seed=6, tag="outkills")
    distinct = len({i["id"] for i in items})
    publish(topic, [message(i) for i in items])
    small = {"MEDIAMON_STREAM_BATCH": "8"}    # about seven micro-batches for the burst
    # killed after exporting (windows queued, maybe judged), after acking (exported and judged by the
    # next start), after committing (not acked: redelivered, duplicates)
    for point in ("after_export:2", "after_ack:2", "after_commit:1"):
        proc = start(stream_cfg, env={**small, "MEDIAMON_CRASH_AT": point})
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == -signal.SIGKILL, f"{point}: exit {proc.returncode}: {err[-2000:]}"
    assert 0 < stored_articles(tmp_path) < distinct
    proc = start(stream_cfg, env=small)
    wait_for(lambda: stored_articles(tmp_path) == distinct, proc, 180, "every distinct article stored")
    time.sleep(3.0)
    code, took, err = stop(proc)
    assert code == 0 and took < 15, (code, took, err[-3000:])
    with sqlite3.connect(tmp_path / "out" / "state.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM stream_alert_windows").fetchone()[0] == 0   # all judged
        assert conn.execute("SELECT COUNT(*) FROM stream_outbox").fetchone()[0] == 0          # all delivered
    run_batch(tmp_path, batch_cfg, items)
    check_same_as_batch(tmp_path, hook, arrival_order_kept=False)
