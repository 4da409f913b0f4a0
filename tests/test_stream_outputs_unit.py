"""The exactly-once stream's export step without Pub/Sub (pipeline/io/stream_outputs.py): alerts
judged on the stored totals equal the batch evaluation, an alert raised on an open window is
updated (not raised again) as the window grows, a kill between storing an alert and delivering it
delivers it on the next start, and story records equal a recount of every stored article."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.config import load_config
from pipeline.graph.stages import story_options
from pipeline.io.export import Exporter
from pipeline.io.stream_outputs import StreamOutputs
from pipeline.store.streamstate import StreamStore
from transforms.counts import story_member, story_of, story_record, windows_of
from transforms.records import Article
from transforms.spike_rules import evaluate_new
from transforms.spikes import topic_series
from transforms.timeutil import from_epoch, to_epoch

HOUR = 3600.0
T0 = 1_800_000_000.0 // HOUR * HOUR     # a window boundary (2027)

CONFIG = """name: outputs
sources: {pubsub: {subscription: projects/mediamon-test/subscriptions/items}}
state: {path: state.db}
topics: [{id: raqqa, name: Raqqa, query: Raqqa}, {id: vote, name: Vote, query: vote}]
windows: {size: 1h, allowed_lateness: 30d, early: 10s}
alerts:
  rules:
    - {name: r, type: ratio, previous: 3, margin: 2, min_count: 4, cooldown: 2h}
sinks:
  - {type: sqlite, path: out.db, what: alerts}
  - {type: jsonl, path: alerts.jsonl, what: alerts}
  - {type: sqlite, path: out.db, what: stories}
"""


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def article(n: int, hour: int, topic: str = "raqqa", title: str | None = None, minute: int = 1) -> Article:
    published = from_epoch(T0 + hour * HOUR + minute * 60 + n)
    return Article(id=f"a{n}", url=f"https://e.example/{n}", title=title or f"{topic} item number {n} of the day",
                   summary="", source=f"s{n % 3}", published=published, fetched=published, language="en",
                   topics=(topic,))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "c.yaml")
    assert config.state.path is not None
    store = StreamStore(config.state.path, config.windows.size, config.windows.period)
    exporter = Exporter(config.sinks)
    clock = Clock()
    outputs = StreamOutputs(config, store, exporter, clock=lambda: 0.0, monotonic=clock)
    yield config, store, exporter, outputs, clock
    exporter.close()
    store.close()


def commit(store: StreamStore, config: Any, batch: str, articles: list[Article]) -> None:
    store.commit_batch(batch, len(articles), articles, [], stories=story_options(config))


def sink_alerts(tmp: Path) -> list[tuple[Any, ...]]:
    if not (tmp / "out.db").exists():
        return []
    with sqlite3.connect(tmp / "out.db") as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alerts'").fetchone() is None:
            return []
        return sorted(conn.execute("SELECT topic, window_start, count, baseline, score, rule, articles FROM alerts"))


def batch_alerts(config: Any, articles: list[Article]) -> list[tuple[Any, ...]]:
    """What a scheduled run's DetectSpikes gives over all these articles."""
    out = []
    for topic in sorted({t for a in articles for t in a.topics}):
        members = [(to_epoch(a.published), a.id) for a in articles if topic in a.topics]
        series = topic_series(members, HOUR, None)
        origin = from_epoch(min(windows_of(min(to_epoch(a.published) for a in articles), HOUR, None))[0])
        for alert in evaluate_new(config.alerts, topic, series, None, HOUR, origin=origin):
            out.append((alert.topic, alert.window_start, alert.count, alert.baseline, alert.score, alert.rule,
                        json.dumps(list(alert.articles))))
    return sorted(out)


