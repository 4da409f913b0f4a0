"""What the poller has published: ids recorded after each publish, so a restart publishes each item once."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from pipeline.store import sqlite
from pipeline.store.sqlite import chunks, marks
from transforms.records import Article

log = logging.getLogger(__name__)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS published_items (
    id         TEXT PRIMARY KEY,   -- mediamon article id
    source     TEXT NOT NULL,
    published  TEXT NOT NULL,      -- the item's published time (ISO-8601 UTC)
    at         REAL NOT NULL       -- when it was published to Pub/Sub (Unix seconds)
)
"""


class PublishedIds:
    """The ids already published, in SQLite (WAL), shared with the feed state file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite.connect(path)
        with self._db:
            self._db.execute(_SCHEMA)

    def known(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        for chunk in chunks(ids):
            found.update(r[0] for r in self._db.execute(
                f"SELECT id FROM published_items WHERE id IN ({marks(chunk)})", chunk))
        return found

    def record(self, articles: Iterable[Article], at: float) -> None:
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO published_items VALUES (?, ?, ?, ?)",
                                 [(a.id, a.source, a.published, at) for a in articles])

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM published_items").fetchone()[0])

    def close(self) -> None:
        self._db.close()
