"""Exactly-once micro-batches without Pub/Sub: the stages + commit of one batch, and a message
that makes the pipeline fail is isolated (split until alone) and dead-lettered; the rest commits.
The stages run in a worker process in the job; most tests here run them in-process
(processes=0), one runs the real worker, one has it die."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.graph.summary import Summary
from pipeline.jobs.stream import _Batches
from pipeline.store.streamstate import StreamStore
from transforms.records import RawItem
from transforms.timeutil import now_iso

CONFIG = """name: batches
sources: {pubsub: {subscription: projects/mediamon-test/subscriptions/items}}
state: {path: state.db}
keywords: [{id: raqqa, forms: [Raqqa]}]
topics: [{id: battle, name: Battle, query: 'Raqqa AND battle'}]
windows: {size: 1h, allowed_lateness: 1d}
"""


def raw(i: int, title: str = "Raqqa battle goes on", numbered: bool = True) -> RawItem:
    item = {"id": f"g{i}", "url": f"https://e.example/{i}", "title": f"{title} {i}" if numbered else title,
            "summary": "Fighting went on near the old city, witnesses said.", "published": now_iso()}
    return RawItem(source="sub", data=json.dumps(item).encode(), fetched=now_iso())


@pytest.fixture
def batches(tmp_path: Path) -> Any:
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "c.yaml")
    assert config.state.path is not None
    store = StreamStore(config.state.path, config.windows.size, config.windows.period)
    b = _Batches(config, [], store, processes=0)
    yield b, store
    b.close()
    store.close()


def test_a_batch_commits_articles_duplicates_and_dead_letters(batches: Any) -> None:
    b, store = batches
    raws = [raw(i) for i in range(5)] + [raw(0), RawItem(source="sub", data=b"{oops", fetched=now_iso())]
    summary = Summary()
    b.process(raws, "b1", summary)
    assert (summary.items_read, summary.articles, summary.duplicates, summary.dead_letters) == (7, 5, 1, 1)
    again = Summary()
    b.process(raws[:3], "b2", again)                       # a redelivery after a crash
    assert (again.items_read, again.articles, again.duplicates) == (3, 0, 3)
    assert store.verify_counts() == []
    counts, topics = store.totals(store.dirty_windows())
    assert sum(c["articles"] for c in counts) == 5 and sum(t["articles"] for t in topics) == 5


def test_a_message_that_breaks_the_pipeline_is_isolated_and_dead_lettered(
        batches: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    b, store = batches
    real = _Batches._outputs
    bad = raw(3, title="breaks the pipeline")

    def failing(self: _Batches, pending: Any) -> Any:
        if bad in pending.raws:
            raise ValueError("a stage failed on this message")
        return real(self, pending)
    monkeypatch.setattr(_Batches, "_outputs", failing)
    raws = [raw(i) for i in range(3)] + [bad] + [raw(i) for i in range(4, 8)]
    summary = Summary()
    b.process(raws, "b1", summary)
    assert (summary.items_read, summary.articles, summary.dead_letters) == (8, 7, 1)
    assert summary.balanced()
    dead = store.db.execute("SELECT stage, error, raw FROM dead_letters").fetchall()
    assert len(dead) == 1 and dead[0][0] == "stream" and "a stage failed" in dead[0][1]
    assert "breaks the pipeline" in dead[0][2]
    assert store.verify_counts() == []


def test_a_failure_of_the_store_stops_the_job_instead_of_dead_lettering_everything(
        batches: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    b, store = batches

    def broken(self: _Batches, pending: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(_Batches, "_outputs", broken)
    with pytest.raises(sqlite3.OperationalError):
        b.process([raw(i) for i in range(4)], "b1", Summary())
    assert store.db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 0


def test_the_worker_process_runs_the_stages_and_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    """The job's layout: stages in a spawned child, commit here.  A child that dies (a message
    that exhausts memory, say) fails its batch with BrokenProcessPool: a new child is started
    and the batch is split and retried, so every message still ends committed."""
    import os
    import signal

    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "c.yaml")
    assert config.state.path is not None
    store = StreamStore(config.state.path, config.windows.size, config.windows.period)
    b = _Batches(config, [], store, processes=1)
    try:
        assert b.worker.pool is not None
        child = b.worker.pool.submit(os.getpid).result()
        assert child != os.getpid()                            # the stages run elsewhere
        summary = Summary()
        b.process([raw(i) for i in range(4)], "b1", summary)
        assert (summary.items_read, summary.articles) == (4, 4)

        dying = b.submit([raw(i) for i in range(4, 8)], "b2")
        dying.future = b.worker.pool.submit(os.kill, child, signal.SIGKILL)
        b.finish(dying, summary)
        assert b.worker.restarts == 1
        assert (summary.items_read, summary.articles, summary.dead_letters) == (8, 8, 0)
        assert summary.balanced()
        assert store.verify_counts() == []
    finally:
        b.close()
        store.close()


def test_story_memory_lives_across_batches_and_forgets_a_failed_commit(
        batches: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream keeps its story matchers between micro-batches (loaded once from the store);
    a rewrite in a later batch joins the story of the first, and a commit that fails leaves
    nothing behind in memory for later articles to join."""
    b, store = batches
    title = "Raqqa battle: SDF fighters advance on the old city walls"
    summary = Summary()
    b.process([raw(1, title, numbered=False)], "b1", summary)
    memory = b.memory
    first = next(iter(memory.matchers.values()))
    assert len(first.remembered) == 1

    real = StreamStore.insert_article

    def failing(self: StreamStore, *args: Any) -> bool:
        raise ValueError("the commit fails after stories were assigned")
    monkeypatch.setattr(StreamStore, "insert_article", failing)
    b.process([raw(2, title, numbered=False)], "b2", summary)            # isolated: a dead letter
    assert len(first.remembered) == 1                            # its signature was forgotten
    monkeypatch.setattr(StreamStore, "insert_article", real)

    b.process([raw(3, title, numbered=False)], "b3", summary)
    stories = dict(store.db.execute("SELECT id, story FROM story_signatures").fetchall())
    assert len(stories) == 2 and len(set(stories.values())) == 1  # the rewrite joined the first
    assert memory.matchers[next(iter(memory.matchers))] is first   # the same matcher, not reloaded
    assert (summary.articles, summary.dead_letters) == (2, 1) and summary.balanced()


def test_retention_drops_old_text_in_the_long_running_job_and_keeps_every_count(
        batches: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """state.retention in `stream`: the text of articles older than the horizon goes (once per
    PRUNE_EVERY), ids stay (a replay is still a duplicate) and the counts do not change."""
    from pipeline.jobs import stream
    b, store = batches
    summary = Summary()
    b.process([raw(i) for i in range(4)], "b1", summary)
    store.exported([], [r[0] for r in store.db.execute("SELECT id FROM stored_articles")], [])
    before = store.totals(store.dirty_windows())
    retention = stream._Retention(store, horizon=-3600.0)   # everything is past a horizon 1 h ahead
    assert retention.tick() == 4
    assert retention.tick() == 0                            # not again before PRUNE_EVERY
    summaries = [json.loads(s)["summary"] for (s,) in store.db.execute("SELECT state FROM stored_articles")]
    assert summaries == ["", "", "", ""]
    assert store.totals(store.dirty_windows()) == before and store.verify_counts() == []
    again = Summary()
    b.process([raw(0)], "b2", again)
    assert (again.articles, again.duplicates) == (0, 1)
    assert stream._Retention(store, None).tick() == 0
