"""The one SQLite helper: every connection to a mediamon SQLite file is opened by `connect`.

One set of settings for every file (the state store, feed state, published ids, sqlite sinks):
WAL journal, so readers (`mediamon feeds status`, `report`, `serve`) never block a writer; a
busy timeout long enough for a concurrent run's commit; `synchronous=FULL` where a commit must
survive a power cut (the state store), NORMAL elsewhere. `read_only=True` opens without creating
or writing anything.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

from transforms.records import NATURAL_KEYS, RECORD_FIELDS

BUSY_TIMEOUT = 60.0


def connect(path: Path | str, *, durable: bool = False, read_only: bool = False,
            threads: bool = False) -> sqlite3.Connection:
    """Open `path` with mediamon's settings; `threads` allows use from several threads (the
    caller serialises access)."""
    if read_only:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT,
                               check_same_thread=not threads)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, check_same_thread=not threads)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    return conn


def table_exists(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is not None


def delete_windows(path: Path | str, tables: Iterable[str], bounds: Iterable[tuple[str, str]]) -> None:
    """Delete the rows of the given windows (window_start, window_end) from each table that
    exists, in one transaction (a rebuild clears what it is about to recount)."""
    bounds = list(bounds)
    conn = connect(path)
    try:
        with conn:
            for table in tables:
                if table_exists(conn, table):
                    conn.executemany(f"DELETE FROM {table} WHERE window_start = ? AND window_end = ?", bounds)
    finally:
        conn.close()


# ---------------------------------------------------------------- record tables (sqlite sinks)

SQLITE_COLUMNS: dict[str, tuple[str, ...]] = {
    what: fields + (("evidence",) if what == "articles" else ()) for what, fields in RECORD_FIELDS.items()
}


# Indexes that `mediamon serve` reads with (latest articles per language/source, alerts and dead
# letters by time): created by every run that writes a sqlite sink, so a store written by an older
# version gets them on its next run.
SQLITE_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "articles": (("articles_published", "published, id"),
                 ("articles_language_published", "language, published"),
                 ("articles_source_published", "source, published")),
    "counts": (("counts_keyword_window", "keyword, window_start"),),
    "topics": (("topics_topic_window", "topic, window_start"),),
    "alerts": (("alerts_window", "window_start"),),
    "dead_letters": (("dead_letters_at", "at"),),
    "stories": (("stories_window", "window_start"),),
}


def connect_records(path: Path | str) -> sqlite3.Connection:
    """A sqlite sink (or the state store's copy of the outputs): one table per record kind."""
    conn = connect(path)
    for what, cols in SQLITE_COLUMNS.items():
        key = ", ".join(NATURAL_KEYS[what])
        conn.execute(f"CREATE TABLE IF NOT EXISTS {what} ({', '.join(cols)}, PRIMARY KEY ({key}))")
        # a file written by an older mediamon lacks newer columns (story, stories...): add them
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({what})")}
        for col in cols:
            if col not in have:
                conn.execute(f"ALTER TABLE {what} ADD COLUMN {col}")
        for name, columns in SQLITE_INDEXES.get(what, ()):
            conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {what} ({columns})")
    return conn


def upsert_records(conn: sqlite3.Connection, what: str, rows: Iterable[dict[str, Any]],
                   grow_only: bool = False) -> int:
    """Insert or replace by natural key: a rerun over the same input leaves the same rows.

    `grow_only` (count panes of the Beam streaming graph): a row is replaced only by a larger
    count, because accumulating panes only grow and a portable runner may deliver an older pane
    after a newer one."""
    cols = SQLITE_COLUMNS[what]
    sql = (f"INSERT INTO {what} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
           f"ON CONFLICT ({', '.join(NATURAL_KEYS[what])}) DO UPDATE SET "
           + ", ".join(f"{c}=excluded.{c}" for c in cols if c not in NATURAL_KEYS[what]))
    if grow_only and "articles" in cols:
        sql += f" WHERE excluded.articles > {what}.articles"
        if "mentions" in cols:
            sql += f" OR (excluded.articles = {what}.articles AND excluded.mentions > {what}.mentions)"
    if all(c in NATURAL_KEYS[what] for c in cols):
        sql = f"INSERT OR IGNORE INTO {what} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    values = [tuple(json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                    for v in map(r.get, cols)) for r in rows]
    conn.executemany(sql, values)
    return len(values)


def chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    """Values in slices small enough for one `IN (...)` query (SQLite allows 32,766 parameters)."""
    for i in range(0, len(values), size):
        yield values[i:i + size]


def marks(chunk: Sequence[Any]) -> str:
    """`?, ?, ?` for an `IN (...)` of this chunk."""
    return ", ".join("?" for _ in chunk)
