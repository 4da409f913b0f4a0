"""The stream job's durable state: the run store (articles.py) plus what a micro-batch commits.

`mediamon stream` with `state.path` commits each micro-batch here in ONE SQLite transaction,
and only then acknowledges its messages:

- each new article (id never stored) goes into `stored_articles`, as scheduled runs do; its
  windows' totals in the store's `counts` and `topics` tables grow by exactly its contribution
  (same pairs and windows as CountPerWindow), in the same transaction, and the windows are
  marked dirty (to be exported to the sinks);
- an article whose id is already stored is a duplicate (a replay after a crash, or a re-sent
  story): nothing changes;
- dead letters go into the store's `dead_letters` table (keyed by their natural key, so a
  replayed poison message is one row) and an outbox for the sinks;
- the batch is logged in `stream_batches` with what it found.

So the store's totals are always a function of the stored articles: an increment happens iff
its article's row is inserted, both or neither (a crash rolls both back), so a replay can never
count twice and no pane that "knows less" can replace a total. `verify_counts` recomputes them
from the stored articles (tests check it after kills; `mediamon run --rebuild` repairs from the
same source). Exporting to the sinks happens after the ack and is idempotent: dirty windows and
unexported articles/dead letters are exported again after a crash.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from pipeline.store import sqlite
from pipeline.store.sqlite import chunks, marks, upsert_records
from pipeline.store.articles import ArticleStore, StoryMemory
from transforms.counts import keyword_pairs, story_member, story_of, story_record, topic_pairs, windows_of
from transforms.records import Alert, Article, DeadLetter, StoryRecord, article_from_state
from transforms.spike_rules import WindowCount
from transforms.stories import StoryOptions
from transforms.timeutil import from_epoch, now_iso, to_epoch

log = logging.getLogger(__name__)

STREAM_SCHEMA = """
CREATE INDEX IF NOT EXISTS stored_articles_unexported ON stored_articles (id) WHERE exported = 0;
CREATE TABLE IF NOT EXISTS stream_batches (
  id TEXT PRIMARY KEY, committed TEXT NOT NULL, messages INTEGER NOT NULL, articles INTEGER NOT NULL,
  duplicates INTEGER NOT NULL, dead_letters INTEGER NOT NULL, late INTEGER NOT NULL,
  new_by TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS stream_count_stories (
  kind TEXT NOT NULL, window_start TEXT NOT NULL, window_end TEXT NOT NULL, key TEXT NOT NULL,
  language TEXT NOT NULL, story TEXT NOT NULL,
  PRIMARY KEY (kind, window_start, window_end, key, language, story));
CREATE TABLE IF NOT EXISTS stream_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stream_alert_windows (
  window_start REAL NOT NULL, window_end REAL NOT NULL, PRIMARY KEY (window_start, window_end));
"""


class BatchOutcome(dict):  # type: ignore[type-arg]
    """{"articles", "duplicates", "dead_letters", "late"} of one committed batch, and (when
    "by_language" / "by_topic" of its new articles."""


class StreamStore(ArticleStore):
    """ArticleStore + the stream job's batch commits, totals and export queue."""

    def __init__(self, path: Path, size: float, period: float | None) -> None:
        super().__init__(path, size, period)
        with self.db:
            self.db.executescript(STREAM_SCHEMA)
            for what in ("counts", "topics", "dead_letters", "alerts"):
                cols = sqlite.SQLITE_COLUMNS[what]
                key = ", ".join(sqlite.NATURAL_KEYS[what])
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {what} ({', '.join(cols)}, PRIMARY KEY ({key}))")
        # articles committed by this process and not yet exported, as committed: the export
        # reads them here instead of decoding their stored state again (it reads the store
        # for the others, e.g. what a killed job committed)
        self._unexported: dict[str, Article] = {}

    # ------------------------------------------------------------ commit (one transaction)

    def committed(self, batch: str) -> BatchOutcome | None:
        row = self.db.execute("SELECT articles, duplicates, dead_letters, late, new_by FROM stream_batches "
                              "WHERE id = ?", (batch,)).fetchone()
        if row is None:
            return None
        return BatchOutcome(articles=row[0], duplicates=row[1], dead_letters=row[2], late=row[3],
                            **json.loads(row[4]))

    def commit_batch(self, batch: str, messages: int, articles: Iterable[Article],
                     dead_letters: Iterable[DeadLetter], late: Iterable[Article] = (),
                     stories: StoryOptions | None = None, memory: StoryMemory | None = None) -> BatchOutcome:
        """Articles (new ids only), their totals and dirty windows, dead letters: all or nothing.

        Idempotent per `batch`: committing the same batch id twice changes nothing the second time
        (a retried bundle), and articles already stored are duplicates.  `memory`: the job's
        story matchers (else the signatures are loaded for this batch), rolled back with the
        transaction if it fails."""
        done = self.committed(batch)
        if done is not None:
            return done
        try:
            outcome = self._commit(batch, messages, articles, dead_letters, late, stories, memory)
        except BaseException:
            if memory is not None:
                memory.rollback()
            raise
        if memory is not None:
            memory.settle()
        return outcome

    def _commit(self, batch: str, messages: int, articles: Iterable[Article],
                dead_letters: Iterable[DeadLetter], late: Iterable[Article],
                stories: StoryOptions | None, memory: StoryMemory | None) -> BatchOutcome:
        stamp = now_iso()
        new = dup = dead_n = 0
        by_language: dict[str, int] = defaultdict(int)
        by_topic: dict[str, int] = defaultdict(int)
        keyword_delta: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        topic_delta: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        dirty: set[tuple[float, float]] = set()
        inserted: list[Article] = []
        with self.db:
            if stories is not None:   # against the stored signatures, as scheduled runs do
                articles = self.assign_stories(list(articles), stories, memory)
            for article in articles:
                published = to_epoch(article.published)
                if not self.insert_article(article, published, stamp, f"stream:{batch}"):
                    dup += 1
                    continue
                new += 1
                inserted.append(article)
                by_language[article.language] += 1
                for topic in article.topics:
                    by_topic[topic] += 1
                windows = windows_of(published, self.size, self.period)
                dirty.update(windows)
                for start, end in windows:
                    bounds = (from_epoch(start), from_epoch(end))
                    for (keyword, language), (mentions, story) in keyword_pairs(article):
                        delta = keyword_delta[(*bounds, keyword, language)]
                        delta[0] += 1
                        delta[1] += mentions
                        delta[2] += self._new_story("k", (*bounds, keyword, language), story)
                    for (topic, language), (_, story) in topic_pairs(article):
                        tdelta = topic_delta[(*bounds, topic, language)]
                        tdelta[0] += 1
                        tdelta[1] += self._new_story("t", (*bounds, topic, language), story)
            self.db.executemany(
                "INSERT INTO counts (window_start, window_end, keyword, language, articles, mentions, stories) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (window_start, window_end, keyword, language) "
                "DO UPDATE SET articles = articles + excluded.articles, mentions = mentions + excluded.mentions, "
                "stories = COALESCE(stories, 0) + excluded.stories",
                [(*k, v[0], v[1], v[2]) for k, v in keyword_delta.items()])
            self.db.executemany(
                "INSERT INTO topics (window_start, window_end, topic, language, articles, stories) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (window_start, window_end, topic, language) "
                "DO UPDATE SET articles = articles + excluded.articles, stories = COALESCE(stories, 0) + excluded.stories",
                [(*k, v[0], v[1]) for k, v in topic_delta.items()])
            self.db.executemany("INSERT OR IGNORE INTO dirty_windows VALUES (?, ?)", sorted(dirty))
            for dead in dead_letters:
                dead_n += 1
                self._add_dead_letter(dead)
            late_n = sum(1 for _ in late)
            new_by = {"by_language": dict(by_language), "by_topic": dict(by_topic)}
            self.db.execute("INSERT INTO stream_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (batch, stamp, messages, new, dup, dead_n, late_n, json.dumps(new_by)))
        self._unexported.update((a.id, a) for a in inserted)     # the transaction committed
        return BatchOutcome(articles=new, duplicates=dup, dead_letters=dead_n, late=late_n, **new_by)

    def _add_dead_letter(self, dead: DeadLetter) -> None:
        """Into the dead_letters table (once per natural key) and, when new, the sinks' outbox."""
        row = dead.to_json()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO dead_letters (stage, error, source, raw, at) VALUES (?, ?, ?, ?, ?)",
            (row["stage"], row["error"], row["source"], row["raw"], row["at"]))
        if cursor.rowcount:
            self.db.execute("INSERT INTO stream_outbox (what, record) VALUES ('dead_letters', ?)",
                            (json.dumps(row, ensure_ascii=False),))

    def _new_story(self, kind: str, key: tuple[str, str, str, str], story: str) -> int:
        """1 when `story` is new among the articles counted under this key (distinct stories)."""
        cursor = self.db.execute("INSERT OR IGNORE INTO stream_count_stories VALUES (?, ?, ?, ?, ?, ?)",
                                 (kind, *key, story))
        return 1 if cursor.rowcount else 0

    # ------------------------------------------------------------ export (after the ack)

    def pending_export(self) -> tuple[list[tuple[float, float]], list[Article], list[tuple[int, dict[str, Any]]]]:
        """Dirty windows, unexported articles, outbox dead letters (seq, record)."""
        windows = self.dirty_windows()
        ids = [i for (i,) in self.db.execute("SELECT id FROM stored_articles WHERE exported = 0")]
        held = self._unexported
        missing = [i for i in ids if i not in held]
        stored: dict[str, Article] = {}
        for chunk in chunks(missing):
            stored.update((i, article_from_state(json.loads(s))) for i, s in self.db.execute(
                f"SELECT id, state FROM stored_articles WHERE id IN ({marks(chunk)})", chunk))
        articles = [held[i] if i in held else stored[i] for i in ids]
        dead = [(seq, json.loads(rec)) for seq, rec in self.db.execute(
            "SELECT seq, record FROM stream_outbox WHERE what = 'dead_letters' ORDER BY seq")]
        return windows, articles, dead

    def totals(self, windows: Sequence[tuple[float, float]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The stored keyword and topic totals of these windows (true counts so far)."""
        counts: list[dict[str, Any]] = []
        topics: list[dict[str, Any]] = []
        for start, end in windows:
            bounds = (from_epoch(start), from_epoch(end))
            for ws, we, k, lang, n, m, st in self.db.execute(
                    "SELECT window_start, window_end, keyword, language, articles, mentions, stories FROM counts "
                    "WHERE window_start = ? AND window_end = ?", bounds):
                counts.append({"window_start": ws, "window_end": we, "keyword": k, "language": lang,
                               "articles": n, "mentions": m, "stories": st})
            for ws, we, t, lang, n, st in self.db.execute(
                    "SELECT window_start, window_end, topic, language, articles, stories FROM topics "
                    "WHERE window_start = ? AND window_end = ?", bounds):
                topics.append({"window_start": ws, "window_end": we, "topic": t, "language": lang,
                               "articles": n, "stories": st})
        return counts, topics

    def exported(self, windows: Sequence[tuple[float, float]], article_ids: Sequence[str],
                 dead_seqs: Sequence[int], judge: bool = False) -> None:
        """What the sinks now hold. A window dirtied again meanwhile cannot be (one writer).
        `judge`: the windows wait for the alert rules (stream_alert_windows), in the same
        transaction, so a window exported but not yet judged is judged after a crash."""
        with self.db:
            if judge:
                self.db.executemany("INSERT OR IGNORE INTO stream_alert_windows VALUES (?, ?)", windows)
            self.db.executemany("DELETE FROM dirty_windows WHERE window_start = ? AND window_end = ?", windows)
            self.db.executemany("UPDATE stored_articles SET exported = 1 WHERE id = ?", [(i,) for i in article_ids])
            self.db.executemany("DELETE FROM stream_outbox WHERE seq = ?", [(s,) for s in dead_seqs])
        for ident in article_ids:
            self._unexported.pop(ident, None)

    # ------------------------------------------------------------ stories (export)

    def story_records(self, articles: Sequence[Article]) -> list[StoryRecord]:
        """The story records (as CountPerWindow makes them from every stored article of the
        window) of each (window, story) these articles belong to: a story's members are the
        stored articles carrying its id, found through the story signatures (indexed by story),
        so only the stories a micro-batch touched are read, never whole windows."""
        touched = sorted({(w, story_of(a)) for a in articles
                          for w in windows_of(to_epoch(a.published), self.size, self.period)})
        stories = sorted({story for _, story in touched})
        ids: set[str] = set(stories) | {a.id for a in articles}
        for chunk in chunks(stories):
            ids.update(i for (i,) in self.db.execute(
                f"SELECT id FROM story_signatures WHERE story IN ({marks(chunk)})", chunk))
        members: dict[str, list[tuple[float, Article]]] = defaultdict(list)
        for a in {a.id: a for a in articles}.values():   # as stored: only older members are read back
            members[story_of(a)].append((to_epoch(a.published), a))
        older = sorted(ids - {a.id for a in articles})
        for chunk in chunks(older):
            for published, state in self.db.execute(
                    f"SELECT published, state FROM stored_articles WHERE id IN ({marks(chunk)})",
                    chunk):
                article = article_from_state(json.loads(state))
                members[story_of(article)].append((published, article))
        records = []
        for (start, end), story in touched:
            inside = [story_member(a)[1] for published, a in members.get(story, ()) if start <= published < end]
            if inside:
                records.append(story_record(from_epoch(start), from_epoch(end), story, inside))
        return records

    # ------------------------------------------------------------ alerts (judged after export)

    def alert_windows(self) -> list[tuple[float, float]]:
        """Windows exported since the alert rules last judged them."""
        return [tuple(r) for r in self.db.execute(  # type: ignore[misc]
            "SELECT window_start, window_end FROM stream_alert_windows ORDER BY 1")]

    def watermark(self) -> float | None:
        """The stream's event-time watermark: the latest `published` stored (epoch seconds)."""
        row = self.db.execute("SELECT max(published) FROM stored_articles").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def topic_series(self, since: float, until: float) -> dict[str, list[WindowCount]]:
        """Each topic's article count per window (languages summed) for windows starting in
        [since, until), from the stored totals (equal to a recount of the stored articles)."""
        series: dict[str, list[WindowCount]] = defaultdict(list)
        for start, end, topic, n in self.db.execute(
                "SELECT window_start, window_end, topic, SUM(articles) FROM topics "
                "WHERE window_start >= ? AND window_start < ? GROUP BY window_start, window_end, topic "
                "ORDER BY window_start", (from_epoch(since), from_epoch(until))):
            series[topic].append(WindowCount(start, end, int(n)))
        return dict(series)

    def topic_article_ids(self, topic: str, start: str, end: str) -> tuple[str, ...]:
        """The ids of the stored articles of one window tagged with `topic` (an alert's evidence)."""
        return tuple(sorted(i for (i,) in self.db.execute(
            "SELECT a.id FROM stored_articles AS a, json_each(a.state, '$.topics') AS t "
            "WHERE a.published >= ? AND a.published < ? AND t.value = ?",
            (to_epoch(start), to_epoch(end), topic))))

    def record_alerts(self, new: Sequence[Alert], updated: Sequence[Alert],
                      judged: Sequence[tuple[float, float]], webhook: bool) -> None:
        """One transaction: the alerts into the store's `alerts` table (their cool-downs), into
        the outbox for the sinks (and, new ones, for the webhook), the judged windows done."""
        with self.db:
            upsert_records(self.db, "alerts", [a.to_json() for a in (*new, *updated)])
            rows = [("alerts", a) for a in (*new, *updated)] + ([("webhook", a) for a in new] if webhook else [])
            self.db.executemany("INSERT INTO stream_outbox (what, record) VALUES (?, ?)",
                                [(what, json.dumps(a.to_json(), ensure_ascii=False)) for what, a in rows])
            self.db.executemany("DELETE FROM stream_alert_windows WHERE window_start = ? AND window_end = ?", judged)

    def outbox(self, what: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, record) waiting in the outbox for `what` (alerts, webhook, dead_letters)."""
        return [(seq, json.loads(rec)) for seq, rec in self.db.execute(
            "SELECT seq, record FROM stream_outbox WHERE what = ? ORDER BY seq", (what,))]

    def delivered(self, seqs: Sequence[int], dead_letters: Sequence[DeadLetter] = ()) -> None:
        """Outbox rows done; dead letters (an undeliverable alert) stored and queued, in one go."""
        with self.db:
            self.db.executemany("DELETE FROM stream_outbox WHERE seq = ?", [(s,) for s in seqs])
            for dead in dead_letters:
                self._add_dead_letter(dead)

    # ------------------------------------------------------------ checks

    def verify_counts(self) -> list[str]:
        """Recompute every total from the stored articles; return the differences (none = ok)."""
        keyword: dict[tuple[str, str, str, str], list[Any]] = defaultdict(lambda: [0, 0, set()])
        topic: dict[tuple[str, str, str, str], list[Any]] = defaultdict(lambda: [0, set()])
        for published, state in self.db.execute("SELECT published, state FROM stored_articles"):
            article = article_from_state(json.loads(state))
            for start, end in windows_of(published, self.size, self.period):
                bounds = (from_epoch(start), from_epoch(end))
                for (k, lang), (m, story) in keyword_pairs(article):
                    keyword[(*bounds, k, lang)][0] += 1
                    keyword[(*bounds, k, lang)][1] += m
                    keyword[(*bounds, k, lang)][2].add(story)
                for (t, lang), (_, story) in topic_pairs(article):
                    topic[(*bounds, t, lang)][0] += 1
                    topic[(*bounds, t, lang)][1].add(story)
        keyword = {k: [v[0], v[1], len(v[2])] for k, v in keyword.items()}  # type: ignore[misc]
        topic = {k: [v[0], len(v[1])] for k, v in topic.items()}  # type: ignore[misc]
        stored_k = {tuple(r[:4]): [r[4], r[5], r[6]] for r in self.db.execute(
            "SELECT window_start, window_end, keyword, language, articles, mentions, stories FROM counts")}
        stored_t = {tuple(r[:4]): [r[4], r[5]] for r in self.db.execute(
            "SELECT window_start, window_end, topic, language, articles, stories FROM topics")}
        problems = [f"counts {k}: stored {stored_k.get(k)} != recount {v}"
                    for k, v in keyword.items() if stored_k.get(k) != v]
        problems += [f"counts {k}: stored {v}, no article" for k, v in stored_k.items() if k not in keyword]
        problems += [f"topics {k}: stored {stored_t.get(k)} != recount {v}"
                     for k, v in topic.items() if stored_t.get(k) != v]
        problems += [f"topics {k}: stored {v}, no article" for k, v in stored_t.items() if k not in topic]
        return problems


