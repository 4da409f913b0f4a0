"""Persistent per-feed HTTP state: what a polite aggregator remembers between runs.

One row per configured feed URL in table `feed_state` of a SQLite file (standard-library sqlite3,
WAL journal, so a reader such as `mediamon feeds status` never blocks a running fetch). The file
may be shared with other state tables (`state.path` in the config); only `feed_state` is touched.

Times are stored as Unix seconds (REAL) and shown as ISO-8601 UTC.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator

from pipeline.store import sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed_state (
    url            TEXT PRIMARY KEY,   -- the feed URL as configured
    current_url    TEXT NOT NULL,      -- where to fetch it now (after 301/308)
    etag           TEXT,
    last_modified  TEXT,
    body_hash      TEXT,               -- sha256 of the last body received
    etag_liar      INTEGER NOT NULL DEFAULT 0,  -- same ETag seen for a changed body
    last_status    TEXT,               -- ok | not_modified | retired | error
    http_status    INTEGER,
    last_error     TEXT,
    last_fetch     REAL,
    last_new_item  REAL,
    error_count    INTEGER NOT NULL DEFAULT 0,
    next_due       REAL,
    retired        INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True)
class FeedState:
    """Everything remembered about one feed; `FeedState.new(url)` for a feed never fetched."""

    url: str
    current_url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    etag_liar: bool = False
    last_status: str | None = None
    http_status: int | None = None
    last_error: str | None = None
    last_fetch: float | None = None
    last_new_item: float | None = None
    error_count: int = 0
    next_due: float | None = None
    retired: bool = False

    @staticmethod
    def new(url: str) -> "FeedState":
        return FeedState(url=url, current_url=url)

    def replace(self, **changes: object) -> "FeedState":
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_FIELDS = tuple(f.name for f in dataclasses.fields(FeedState))
_BOOLS = {"etag_liar", "retired"}


class FeedStateStore:
    """SQLite-backed map: configured feed URL -> FeedState. Safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite.connect(path, threads=True)
        with self._db:
            self._db.execute(_SCHEMA)

    def get(self, url: str) -> FeedState | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM feed_state WHERE url = ?",
                                   (url,)).fetchone()
        return self._state(row) if row else None

    def get_or_new(self, url: str) -> FeedState:
        return self.get(url) or FeedState.new(url)

    def put(self, state: FeedState) -> None:
        values = [int(v) if name in _BOOLS else v
                  for name, v in zip(_FIELDS, dataclasses.astuple(state))]
        marks = ", ".join("?" for _ in _FIELDS)
        with self._lock, self._db:
            self._db.execute(f"INSERT OR REPLACE INTO feed_state ({', '.join(_FIELDS)}) "
                             f"VALUES ({marks})", values)

    def mark_new_items(self, url: str, when: float) -> None:
        """Record that the feed at `url` (as configured) gave new items at `when` (Unix time)."""
        with self._lock, self._db:
            self._db.execute("UPDATE feed_state SET last_new_item = MAX(COALESCE(last_new_item, 0), ?)"
                             " WHERE url = ?", (when, url))

    def all(self) -> Iterator[FeedState]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_FIELDS)} FROM feed_state ORDER BY url").fetchall()
        return iter([self._state(row) for row in rows])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "FeedStateStore":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @staticmethod
    def _state(row: tuple[object, ...]) -> FeedState:
        values = {name: bool(v) if name in _BOOLS else v for name, v in zip(_FIELDS, row)}
        return FeedState(**values)  # type: ignore[arg-type]


class HeldFeedState:
    """Wraps a FeedStateStore: reads pass through, writes wait for `flush()` after the commit."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.pending: dict[str, Any] = {}

    def get(self, url: str) -> Any:
        return self.pending.get(url) or self.store.get(url)

    def get_or_new(self, url: str) -> Any:
        held = self.pending.get(url)
        return held if held is not None else self.store.get_or_new(url)

    def put(self, state: Any) -> None:
        self.pending[state.url] = state

    def flush(self) -> None:
        for state in self.pending.values():
            self.store.put(state)
        self.pending.clear()