def test_open_window_alert_is_updated_not_raised_again_and_equals_batch(world: Any, tmp_path: Path) -> None:
    config, store, _, outputs, clock = world
    history = [article(n, h) for n, h in enumerate([0, 1, 2, 3, 3, 4])]          # 1-2 per hour
    vote = [article(100 + h, h, "vote") for h in range(6)]
    commit(store, config, "b1", history + vote)
    outputs.export()
    assert sink_alerts(tmp_path) == []
    spike = [article(10 + i, 5, minute=2 + i) for i in range(9)]
    commit(store, config, "b2", spike[:5])                                        # the window fills...
    clock.t += 11
    outputs.export()
    first = sink_alerts(tmp_path)
    assert [(a[1], a[2]) for a in first] == [(from_epoch(T0 + 5 * HOUR), 5)]       # raised on 5 so far
    commit(store, config, "b3", spike[5:])
    outputs.export()                                                              # < early: not judged yet
    assert sink_alerts(tmp_path) == first
    assert store.alert_windows() == [(T0 + 5 * HOUR, T0 + 6 * HOUR)]             # ... but queued
    clock.t += 11
    outputs.export()
    everything = history + vote + spike
    assert sink_alerts(tmp_path) == batch_alerts(config, everything)             # updated to the final count
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["count"] for r in lines] == [5, 9]                                  # one key, last line wins
    clock.t += 11
    outputs.export()                                                              # nothing changed: no new line
    assert len((tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    # inside the cool-down (2h) the next hour raises nothing, even though it is a spike too
    commit(store, config, "b4", [article(40 + i, 6) for i in range(8)])
    outputs.export(final=True)
    assert [(a[1], a[2]) for a in sink_alerts(tmp_path)] == [(from_epoch(T0 + 5 * HOUR), 9)]


def test_a_kill_after_storing_an_alert_delivers_it_at_the_next_start(world: Any, tmp_path: Path) -> None:
    config, store, exporter, outputs, clock = world
    arts = [article(n, h) for n, h in enumerate([0, 1, 2, 3])] + [article(10 + i, 4) for i in range(6)]
    commit(store, config, "b1", arts)
    windows, articles, dead = store.pending_export()
    store.exported(windows, [a.id for a in articles], [s for s, _ in dead], judge=True)
    new, _ = outputs.judge(store.alert_windows())       # stored (with its windows judged), then "killed"
    assert len(new) == 1 and sink_alerts(tmp_path) == []
    restarted = StreamOutputs(config, store, exporter, clock=lambda: 0.0, monotonic=clock)
    restarted.export()
    assert len(sink_alerts(tmp_path)) == 1
    assert restarted.alerts_raised == 0                  # delivered, not raised a second time
    assert store.outbox("alerts") == [] and store.alert_windows() == []


def test_a_closed_window_is_judged_without_waiting_for_the_interval(world: Any, tmp_path: Path) -> None:
    config, store, exporter, _, clock = world
    commit(store, config, "b0", [article(0, 0)])
    outputs = StreamOutputs(config, store, exporter, clock=lambda: T0 + 100 * 86400.0, monotonic=clock)
    outputs.export()                                      # the first export judges (start-up)
    commit(store, config, "b1", [article(n, h) for n, h in enumerate([1, 2, 3], 1)] +
           [article(10 + i, 4) for i in range(6)])
    clock.t += 3                                          # > CHECK_EVERY, < early (10 s)
    outputs.export()
    assert len(sink_alerts(tmp_path)) == 1                # closed by the wall clock: judged at once


def test_story_records_equal_a_recount_of_the_stored_articles(world: Any, tmp_path: Path) -> None:
    config, store, _, outputs, _ = world
    title = "Raqqa offensive reaches the old city walls at dawn"
    arts = [article(1, 0, title=title), article(2, 0, title="Vote count in Ankara continues"),
            article(3, 1, title="Markets calm after the long weekend")]
    commit(store, config, "b1", arts)
    outputs.export()
    rewrite = article(4, 0, title=title + " again", minute=30)          # joins story a1 in hour 0
    commit(store, config, "b2", [rewrite])
    outputs.export()
    stored = [a for a in store.articles_in([(T0 - HOUR, T0 + 3 * HOUR)])]
    assert {story_of(a) for a in stored if a.id in ("a1", "a4")} == {"a1"}
    expected = set()
    for (start, end), story in {(w, story_of(a)) for a in stored for w in windows_of(to_epoch(a.published), HOUR, None)}:
        members = [story_member(a)[1] for a in stored if story_of(a) == story and start <= to_epoch(a.published) < end]
        r = story_record(from_epoch(start), from_epoch(end), story, members).to_json()
        expected.add((r["window_start"], r["story"], r["size"], json.dumps(r["outlets"])))
    with sqlite3.connect(tmp_path / "out.db") as conn:
        got = set(conn.execute("SELECT window_start, story, size, outlets FROM stories"))
    assert got == expected and (from_epoch(T0), "a1", 2, json.dumps(["s1"])) in got


def test_an_undeliverable_alert_becomes_a_webhook_dead_letter(tmp_path: Path) -> None:
    import socket
    with socket.socket() as sock:                     # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "c.yaml").write_text(CONFIG.replace("sinks:", f"""  webhook: {{url: "http://127.0.0.1:{port}/hook", retries: 0, timeout: 2s}}
sinks:
  - {{type: sqlite, path: out.db, what: dead_letters}}""", 1), encoding="utf-8")
    config = load_config(tmp_path / "c.yaml")
    assert config.state.path is not None and config.webhook is not None
    store = StreamStore(config.state.path, config.windows.size, config.windows.period)
    exporter = Exporter(config.sinks)
    try:
        outputs = StreamOutputs(config, store, exporter, clock=lambda: 0.0, monotonic=Clock())
        commit(store, config, "b1", [article(n, h) for n, h in enumerate([0, 1, 2, 3])] +
               [article(10 + i, 4) for i in range(6)])
        outputs.export()                              # judged, stored, POST fails -> dead letter queued
        outputs.export()                              # ... exported with the next step
        assert len(sink_alerts(tmp_path)) == 1 and store.outbox("webhook") == []
        with sqlite3.connect(tmp_path / "out.db") as conn:
            dead = list(conn.execute("SELECT stage, source, raw FROM dead_letters"))
        assert [(d[0], d[1]) for d in dead] == [("webhook", "http://127.0.0.1")]
        assert json.loads(dead[0][2])["window_start"] == from_epoch(T0 + 4 * HOUR)
    finally:
        exporter.close()
        store.close()


def test_the_export_reads_the_articles_it_committed_as_a_restarted_job_reads_them(world: Any,
                                                                                  tmp_path: Path) -> None:
    """The committing store hands the export the articles it just committed (no decoding of
    their state); a fresh store over the same file (a restart) decodes them: the same records."""
    config, store, _, _, _ = world
    arts = [article(n, n % 3, title=f"Raqqa: the battle goes on, report {n}") for n in range(12)]
    arts[3] = arts[3].replace(evidence=(("raqqa", (("Raqqa", ("Raqqa", "RAQQA")),)),), keywords=("raqqa",),
                              keyword_mentions=(("raqqa", 2),))
    commit(store, config, "b1", arts)
    commit(store, config, "b2", arts[:4] + [article(20, 1)])          # four duplicates, one new
    restarted = StreamStore(tmp_path / "state.db", config.windows.size, config.windows.period)
    try:
        held, decoded = store.pending_export(), restarted.pending_export()
        assert len(held[1]) == 13 and held == decoded
        assert all(a.story for a in held[1])
        store.exported(held[0], [a.id for a in held[1]], [s for s, _ in held[2]])
        assert store.pending_export()[1] == [] and restarted.pending_export()[1] == []
    finally:
        restarted.close()
