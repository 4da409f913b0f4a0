"""The state store of scheduled runs: stored articles, dirty windows, runs (one SQLite file)."""
from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.store import sqlite
from pipeline.store.sqlite import chunks, marks
from transforms.counts import windows_of
from transforms.records import Article, article_from_state, article_to_state
from transforms.stories import Remembered, StoryMatcher, StoryOptions, order_key, signed
from transforms.timeutil import now_iso, to_epoch

log = logging.getLogger(__name__)


SCHEMA = """
CREATE TABLE IF NOT EXISTS stored_articles (
  id TEXT PRIMARY KEY, published REAL NOT NULL, state TEXT NOT NULL,
  exported INTEGER NOT NULL DEFAULT 0, stored_at TEXT NOT NULL, run TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS stored_articles_published ON stored_articles (published);
CREATE TABLE IF NOT EXISTS dirty_windows (
  window_start REAL NOT NULL, window_end REAL NOT NULL, PRIMARY KEY (window_start, window_end));
CREATE TABLE IF NOT EXISTS story_signatures (
  id TEXT PRIMARY KEY, language TEXT NOT NULL, published REAL NOT NULL, story TEXT NOT NULL,
  signature BLOB NOT NULL, numbers TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS story_signatures_time ON story_signatures (language, published);
CREATE INDEX IF NOT EXISTS story_signatures_story ON story_signatures (story);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, started TEXT NOT NULL, committed TEXT, finished TEXT,
  items_read INTEGER, new_articles INTEGER);
"""


