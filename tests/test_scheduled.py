"""Issue 7: scheduled runs count every article exactly once, across runs, crashes and overlap.

Feeds are served by the local feed server (127.0.0.1); the job runs as a subprocess, as cron
would run it, so that SIGKILL and concurrent runs are real.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parents[1]

WORDS = ["Raqqa battle", "Raqqa civilians", "Deir ez-Zor offensive", "market prices", "الرقة معارك",
         "weather storm", "Raqqa assault", "football derby"]


def item(i: int) -> str:
    # published times spread over 10 hours, and not in item order: later runs bring earlier news
    hour = (i * 7) % 10
    return (f"<item><title>Story {i}: {WORDS[i % len(WORDS)]}</title>"
            f"<link>https://news.example/{i}?utm_source=rss</link><guid>g{i}</guid>"
            f"<pubDate>Sun, 15 Oct 2017 {hour:02d}:{(i * 13) % 60:02d}:00 GMT</pubDate>"
            f"<description>{WORDS[(i + 3) % len(WORDS)]} report number {i}</description></item>")


def feed(ids: range | list[int]) -> bytes:
    body = "".join(item(i) for i in ids)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            f"{body}</channel></rss>").encode()


def config(tmp: Path, url: str, on_overlap: str = "wait") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "cron.yaml"
    path.write_text(f"""
name: cron-test
sources:
  feeds:
    - {{url: "{url}", name: news}}
language: {{allowed: [ar, en, fr]}}
topics:
  - {{id: raqqa, query: 'Raqqa OR الرقة'}}
keywords:
  - {{id: raqqa, forms: [Raqqa, الرقة]}}
  - {{id: battle, forms: [battle, معارك, assault, offensive]}}
windows: {{size: 1h}}
fetch: {{per_host_delay: 0s, timeout: 10s}}
state: {{path: state/store.db, on_overlap: {on_overlap}, wait_timeout: 120s}}
sinks:
  - {{type: sqlite, path: out/results.db, what: counts}}
  - {{type: sqlite, path: out/results.db, what: topics}}
  - {{type: sqlite, path: out/results.db, what: articles}}
  - {{type: jsonl, path: out/counts.jsonl, what: counts}}
