"""Exactly-once `mediamon stream` (state.path) on the real Pub/Sub emulator.

Kills (SIGKILL) at several points of a burst, then a restart: the stored and exported counts must
equal one clean `mediamon run` over the same items, with no replay by hand. SIGTERM mid-burst:
exit 0 within 15 s, balanced summary, and a restart completes the counts. An 8 MB message and
poison messages become dead letters and the good messages after them are counted.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.pubsub_emulator import pubsub_emulator  # noqa: F401  (fixture)

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(timezone.utc).replace(microsecond=0)
LANGS = [
    ("en", "Raqqa offensive: SDF fighters advance near {p}", "Civilians left {p} as the battle for Raqqa went on."),
    ("fr", "Raqqa : les FDS progressent vers {p}", "Des civils ont quitté {p} pendant la bataille de Raqqa."),
    ("ar", "قوات سوريا الديمقراطية تتقدم في الرقة قرب {p}", "غادر مدنيون {p} مع استمرار المعارك في الرقة."),
    ("tr", "Rakka'da SDG güçleri {p} yakınlarında ilerliyor", "Çatışmalarda siviller {p} bölgesinden ayrıldı."),
    ("es", "Inundaciones obligan a familias a dejar sus casas cerca de {p}", "El río volvió a crecer cerca de {p}."),
    ("de", "Wahl in {p}: Auszählung dauert nach Rekordbeteiligung an", "Die Stadtverwaltung von {p} teilte das mit."),
]
PLACES = ["Tabqa", "Ain Issa", "Kobani", "Manbij", "Hasakah", "Qamishli"]

COMMON = """
language: {allowed: [en, fr, ar, tr, es, de]}
topics:
  - {id: raqqa, name: Raqqa, query: '(Raqqa OR Rakka OR الرقة) AND (battle OR bataille OR المعارك OR offensive OR Çatışmalarda)'}
  - {id: elections, name: Elections, query: 'Wahl OR election'}
keywords:
  - {id: raqqa, forms: [Raqqa, Rakka, الرقة]}
  - {id: sdf, forms: [SDF, FDS, SDG, قوات سوريا الديمقراطية]}
windows: {size: 10m, allowed_lateness: 1d}
"""


def items(n: int, seed: int, tag: str) -> list[dict[str, Any]]:
    """n messages: distinct items over the last hour in six languages, 2% re-sent copies."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        if i % 50 == 49:
            out.append(dict(rng.choice(out)))
            continue
        lang, title, summary = LANGS[i % len(LANGS)]
        place = rng.choice(PLACES)
        when = (NOW - timedelta(seconds=rng.randint(0, 3600))).strftime("%Y-%m-%dT%H:%M:%SZ")
        url = f"https://news{i % 7}.example/{tag}/{i}"
        out.append({"id": url, "url": url, "title": title.format(p=place), "summary": summary.format(p=place),
                    "source": f"news{i % 7}", "published": when})
    return out


def message(item: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return (json.dumps(item, ensure_ascii=False).encode("utf-8"),
            {"id": item["id"], "source": item["source"], "published": item["published"]})


def world(tmp: Path, name: str) -> tuple[Path, Path, str]:
    """A stream config (state.path, SQLite + JSONL sinks) and a batch config over items.jsonl."""
    topic = f"projects/mediamon-test/topics/{name}"
    sub = f"projects/mediamon-test/subscriptions/{name}"
    stream = tmp / "stream.yaml"
    stream.write_text(f"""name: {name}
sources: {{pubsub: {{subscription: {sub}}}}}
poll: {{topic: {topic}}}
state: {{path: out/state.db}}
{COMMON}
sinks:
  - {{type: sqlite, path: out/stream.db, what: counts}}
  - {{type: sqlite, path: out/stream.db, what: topics}}
  - {{type: sqlite, path: out/stream.db, what: articles}}
  - {{type: sqlite, path: out/stream.db, what: dead_letters}}
  - {{type: jsonl, path: out/counts.jsonl, what: counts}}
""", encoding="utf-8")
    batch = tmp / "batch.yaml"
    batch.write_text(f"""name: {name}-batch
sources: {{jsonl: items.jsonl}}
{COMMON}
sinks:
  - {{type: sqlite, path: out/batch.db, what: counts}}
  - {{type: sqlite, path: out/batch.db, what: topics}}
  - {{type: sqlite, path: out/batch.db, what: dead_letters}}
""", encoding="utf-8")
    from pipeline.io.pubsub import ensure_subscription
    ensure_subscription(sub, topic)
    return stream, batch, topic


def publish(topic: str, messages: list[tuple[bytes, dict[str, str]]], rate: float | None = None) -> None:
    from google.cloud import pubsub_v1

    from pipeline.io.pubsub import publish_all
    client = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=200, max_latency=0.02))
    if rate is None:
        publish_all(client, topic, messages)
        return
    started = time.monotonic()
    futures = []
    for i, (data, attrs) in enumerate(messages):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(client.publish(topic, data, **attrs))
    for f in futures:
        f.result(timeout=60)