class ArticleStore:
    """The run store: every article ever counted, dirty windows, run log (SQLite)."""

    def __init__(self, path: Path, size: float, period: float | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.size, self.period = size, period
        self.db = sqlite.connect(path, durable=True)
        with self.db:
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def begin_run(self) -> str:
        run = uuid.uuid4().hex[:12]
        with self.db:
            self.db.execute("INSERT INTO runs (id, started) VALUES (?, ?)", (run, now_iso()))
        return run

    def _stored(self, idents: Sequence[str]) -> set[str]:
        """Which of these ids are stored."""
        found: set[str] = set()
        for chunk in chunks(idents):
            found.update(r[0] for r in self.db.execute(
                f"SELECT id FROM stored_articles WHERE id IN ({marks(chunk)})", chunk))
        return found

    def _story_sizes(self, stories: Sequence[str]) -> dict[str, int]:
        """Stored signatures per story."""
        sizes: dict[str, int] = {}
        for chunk in chunks(stories):
            sizes.update(self.db.execute(
                f"SELECT story, count(*) FROM story_signatures WHERE story IN ({marks(chunk)}) GROUP BY story",
                chunk))
        return sizes

    def assign_stories(self, articles: Sequence[Article], options: StoryOptions,
                       memory: "StoryMemory | None" = None) -> list[Article]:
        """Give new articles their story: matched against the signatures of stored articles
        published within the horizon (any earlier run) and against each other, in (published,
        id) order.  Articles already stored are returned unchanged (a rerun changes nothing).
        Signatures of the new articles are written in the caller's transaction.

        Without `memory` the signatures of the batch's time range are loaded for this call (a
        scheduled run); with it, the job's long-lived matchers are used and kept up to date
        (the caller settles or rolls back `memory` with its transaction)."""
        stored = self._stored(sorted({a.id for a in articles}))
        fresh = sorted({a.id: a for a in articles if a.id not in stored}.values(), key=order_key)
        story_of: dict[str, str] = {}
        signatures: list[tuple[str, str, float, str, bytes, str]] = []
        for language in sorted({a.language for a in fresh}):
            group = [a for a in fresh if a.language == language]
            first = to_epoch(group[0].published)
            if memory is None:
                matcher = self._matcher_for(language, first - options.horizon,
                                            to_epoch(group[-1].published) + options.horizon, options)
            else:
                matcher = memory.matcher(self.db, language)
                matcher.expire(first - options.horizon)
            for article in group:
                published = to_epoch(article.published)
                sig, numbers_ = signed(article, matcher.signer, options.min_title_tokens)
                story = matcher.match(sig, published, numbers_) or article.id
                if sig is not None:
                    matcher.remember(Remembered(article.id, published, story, sig, numbers_))
                    if memory is not None:
                        memory.added.append((language, article.id))
                    signatures.append((article.id, language, published, story, sig.tobytes(),
                                       json.dumps(numbers_)))
                story_of[article.id] = story
        self.db.executemany("INSERT OR IGNORE INTO story_signatures VALUES (?, ?, ?, ?, ?, ?)", signatures)
        sizes = self._story_sizes(sorted(set(story_of.values())))
        return [a.replace(story=story_of[a.id], story_size=max(1, sizes.get(story_of[a.id], 1)))
                if a.id in story_of else a for a in articles]

    def _matcher_for(self, language: str, lo: float, hi: float, options: StoryOptions) -> StoryMatcher:
        """A matcher holding the stored signatures of one language published in [lo, hi]."""
        matcher = options.matcher()
        matcher.max_remembered = 2 ** 62          # the loaded range bounds it here
        for row in self.db.execute(
                "SELECT id, published, story, signature, numbers FROM story_signatures "
                "WHERE language = ? AND published >= ? AND published <= ? ORDER BY published, id",
                (language, lo, hi)):
            matcher.remember(_remembered(row))
        return matcher

    def insert_article(self, article: Article, published: float, stamp: str, run: str) -> bool:
        """Store the article unless its id is stored already (inside the caller's transaction);
        True when it was new."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO stored_articles (id, published, state, stored_at, run) VALUES (?, ?, ?, ?, ?)",
            (article.id, published, json.dumps(article_to_state(article), ensure_ascii=False), stamp, run))
        return bool(cursor.rowcount)

    def commit(self, run: str, articles: Iterable[Article], items_read: int,
               stories: StoryOptions | None = None) -> list[Article]:
        """Insert the articles whose id is new (with their story); mark their windows dirty.
        One transaction."""
        new: list[Article] = []
        stamp = now_iso()
        with self.db:
            if stories is not None:
                articles = self.assign_stories(list(articles), stories)
            for article in articles:
                published = to_epoch(article.published)
                if self.insert_article(article, published, stamp, run):
                    new.append(article)
                    self.db.executemany("INSERT OR IGNORE INTO dirty_windows VALUES (?, ?)",
                                        windows_of(published, self.size, self.period))
            self.db.execute("UPDATE runs SET committed = ?, items_read = ?, new_articles = ? WHERE id = ?",
                            (stamp, items_read, len(new), run))
        return new

    def mark_period_dirty(self, since: float | None, until: float | None) -> int:
        """For --rebuild: every window holding a stored article in [since, until)."""
        rows = self.db.execute(
            "SELECT published FROM stored_articles WHERE published >= ? AND published < ?",
            (since if since is not None else float("-inf"), until if until is not None else float("inf")))
        windows = {w for (published,) in rows for w in windows_of(published, self.size, self.period)}
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO dirty_windows VALUES (?, ?)", sorted(windows))
        return len(windows)

    def dirty_windows(self) -> list[tuple[float, float]]:
        return [tuple(r) for r in self.db.execute(  # type: ignore[misc]
            "SELECT window_start, window_end FROM dirty_windows ORDER BY 1")]

    def articles_in(self, windows: Sequence[tuple[float, float]]) -> list[Article]:
        found: dict[str, Article] = {}
        for start, end in windows:
            for ident, state in self.db.execute(
                    "SELECT id, state FROM stored_articles WHERE published >= ? AND published < ?",
                    (start, end)):
                if ident not in found:
                    found[ident] = article_from_state(json.loads(state))
        return list(found.values())

    def unexported(self) -> list[Article]:
        return [article_from_state(json.loads(s)) for (s,) in self.db.execute(
            "SELECT state FROM stored_articles WHERE exported = 0 ORDER BY published, id")]

    def finish(self, run: str, windows: Sequence[tuple[float, float]], exported: Sequence[str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM dirty_windows WHERE window_start = ? AND window_end = ?", windows)
            self.db.executemany("UPDATE stored_articles SET exported = 1 WHERE id = ?", [(i,) for i in exported])
            self.db.execute("UPDATE runs SET finished = ? WHERE id = ?", (now_iso(), run))

    def earliest_published(self) -> float | None:
        """The publication time (epoch seconds) of the oldest stored article, or None."""
        row = self.db.execute("SELECT min(published) FROM stored_articles").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts raised by earlier runs (their cool-downs still hold)."""
        exists = sqlite.table_exists(self.db, "alerts")
        if not exists:
            return []
        cursor = self.db.execute("SELECT * FROM alerts")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    def replace_tags(self, articles: Iterable[Article]) -> None:
        with self.db:
            self.db.executemany("UPDATE stored_articles SET state = ? WHERE id = ?",
                                [(json.dumps(article_to_state(a), ensure_ascii=False), a.id) for a in articles])

    def prune(self, horizon_seconds: float, now: float | None = None) -> int:
        """Drop the text of articles published before now - horizon, keeping what counting
        and dedup need (id, time, language, topics, keyword mentions): counts never change."""
        cutoff = (now if now is not None else time.time()) - horizon_seconds
        rows = self.db.execute("SELECT id, state FROM stored_articles WHERE published < ? AND exported = 1 "
                               "AND json_extract(state, '$.summary') != ''", (cutoff,)).fetchall()
        slim = []
        for ident, state in rows:
            data = json.loads(state)
            data.update(summary="", evidence=[])
            slim.append((json.dumps(data, ensure_ascii=False), ident))
        with self.db:
            self.db.executemany("UPDATE stored_articles SET state = ? WHERE id = ?", slim)
            # story signatures past the retention horizon go too (about 0.7 KB per article)
            self.db.execute("DELETE FROM story_signatures WHERE published < ?", (cutoff,))
        return len(slim)


def _remembered(row: tuple[str, float, str, bytes, str]) -> Remembered:
    ident, published, story, blob, numbers = row
    return Remembered(ident, published, story, np.frombuffer(blob, dtype=np.uint32), tuple(json.loads(numbers)))


class StoryMemory:
    """Per-language story matchers that outlive one commit (the stream job's): each is loaded
    once from the store (the newest `max_remembered` signatures of its language), then kept in
    step with what is committed, so a micro-batch costs the same after a million articles as
    after ten.  `added` lists what the open transaction remembered: `rollback` forgets it when
    the transaction fails, `settle` keeps it once committed."""

    def __init__(self, options: StoryOptions) -> None:
        self.options = options
        self.matchers: dict[str, StoryMatcher] = {}
        self.added: list[tuple[str, str]] = []

    def matcher(self, db: Any, language: str) -> StoryMatcher:
        matcher = self.matchers.get(language)
        if matcher is None:
            matcher = self.matchers[language] = self.options.matcher()
            rows = db.execute(
                "SELECT id, published, story, signature, numbers FROM story_signatures WHERE language = ? "
                "ORDER BY published DESC, id DESC LIMIT ?", (language, self.options.max_remembered)).fetchall()
            for row in reversed(rows):
                matcher.remember(_remembered(row))
        return matcher

    def settle(self) -> None:
        self.added.clear()

    def rollback(self) -> None:
        for language, ident in reversed(self.added):
            self.matchers[language].forget(ident)
        self.added.clear()