""", encoding="utf-8")
    return path


def run(cfg: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--quiet",
                           "--summary", str(cfg.parent / "summary.json")],
                          capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def counts(cfg: Path) -> tuple[list[tuple], list[tuple]]:
    db = sqlite3.connect(cfg.parent / "out" / "results.db")
    try:
        return (db.execute("SELECT * FROM counts ORDER BY 1, 2, 3, 4").fetchall(),
                db.execute("SELECT * FROM topics ORDER BY 1, 2, 3, 4").fetchall())
    finally:
        db.close()


def stored_ids(cfg: Path) -> int:
    db = sqlite3.connect(cfg.parent / "state" / "store.db")
    try:
        return db.execute("SELECT count(*) FROM stored_articles").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def union_counts(tmp_path: Path, feed_server: FeedServer) -> tuple[list[tuple], list[tuple]]:
    """The truth: one run over every item of every shift."""
    feed_server.route("/union.xml", Route(body=feed(range(0, 40))))
    cfg = config(tmp_path / "union", feed_server.url("/union.xml"))
    run(cfg)
    return counts(cfg)


def test_shifting_feeds_over_many_runs_equal_one_run_over_the_union(
        tmp_path: Path, feed_server: FeedServer, union_counts: tuple[list[tuple], list[tuple]]) -> None:
    # each run sees the newest 12 items; the window moves by 7; run 3 repeats run 2 (a 304)
    shifts = [range(0, 12), range(7, 19), range(14, 26), range(14, 26), range(21, 33), range(28, 40)]
    routes = [Route(body=feed(ids), etag=f'"v{i}"') for i, ids in enumerate(shifts)]
    feed_server.route("/news.xml", *routes)
    cfg = config(tmp_path / "cron", feed_server.url("/news.xml"))
    totals = []
    for _ in shifts:
        run(cfg)
        totals.append(json.loads((cfg.parent / "summary.json").read_text()))
    assert counts(cfg) == union_counts
    assert sum(t["articles"] for t in totals) == 40 == stored_ids(cfg)
    assert all(t["items_read"] == t["articles"] + t["duplicates"] + t["dead_letters"] + t["late"] for t in totals)
    assert totals[3]["items_read"] == 0  # the repeated body came back as 304 Not Modified
    assert any(h.get("If-None-Match") == '"v2"' for h in (r.headers for r in feed_server.requests))


@pytest.mark.parametrize("point", ["after_fetch", "before_commit", "after_commit", "before_finish"])
def test_sigkill_at_any_point_then_next_run_restores_exact_counts(
        point: str, tmp_path: Path, feed_server: FeedServer,
        union_counts: tuple[list[tuple], list[tuple]]) -> None:
    feed_server.route("/news.xml", Route(body=feed(range(0, 20)), etag='"a"'),
                      Route(body=feed(range(0, 40)), etag='"b"'))
    cfg = config(tmp_path / "crash", feed_server.url("/news.xml"))
    run(cfg)                                                   # a clean first run: items 0-19
    killed = run(cfg, env={"MEDIAMON_CRASH_AT": point}, check=False)
    assert killed.returncode == -9, killed.stderr              # SIGKILL while handling items 0-39
    run(cfg)                                                   # the next cron run
    assert counts(cfg) == union_counts
    assert stored_ids(cfg) == 40


def test_two_runs_at_once_wait_for_each_other(tmp_path: Path, feed_server: FeedServer,
                                              union_counts: tuple[list[tuple], list[tuple]]) -> None:
    feed_server.route("/news.xml", Route(body=feed(range(0, 40))))
    cfg = config(tmp_path / "overlap", feed_server.url("/news.xml"))
    cmd = [sys.executable, "-m", "pipeline", "run", str(cfg), "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=240) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert counts(cfg) == union_counts
    assert stored_ids(cfg) == 40


def test_overlap_exit_mode_says_so_and_leaves_the_store_alone(tmp_path: Path, feed_server: FeedServer) -> None:
    import fcntl
    feed_server.route("/news.xml", Route(body=feed(range(0, 5))))
    cfg = config(tmp_path / "exit", feed_server.url("/news.xml"), on_overlap="exit")
    lock = cfg.parent / "state" / "store.db.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        proc = run(cfg, check=False)
    assert proc.returncode == 0
    assert "another mediamon run holds" in proc.stderr
    assert not (cfg.parent / "out" / "results.db").exists()


def test_rebuild_recounts_a_period_after_a_query_change(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.route("/news.xml", Route(body=feed(range(0, 40))))
    cfg = config(tmp_path / "rebuild", feed_server.url("/news.xml"))
    run(cfg)
    before_counts, before_topics = counts(cfg)
    # the analyst widens the topic; a rebuild re-tags stored articles and recounts
    text = cfg.read_text().replace("query: 'Raqqa OR الرقة'", "query: 'Raqqa OR الرقة OR Deir'")
    cfg.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--rebuild", "--quiet"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    after_counts, after_topics = counts(cfg)
    assert after_counts == before_counts                     # keywords did not change
    assert sum(r[4] for r in after_topics) > sum(r[4] for r in before_topics)
    again = subprocess.run([sys.executable, "-m", "pipeline", "run", str(cfg), "--rebuild", "--quiet",
                            "--since", "2017-10-15T00:00:00Z", "--until", "2017-10-16T00:00:00Z"],
                           capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    assert counts(cfg) == (after_counts, after_topics)       # idempotent


def test_retention_prune_keeps_counts(tmp_path: Path, feed_server: FeedServer) -> None:
    from pipeline.config import load_config
    from pipeline.store.articles import ArticleStore
    feed_server.route("/news.xml", Route(body=feed(range(0, 20))))
    cfg = config(tmp_path / "prune", feed_server.url("/news.xml"))
    run(cfg)
    before = counts(cfg)
    conf = load_config(cfg)
    assert conf.state.path is not None
    store = ArticleStore(conf.state.path, conf.windows.size, conf.windows.period)
    assert store.prune(horizon_seconds=86400) == 20          # 2017 is long past the horizon
    store.close()
    run(cfg)                                                  # same items again: all duplicates
    assert counts(cfg) == before
    summary = json.loads((cfg.parent / "summary.json").read_text())
    assert summary["articles"] == 0


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_staging_files_of_a_killed_run_are_cleaned_up_by_the_next(
        point: str, tmp_path: Path, feed_server: FeedServer) -> None:
    """Issue 14: a run killed after staging left its files in state/staging for ever."""
    feed_server.route("/news.xml", Route(body=feed(range(0, 10))))
    cfg = config(tmp_path / "stale", feed_server.url("/news.xml"))
    staging = cfg.parent / "state" / "staging"
    killed = run(cfg, env={"MEDIAMON_CRASH_AT": point}, check=False)
    assert killed.returncode == -9, killed.stderr
    left = sorted(p.name for p in staging.iterdir())
    assert any(name.endswith(".articles.jsonl") for name in left), left
    (staging / "old.articles.jsonl-00000-of-00002").write_text("{}\n")   # a shard a kill can leave
    run(cfg)
    assert sorted(p.name for p in staging.iterdir()) == []
    assert stored_ids(cfg) == 10