def start(cfg: Path, summary: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    args = [PY, "-m", "pipeline", "stream", str(cfg)] + (["--summary", str(summary)] if summary else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "MEDIAMON_STREAM_BATCH": "400", **(env or {})})


def rows(db: Path, table: str) -> set[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(f"SELECT * FROM {table}"))


def stored_articles(tmp: Path) -> int:
    db = tmp / "out" / "state.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM stored_articles").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def wait_for(pred: Any, proc: subprocess.Popen[str] | None, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"stream exited ({proc.returncode}) before {what}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.3)
    if proc is not None:
        proc.kill()
        pytest.fail(f"no {what} within {timeout:g}s: {proc.communicate()[1][-3000:]}")
    pytest.fail(f"no {what} within {timeout:g}s")


def stop(proc: subprocess.Popen[str]) -> tuple[int, float, str]:
    proc.send_signal(signal.SIGTERM)
    t = time.monotonic()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, time.monotonic() - t, err


def run_batch(tmp: Path, cfg: Path, all_items: list[dict[str, Any]]) -> None:
    (tmp / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in all_items),
                                     encoding="utf-8")
    done = subprocess.run([PY, "-m", "pipeline", "run", str(cfg), "--quiet"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def assert_same_counts(tmp: Path) -> None:
    stream_db, batch_db = tmp / "out" / "stream.db", tmp / "out" / "batch.db"
    assert rows(batch_db, "counts") and rows(batch_db, "topics")
    assert rows(stream_db, "counts") == rows(batch_db, "counts")
    assert rows(stream_db, "topics") == rows(batch_db, "topics")
    # the store's own totals are the same, and equal a recount of its stored articles
    state = tmp / "out" / "state.db"
    assert rows(state, "counts") == rows(batch_db, "counts")
    from pipeline.store.streamstate import StreamStore
    store = StreamStore(state, 600.0, None)
    try:
        assert store.verify_counts() == []
    finally:
        store.close()
    # JSONL sink: the last line per key is the true count
    last: dict[tuple[str, ...], tuple[int, ...]] = {}
    for line in (tmp / "out" / "counts.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        last[(r["window_start"], r["window_end"], r["keyword"], r["language"])] = (r["articles"], r["mentions"], r["stories"])
    assert {(*k, *v) for k, v in last.items()} == rows(batch_db, "counts")


def test_sigkill_at_several_points_then_restart_equals_one_batch_run(
        pubsub_emulator: str, tmp_path: Path) -> None:  # noqa: F811
    stream_cfg, batch_cfg, topic = world(tmp_path, "kills")
    burst = items(3000, seed=1, tag="kills")
    distinct = len({i["id"] for i in burst})
    publish(topic, [message(i) for i in burst])
    # 1-3: the job kills itself after pulling, after committing (not acked), after acking (not exported)
    for point in ("after_commit:2", "after_ack:3", "after_pull:1", "after_export:1"):
        proc = start(stream_cfg, env={"MEDIAMON_CRASH_AT": point})
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == -signal.SIGKILL, f"{point}: exit {proc.returncode}: {err[-2000:]}"
    committed = stored_articles(tmp_path)
    assert 0 < committed < distinct, committed
    # 4: killed from outside while busy, at a moment the test does not choose precisely
    proc = start(stream_cfg)
    before = committed
    wait_for(lambda: stored_articles(tmp_path) > before, proc, 120, "progress after restart")
    time.sleep(random.Random(4).uniform(0.0, 1.5))
    proc.kill()
    proc.wait(timeout=30)
    # 5: a clean run finishes the burst (redelivered messages are absorbed as duplicates)
    summary = tmp_path / "summary.json"
    proc = start(stream_cfg, summary)
    wait_for(lambda: stored_articles(tmp_path) == distinct, proc, 180, "every distinct article stored")
    time.sleep(1.0)
    code, took, err = stop(proc)
    assert code == 0 and took < 15, (code, took, err[-2000:])
    s = json.loads(summary.read_text(encoding="utf-8"))
    assert s["items_read"] == s["articles"] + s["duplicates"] + s["dead_letters"] + s["late"], s
    run_batch(tmp_path, batch_cfg, burst)
    assert_same_counts(tmp_path)
    with sqlite3.connect(tmp_path / "out" / "stream.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0] == distinct


def test_sigterm_mid_burst_drains_balanced_and_restart_completes(
        pubsub_emulator: str, tmp_path: Path) -> None:  # noqa: F811
    stream_cfg, batch_cfg, topic = world(tmp_path, "sigterm")
    burst = items(2500, seed=2, tag="sigterm")
    distinct = len({i["id"] for i in burst})
    first = tmp_path / "first.json"
    proc = start(stream_cfg, first)
    publisher = threading.Thread(target=publish, args=(topic, [message(i) for i in burst], 400.0))
    publisher.start()
    wait_for(lambda: stored_articles(tmp_path) > 400, proc, 120, "the first committed batches")
    code, took, err = stop(proc)                                  # mid-burst: still publishing
    assert code == 0, err[-3000:]
    assert took < 15, f"SIGTERM took {took:.1f}s"
    s1 = json.loads(first.read_text(encoding="utf-8"))
    assert s1["items_read"] == s1["articles"] + s1["duplicates"] + s1["dead_letters"] + s1["late"], s1
    assert 0 < s1["items_read"] < len(burst)
    assert s1["articles"] == stored_articles(tmp_path)            # what it said it counted is stored
    publisher.join(timeout=120)
    second = tmp_path / "second.json"
    proc = start(stream_cfg, second)
    wait_for(lambda: stored_articles(tmp_path) == distinct, proc, 180, "every distinct article stored")
    time.sleep(1.0)
    code, took, err = stop(proc)
    assert code == 0 and took < 15, err[-2000:]
    s2 = json.loads(second.read_text(encoding="utf-8"))
    assert s1["articles"] + s2["articles"] == distinct
    assert s1["items_read"] + s2["items_read"] >= len(burst)
    run_batch(tmp_path, batch_cfg, burst)
    assert_same_counts(tmp_path)


def test_idle_sigterm_exits_promptly(pubsub_emulator: str, tmp_path: Path) -> None:  # noqa: F811
    stream_cfg, _, _ = world(tmp_path, "idle")
    summary = tmp_path / "s.json"
    proc = start(stream_cfg, summary)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "reading " in line or not line:
            break
    time.sleep(2.0)
    code, took, err = stop(proc)
    assert code == 0 and took < 15, (code, took, err[-2000:])
    assert json.loads(summary.read_text(encoding="utf-8"))["items_read"] == 0


def test_8mb_and_poison_messages_become_dead_letters_and_good_ones_follow(
        pubsub_emulator: str, tmp_path: Path) -> None:  # noqa: F811
    stream_cfg, batch_cfg, topic = world(tmp_path, "poison")
    good = items(12, seed=3, tag="poison")
    good = [g for i, g in enumerate(good) if i % 50 != 49]
    huge = json.dumps({"title": "Raqqa " + "x" * (8 * 1024 * 1024), "source": "big"}).encode("utf-8")
    poison = [
        (huge, {"source": "big"}),                                                      # 8 MB
        (json.dumps({"title": "Raqqa battle", "published": "9999-12-31T23:59:59Z"}).encode(), {}),
        (b'{"title": "Raqqa battle \\ud800"}', {}),                                   # lone surrogate
        (b"[" * 200000 + b"]" * 200000, {}),                                          # deep nesting
        (b"\xff\xfe not utf-8", {}),
    ]
    publish(topic, [message(g) for g in good[:6]] + poison + [message(g) for g in good[6:]])
    summary = tmp_path / "s.json"
    proc = start(stream_cfg, summary)
    wait_for(lambda: stored_articles(tmp_path) == len(good), proc, 120, "the good messages after the poison")
    time.sleep(1.0)
    code, took, err = stop(proc)
    assert code == 0 and took < 15, err[-2000:]
    s = json.loads(summary.read_text(encoding="utf-8"))
    assert (s["items_read"], s["articles"], s["dead_letters"]) == (len(good) + len(poison), len(good), len(poison)), s
    dead = rows(tmp_path / "out" / "stream.db", "dead_letters")
    assert len(dead) == len(poison)
    errors = " | ".join(d[1] for d in dead)
    for reason in ("too large", "out of range", "surrogate", "nested too deeply", "not valid JSON"):
        assert reason in errors, errors
    assert all(len(d[3].encode("utf-8")) <= 4096 + 4 for d in dead)   # raw cut to 4 KiB
