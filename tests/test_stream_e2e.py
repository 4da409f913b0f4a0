"""End to end on the real Pub/Sub emulator: poll local feeds -> Pub/Sub -> `mediamon stream` -> sinks.

The stream's final counts must equal those of `mediamon run` over the poller's archive; SIGTERM
mid-stream must exit 0 within 15 s with every item read accounted for.
"""
from __future__ import annotations

import json
import os
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

from tests.pubsub_emulator import pubsub_emulator  # noqa: F401  (fixture)

PY = sys.executable
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def rss(items: list[tuple[str, str, str, datetime]]) -> str:
    body = "".join(f"<item><title>{t}</title><link>{link}</link><description>{d}</description>"
                   f"<pubDate>{format_datetime(when)}</pubDate></item>" for t, link, d, when in items)
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{body}</channel></rss>'


def write_world(tmp: Path) -> tuple[Path, Path]:
    """Two local feeds (one story syndicated in both), a stream config and a replay config."""
    ago = lambda m: NOW - timedelta(minutes=m)  # noqa: E731
    wire = [("Raqqa offensive: SDF advance on Raqqa", "https://example.org/a1",
             "The Syrian Democratic Forces (SDF) pressed the battle for Raqqa.", ago(5)),
            ("Civilians fled Raqqa as the assault began", "https://example.org/a2",
             "Thousands of civilians left the city of Raqqa.", ago(65)),
            ("Markets steady in Europe", "https://example.org/a3", "Stocks were flat today.", ago(20))]
    agg = [wire[0], ("Rakka battle enters new phase", "https://example.org/b1",
                     "SDF fighters in Rakka after heavy battle.", ago(30))]
    (tmp / "wire.xml").write_text(rss(wire), encoding="utf-8")
    (tmp / "agg.xml").write_text(rss(agg), encoding="utf-8")
    common = """
language: {allowed: [ar, en, fr]}
topics:
  - {id: raqqa-offensive, name: Raqqa offensive, query: '(Raqqa OR Rakka) AND (offensive OR battle OR assault)'}
keywords:
  - {id: raqqa, forms: [Raqqa, Rakka]}
  - {id: sdf, forms: [SDF, Syrian Democratic Forces]}
windows: {size: 1h, allowed_lateness: 1d, early: 1s}
"""
    stream = tmp / "stream.yaml"
    stream.write_text(f"""name: e2e-stream
sources:
  feeds: [{{url: wire.xml, name: wire, language: en}}, {{url: agg.xml, name: agg, language: en}}]
  pubsub: {{subscription: projects/mediamon-e2e/subscriptions/items}}
poll: {{topic: projects/mediamon-e2e/topics/items, archive: out/archive.jsonl, interval: 1m}}
state: {{path: out/state.db}}
{common}
sinks:
  - {{type: sqlite, path: out/stream.db, what: counts}}
  - {{type: sqlite, path: out/stream.db, what: topics}}
  - {{type: sqlite, path: out/stream.db, what: articles}}
  - {{type: jsonl, path: out/counts.jsonl, what: counts}}
  - {{type: jsonl, path: out/dead.jsonl, what: dead_letters}}
""", encoding="utf-8")
    replay = tmp / "replay.yaml"
    replay.write_text(f"""name: e2e-replay
sources: {{jsonl: out/archive.jsonl}}
{common}
sinks:
  - {{type: sqlite, path: out/batch.db, what: counts}}
  - {{type: sqlite, path: out/batch.db, what: topics}}
""", encoding="utf-8")
    return stream, replay


def mediamon(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120, **kw)


def rows(db: Path, table: str) -> set[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(f"SELECT * FROM {table}"))


def test_poll_stream_sigterm_and_replay(pubsub_emulator: str, tmp_path: Path) -> None:  # noqa: F811
    stream_cfg, replay_cfg = write_world(tmp_path)
    polled = mediamon("poll", str(stream_cfg), "--once")
    assert polled.returncode == 0, polled.stderr
    assert "4 new published" in polled.stdout
    again = mediamon("poll", str(stream_cfg), "--once")          # state survives: nothing new
    assert "0 new published" in again.stdout, again.stdout

    from pipeline.io.pubsub import publish_all, publisher
    archive = (tmp_path / "out" / "archive.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(archive) == 4
    extra = [(b"{not json", {}), (b'{"title": 5}', {}),                     # two malformed
             (archive[0].encode("utf-8"), {"published": json.loads(archive[0])["published"]})]  # a duplicate
    publish_all(publisher(), "projects/mediamon-e2e/topics/items", extra)

    summary_path = tmp_path / "summary.json"
    proc = subprocess.Popen([PY, "-m", "pipeline", "stream", str(stream_cfg), "--summary", str(summary_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        db = tmp_path / "out" / "stream.db"
        while time.monotonic() < deadline:   # wait for the articles to reach the sink
            if proc.poll() is not None:
                pytest.fail(f"stream exited early ({proc.returncode}): {proc.communicate()[1][-3000:]}")
            if db.exists():
                try:
                    if len(rows(db, "articles")) == 4 and rows(db, "counts"):
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.5)
        else:
            proc.send_signal(signal.SIGTERM)
            pytest.fail(f"stream wrote no articles within 90 s: {proc.communicate(timeout=30)[1][-3000:]}")
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert took < 15, f"SIGTERM took {took:.1f}s"
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["items_read"] == 7, summary
    assert summary["items_read"] == (summary["articles"] + summary["duplicates"]
                                     + summary["dead_letters"] + summary["late"])
    assert (summary["articles"], summary["duplicates"], summary["dead_letters"], summary["late"]) == (4, 1, 2, 0)

    replayed = mediamon("run", str(replay_cfg), "--quiet")
    assert replayed.returncode == 0, replayed.stderr
    batch_db, stream_db = tmp_path / "out" / "batch.db", tmp_path / "out" / "stream.db"
    assert rows(stream_db, "counts") == rows(batch_db, "counts")
    assert rows(stream_db, "topics") == rows(batch_db, "topics")
    assert rows(stream_db, "counts")
    # JSONL sink: the last line per key is the true count
    last: dict[tuple[str, ...], tuple[int, int, int]] = {}
    for line in (tmp_path / "out" / "counts.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        last[(r["window_start"], r["window_end"], r["keyword"], r["language"])] = (r["articles"], r["mentions"], r["stories"])
    assert {(*k, *v) for k, v in last.items()} == rows(batch_db, "counts")
