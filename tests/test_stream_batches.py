"""Exactly-once micro-batches without Pub/Sub: the stages + commit of one batch, and a message
that makes the pipeline fail is isolated (split until alone) and dead-lettered; the rest commits."""
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


def raw(i: int, title: str = "Raqqa battle goes on") -> RawItem:
    item = {"id": f"g{i}", "url": f"https://e.example/{i}", "title": f"{title} {i}", "published": now_iso()}
    return RawItem(source="sub", data=json.dumps(item).encode(), fetched=now_iso())


@pytest.fixture
def batches(tmp_path: Path) -> Any:
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "c.yaml")
    assert config.state.path is not None
    store = StreamStore(config.state.path, config.windows.size, config.windows.period)
    yield _Batches(config, [], store), store
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
    real = _Batches._beam
    bad = raw(3, title="breaks the pipeline")

    def failing(self: _Batches, raws: list[RawItem], batch: str) -> dict[str, int]:
        if bad in raws:
            raise ValueError("a stage failed on this message")
        return real(self, raws, batch)
    monkeypatch.setattr(_Batches, "_beam", failing)
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

    def broken(self: _Batches, raws: list[RawItem], batch: str) -> dict[str, int]:
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(_Batches, "_beam", broken)
    with pytest.raises(sqlite3.OperationalError):
        b.process([raw(i) for i in range(4)], "b1", Summary())
    assert store.db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 0
